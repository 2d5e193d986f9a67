"""Every sentence the bot says to users, in one place."""

from __future__ import annotations

from datetime import datetime

THINKING = "_Thinking…_"
RESET_DONE = "Done: I've forgotten this thread's conversation. The next message starts afresh."
FLAGGED = (
    "Sorry, I can't help with that message: it was flagged by the content filter. "
    "Please rephrase it, and ask an admin if you think this is a mistake."
)
STORE_DOWN = (
    ":warning: I couldn't reach my memory store (Redis), so I didn't answer and your "
    "message wasn't saved. Please send it again in a minute; if this keeps happening, "
    "ask an admin to check the Redis server."
)
TRUNCATED = (
    "_Note: your message was {n:,} tokens, more than I can read at once ({limit:,}), so I "
    "only read the beginning. Split it into smaller parts for a full answer._"
)
INTERRUPTED = "_…the answer was cut off because the connection to the model dropped. Ask me to continue._"
EMPTY_ANSWER = "_The model returned an empty answer. Try rephrasing the question._"
LENGTH_LIMIT = "_…the answer reached the length limit. Ask me to continue._"
STORE_DOWN_NOTHING_CHANGED = (
    ":warning: I couldn't reach my memory store (Redis), so I changed nothing. Please try again in a "
    "minute; if this keeps happening, ask an admin to check the Redis server."
)
SLACK_REFUSED = (
    ":warning: Slack refused that ({error}). Please try again; if it keeps happening, ask an admin."
)
INTERNAL = (
    ":warning: Something went wrong on my side while answering. Your message is saved; "
    "please try again. If it keeps happening, ask an admin to check the bot's logs."
)

COMMAND_FAILED = (
    ":warning: Something went wrong on my side with that command; nothing was changed. "
    "Please try again, and ask an admin to check the bot's logs if it keeps happening."
)

LLM_ERRORS = {
    "rate_limited": (
        ":hourglass: The AI service is rate-limiting us right now and still was after "
        "several retries. Your message is saved; please try again in a minute."
    ),
    "quota": (
        ":warning: The AI service says this workspace's API quota is used up. Your "
        "message is saved. An admin needs to check the OpenAI billing and limits."
    ),
    "auth": (
        ":warning: The AI service rejected our API key. Your message is saved. An admin "
        "needs to check OPENAI_API_KEY."
    ),
    "timeout": (
        ":hourglass: The AI service didn't answer in time, even after retries. Your "
        "message is saved; please try again shortly."
    ),
    "unavailable": (
        ":warning: I couldn't reach the AI service (it is down or unreachable), even "
        "after retries. Your message is saved; please try again in a few minutes."
    ),
    "context_length": (
        ":warning: This conversation is too long for the model even after trimming. "
        "Say `reset` to start afresh, or start a new thread."
    ),
    "model_not_found": (
        ":warning: The configured model doesn't exist on the AI service. An admin "
        "needs to check OPENAI_MODEL or the persona's model."
    ),
    "bad_request": (
        ":warning: The AI service refused the request as invalid. Your message is "
        "saved; try rephrasing, or say `reset` to start afresh."
    ),
    "other": INTERNAL,
}


def llm_error(kind: str) -> str:
    return LLM_ERRORS.get(kind, INTERNAL)


