"""Every sentence the bot says to users, in one place."""

from __future__ import annotations

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
INTERNAL = (
    ":warning: Something went wrong on my side while answering. Your message is saved; "
    "please try again. If it keeps happening, ask an admin to check the bot's logs."
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