# -- personas and structured answers ----------------------------------------------
UNKNOWN_PERSONA = "I don't know a persona called `{name}`. These exist:"
PERSONA_SET_CHANNEL = "<@{user}> set this channel's persona to *{persona}*. New threads here will use it."
PERSONA_SET_THREAD = "<@{user}> switched this thread to *{persona}*. The conversation keeps its history."
PERSONA_SET_WORKSPACE = "Workspace default persona is now *{persona}*."
TEAM_PROMPT_SET = "Saved the team description; every persona now includes it."
TEAM_PROMPT_CLEARED = "Cleared the team description."
NOT_IN_CHANNEL = (
    "I'm not a member of this channel, so I can't post here. Invite me with `/invite @Threadwise`."
)
SETTING_SAVED_ANYWAY = "The setting was saved anyway."
QUESTION_TOO_LONG = (
    "Your question is {n:,} characters; the limit is {limit:,}. Shorten it, or mention me in a thread "
    "and ask `@Threadwise json <schema>` over the whole discussion."
)
EMPTY_QUESTION = (
    "Please add a question after the schema, e.g. `/ask-json action_items What came out of today's standup?`"
)
UNKNOWN_SCHEMA = "I don't know a schema called `{name}`. Use one of {names}, or pass an inline JSON Schema."
JSON_THINKING = "_Working on a `{schema}` answer…_"
JSON_REFUSED = "The model declined to answer: {refusal}"
JSON_INVALID = (
    ":warning: The model didn't produce valid JSON for `{schema}`, even after one repair attempt: {error}. "
    "Try a simpler schema or rephrase the question."
)
THREAD_HELP = (
    "In a thread with me: `@Threadwise reset` forgets the thread · `@Threadwise persona <name> [domain]` "
    "switches this thread's persona · `@Threadwise json <schema> [question]` answers as JSON over the "
    "thread (e.g. `@Threadwise json action_items`). `/persona` lists personas."
)
STORE_DOWN_WILL_RETRY = (
    ":warning: I couldn't finish this answer: my database (Redis) is unreachable. Your message "
    "is saved, and I'll answer it automatically once the database is back; no need to send it again."
)
TURN_FAILED = ":warning: Something went wrong while answering this message. Please ask again."
VIEW_READ = "I can see the latest {n} messages of <#{channel}>, and I'll use them when they help."
VIEW_NOT_MEMBER = "I'm not in <#{channel}>, so I can't read it; invite me there to ask about it."
VIEW_UNREADABLE = "I couldn't read <#{channel}>, so I'll answer without it."
ASK_NOT_IN_CHANNEL = "I'm not in <#{channel}>, so I'm answering here instead of in its thread"
SUMMARY_NOT_IN_CHANNEL = (
    "I'm not in <#{channel}>, so I can't read that thread. Invite me there, then try again."
)
GAVE_UP = (
    ":warning: I couldn't answer this message: answering it failed several times. "
    "Please ask again; if it keeps happening, ask an admin to check the bot's logs."
)
NOT_SAVED = "_Note: I couldn't save that answer to memory (Redis is unreachable), so I may not remember it._"
FEEDBACK_THANKS = "Thanks: your {rating} on this answer was recorded."
ANSWER_ATTACHED = "_Slack couldn't show this answer in a message, so it is attached as a file below._"
JSON_ATTACHED = (
    "_Slack couldn't show this answer in a message, so the JSON is attached as a file in the thread._"
)
JSON_DUPLICATE = "_This request was already answered._"
SCHEMA_REJECTED = (
    ":warning: The model service rejected this schema for strict structured output: {detail} "
    "Simplify the schema (plain objects, arrays, strings, numbers, enums) and try again."
)

# -- fine-tuning ---------------------------------------------------------------------
NO_RATED_ANSWERS = (
    "No answers rated 👍 (and none 👎) since then{scope}. Ask people to rate good answers with 👍, "
    "or widen `since=`."
)
DATASET_SAVED = "Saved dataset `{name}` ({n} examples). Start with `/finetune start {name}`."
SENT_TO_DM = "I sent it to you in a DM: it holds a private channel's conversations."

BUDGET_HIT = (
    ":no_entry: This workspace has used its monthly Threadwise budget (about {used} of "
    "{limit}, estimated), so I'm not answering until {until}, or until an admin raises it "
    "with `/usage budget`.{kept}"
)
USER_LIMIT_HIT = (
    ":hourglass: You've started {used} turns this hour, and the limit here is {limit} per "
    "person per hour. Ask again after {until}.{kept}"
)
KEPT_IN_THREAD = " Your message is kept in this thread."
ADMIN_BUDGET_HIT = (
    ":warning: Threadwise reached this workspace's monthly budget of {limit} "
    "(about {used} estimated so far), so members' questions go unanswered until {until}. "
    "Raise it with `/usage budget <USD>`, or turn it off with `/usage budget off`; `/usage` shows "
    "where it went."
)
ADMIN_USER_LIMIT_HIT = (
    ":warning: <@{user}> reached the limit of {limit} turns per person per hour. Others may "
    "reach it too; change it with `/usage limit <turns per hour>` or `/usage limit off`. "
    "(You're told once a day.)"
)


def slack_date(when: datetime, fallback: str) -> str:
    """A moment each reader sees in their own time zone."""
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}} at {{time}}|{fallback}>"


STORE_DOWN_HOME = (
    ":warning: I couldn't reach my memory store (Redis), so this page is empty for now. "
    "Open the Home tab again in a minute; if this keeps happening, ask an admin to check the Redis server."
)

STORE_DOWN_SHORT = "My memory store (Redis) is down; try again in a minute."

THREAD_CUT = (
    "I read only the first {n} messages of this thread: Slack lets apps distributed outside "
    "the Marketplace read 15 at a time"
)
THREAD_NOT_READ = (
    "I couldn't read this thread's earlier messages just now: Slack lets apps distributed outside "
    "the Marketplace read a thread once a minute. Mention me again in a minute to include them"
)
VIEW_CUT = "I can see only the latest {n} messages of <#{channel}> (Slack's limit for apps distributed outside the Marketplace)."
VIEW_NOT_READ = "I couldn't read <#{channel}> just now (Slack allows one read a minute here); switch channels again in a minute."
