"""Personas: built-in templates, custom ones per workspace, and which one applies.

A thread's choice wins over its channel's, and the channel's over the workspace's. A
choice is stored as `{"name": ..., "domain": ...}`; the definition is looked up when a
turn runs, so editing a custom persona takes effect in every thread that uses it.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

from core import history, keys, llm, tokens
from core.store import Store

NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{1,31}$")
MAX_PROMPT_CHARS = 4000
MAX_CONSTRAINTS = 10
MAX_CONSTRAINT_CHARS = 300
# A domain shows in every answer's footer in its scope; a long one would crowd it out.
MAX_DOMAIN_CHARS = 80
# Room reserved in every prompt for the system message, so history trimming can run
# before the persona is known (see conversations.py).
SYSTEM_RESERVE_TOKENS = 2500


@dataclass(frozen=True)
class Persona:
    name: str
    description: str
    prompt: str
    model: str | None = None
    temperature: float | None = None
    constraints: tuple[str, ...] = ()
    builtin: bool = False
    takes_domain: bool = False
    reasoning_effort: str | None = None  # for models that reason (core/llm.py steering_args)


@dataclass(frozen=True)
class Choice:
    """A persona picked for a scope, with the domain for templates that take one."""

    name: str
    domain: str = ""
    by: str = ""
    scope: str = ""  # "thread", "channel" or "workspace" once resolved

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "domain": self.domain, "by": self.by})

    @classmethod
    def from_json(cls, raw: str | bytes | None, scope: str = "") -> Choice | None:
        if not raw:
            return None
        try:
            data = json.loads(raw)
            return cls(name=data["name"], domain=data.get("domain", ""), by=data.get("by", ""), scope=scope)
        except (ValueError, KeyError, TypeError):
            return None


_BASE = (
    "You are Threadwise, an assistant inside a team's Slack workspace. Several people may "
    "speak in one thread; each user message starts with the speaker as <@USERID>. Address "
    "people that way when useful. Format answers in Markdown suited to Slack: short "
    "paragraphs, lists, and fenced code blocks."
)

BUILTINS: dict[str, Persona] = {
    p.name: p
    for p in (
        Persona(
            "default",
            "A helpful, accurate general assistant.",
            f"{_BASE} Be helpful and accurate.",
            builtin=True,
        ),
        Persona(
            "expert",
            "A domain expert, e.g. `/persona expert tax law`.",
            f"{_BASE} You are an expert in {{domain}}. Answer with precise, well-founded, "
            "professional depth; state assumptions and cite the relevant rules or sources "
            "you rely on; say when something is outside your expertise.",
            builtin=True,
            takes_domain=True,
        ),
        Persona(
            "teacher",
            "Explains simply, step by step, with analogies.",
            f"{_BASE} You are a patient teacher. Explain simply, build up step by step, use "
            "everyday analogies and a small example, and check understanding at the end.",
            builtin=True,
        ),
        Persona(
            "concise",
            "Brief and direct: the answer first, no filler.",
            f"{_BASE} Be brief and direct. Lead with the answer. No preamble, no filler; use "
            "at most a few sentences or bullets unless asked for more.",
            builtin=True,
        ),
        Persona(
            "creative",
            "Unconventional ideas and lateral thinking.",
            f"{_BASE} Be creative: offer unconventional, surprising ideas and lateral "
            "angles, several options rather than one, and say which are bold bets.",
            builtin=True,
            temperature=1.0,
        ),
        Persona(
            "socratic",
            "Teaches by asking guiding questions.",
            f"{_BASE} Teach the Socratic way: rather than giving the answer outright, ask one "
            "or two guiding questions at a time that lead the person to reason it out, and "
            "confirm what they get right.",
            builtin=True,
        ),
        Persona(
            "balanced",
            "Weighs several perspectives before concluding.",
            f"{_BASE} Weigh several perspectives fairly: lay out the strongest case for each, "
            "the trade-offs and the evidence, then give a reasoned, hedged conclusion.",
            builtin=True,
        ),
    )
}


# Suggested prompts in the assistant pane, per built-in persona: (title, message). Custom
# personas get the default set. Slack shows up to four.
SUGGESTED_PROMPTS: dict[str, tuple[tuple[str, str], ...]] = {
    "default": (
        ("Summarize a topic", "Give me a short summary of the key points I should know about this topic: "),
        ("Draft a message", "Help me draft a clear, friendly message to my team about "),
        ("Explain a concept", "Explain this concept in plain words, with one example: "),
        ("Plan next steps", "Turn this into a short list of next steps with owners: "),
    ),
    "expert": (
        ("Ask the expert", "What are the rules and the main pitfalls here: "),
        ("Check my reasoning", "Check this reasoning and tell me what I am missing: "),
        ("Cite the sources", "Which sources or rules would you rely on to answer: "),
    ),
    "teacher": (
        ("Explain step by step", "Explain this step by step, as to a newcomer: "),
        ("Quiz me", "Ask me three questions to check that I understood: "),
        ("Give an analogy", "Give me an everyday analogy for: "),
    ),
    "concise": (
        ("One-line answer", "In one sentence: "),
        ("Three bullets", "The three things that matter most about: "),
    ),
    "creative": (
        ("Brainstorm", "Give me five unconventional ideas for: "),
        ("Name it", "Suggest ten names for: "),
        ("Reframe it", "Reframe this problem from three unexpected angles: "),
    ),
}


MAX_PROMPTS = 4
MAX_PROMPT_TITLE = 75
MAX_PROMPT_MESSAGE = 1_000


def suggested_prompts(name: str) -> list[dict[str, str]]:
    """The pane's default suggested prompts for a persona, as Slack takes them."""
    pairs = SUGGESTED_PROMPTS.get(name) or SUGGESTED_PROMPTS["default"]
    return [{"title": title, "message": message} for title, message in pairs[:MAX_PROMPTS]]


def parse_prompts(text: str) -> list[dict[str, str]]:
    """`Title | message ; Title | message`: an admin's prompts for a persona, checked."""
    prompts = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        title, sep, message = (x.strip() for x in part.partition("|"))
        if not sep or not title or not message:
            raise PersonaError(f"Each prompt is `Title | message`; `{part[:80]}` isn't.")
        if len(title) > MAX_PROMPT_TITLE or len(message) > MAX_PROMPT_MESSAGE:
            raise PersonaError(
                f"A prompt's title holds {MAX_PROMPT_TITLE} characters and its message {MAX_PROMPT_MESSAGE}."
            )
        prompts.append({"title": title, "message": message})
    if len(prompts) > MAX_PROMPTS:
        raise PersonaError(f"The pane shows at most {MAX_PROMPTS} prompts; you gave {len(prompts)}.")
    return prompts


async def set_prompts(store: Store, team: str, name: str, prompts: list[dict[str, str]]) -> None:
    """A persona's suggested prompts in this workspace; an empty list restores the defaults."""
    key, field_name = keys.workspace(store.prefix, team).settings, f"prompts:{name}"
    if prompts:
        await store.redis.hset(key, field_name, json.dumps(prompts))
    else:
        await store.redis.hdel(key, field_name)


async def prompts_for(store: Store, team: str, name: str) -> list[dict[str, str]]:
    """The workspace's prompts for a persona, or its defaults."""
    raw = await store.redis.hget(keys.workspace(store.prefix, team).settings, f"prompts:{name}")
    try:
        return json.loads(raw) if raw else suggested_prompts(name)
    except ValueError:
        return suggested_prompts(name)


class PersonaError(ValueError):
    """A persona name or definition is invalid; the message says how to fix it."""


def validate_name(name: str) -> str:
    name = name.strip().lower()
    if not NAME_RE.match(name):
        raise PersonaError(
            f"`{name}` is not a valid persona name: use 2-32 characters, lowercase letters, "
            "digits, `-` or `_`, starting with a letter."
        )
    return name


def make_custom(
    name: str,
    prompt: str,
    *,
    description: str = "",
    model: str | None = None,
    temperature: float | None = None,
    constraints: list[str] | tuple[str, ...] = (),
    reasoning_effort: str | None = None,
) -> Persona:
    """Build a custom persona, refusing names of built-ins and oversize prompts."""
    name = validate_name(name)
    if name in BUILTINS:
        raise PersonaError(f"`{name}` is a built-in persona; pick another name.")
    prompt = prompt.strip()
    if not prompt:
        raise PersonaError("The system prompt is empty.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise PersonaError(f"The system prompt is {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}.")
    constraints = tuple(c.strip() for c in constraints if c.strip())
    if len(constraints) > MAX_CONSTRAINTS:
        raise PersonaError(f"At most {MAX_CONSTRAINTS} constraints are allowed.")
    for c in constraints:
        if len(c) > MAX_CONSTRAINT_CHARS:
            raise PersonaError(f"A constraint is longer than {MAX_CONSTRAINT_CHARS} characters: `{c[:40]}…`")
    if temperature is not None and not 0 <= temperature <= 2:
        raise PersonaError("Temperature must be between 0 and 2.")
    if reasoning_effort is not None and reasoning_effort not in llm.REASONING_EFFORTS:
        raise PersonaError(f"reasoning must be one of {', '.join(llm.REASONING_EFFORTS)}.")
    if model and not tokens.model_info(model).chat:
        raise PersonaError(
            f"`{model[:60]}` is only served by OpenAI's Responses API, and Threadwise uses Chat "
            "Completions; pick another model."
        )
    return Persona(
        name=name,
        description=(description or prompt.split("\n")[0])[:150],
        prompt=prompt,
        model=model or None,
        temperature=temperature,
        constraints=constraints,
        reasoning_effort=reasoning_effort,
    )


def to_json(persona: Persona) -> str:
    return json.dumps(asdict(persona))


def from_json(raw: str | bytes) -> Persona:
    data = json.loads(raw)
    data["constraints"] = tuple(data.get("constraints") or ())
    return Persona(**data)


def system_prompt(persona: Persona, *, domain: str = "", team_prompt: str = "") -> str:
    """The system message: persona, the team's domain, then the rules answers must meet."""
    text = persona.prompt.replace("{domain}", domain.strip() or "the team's domain")
    if team_prompt:
        text += f"\n\nAbout this team and its domain: {team_prompt.strip()}"
    if persona.constraints:
        rules = "\n".join(f"- {c}" for c in persona.constraints)
        text += f"\n\nEvery answer must satisfy these constraints:\n{rules}"
    return text


@dataclass
class Resolved:
    """The persona in force for a thread, and where the choice came from."""

    persona: Persona
    choice: Choice
    system: str
    missing: str = ""  # a chosen custom persona that has since been deleted
    team_prompt: str = ""
    custom_names: list[str] = field(default_factory=list)  # only when asked for
    channel_model: str = ""  # set by `/finetune use <model> #channel`


_RESOLVE = """
local personas, channels, settings, models = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local channel_choice = redis.call('HGET', channels, ARGV[1])
local ws = redis.call('HMGET', settings, 'persona', 'prompt')
local names = {}
if ARGV[2] ~= '' then table.insert(names, ARGV[2]) end
if channel_choice then table.insert(names, cjson.decode(channel_choice).name) end
if ws[1] then table.insert(names, cjson.decode(ws[1]).name) end
local defs = {}
if #names > 0 then defs = redis.call('HMGET', personas, unpack(names)) end
local all = {}
if ARGV[3] == '1' then all = redis.call('HKEYS', personas) end
return {channel_choice, ws[1], ws[2], defs, all, redis.call('HGET', models, ARGV[1])}
"""


async def resolve(
    store: Store,
    team: str,
    channel: str,
    thread_choice: Choice | None,
    *,
    default_team_prompt: str = "",
    with_names: bool = False,
) -> Resolved:
    """Pick thread > channel > workspace > built-in default, in one round trip.

    Channel and workspace choices are only known inside the script, so the script also
    fetches the custom definitions of every candidate name in the same call.
    """
    k = keys.workspace(store.prefix, team)
    script = store.redis.register_script(_RESOLVE)
    args = [channel, thread_choice.name if thread_choice else "", "1" if with_names else "0"]
    channel_raw, ws_raw, ws_prompt, defs, all_names, channel_model = await script(
        keys=[k.personas, k.channel_personas, k.settings, k.channel_models], args=args
    )
    channel_model = channel_model.decode() if isinstance(channel_model, bytes) else (channel_model or "")
    candidates = [thread_choice] if thread_choice else []
    names = [thread_choice.name] if thread_choice else []
    cc = Choice.from_json(channel_raw, "channel")
    wc = Choice.from_json(ws_raw, "workspace")
    if cc:
        names.append(cc.name)
    if wc:
        names.append(wc.name)
    candidates += [c for c in (cc, wc) if c]
    custom = {n: d for n, d in zip(names, defs or [], strict=False) if d}
    team_prompt = (ws_prompt.decode() if isinstance(ws_prompt, bytes) else ws_prompt) or default_team_prompt
    missing = ""
    custom_names = sorted(n.decode() if isinstance(n, bytes) else n for n in all_names or [])
    persona, chosen = BUILTINS["default"], Choice("default", scope="built-in")
    for choice in candidates:
        found = BUILTINS.get(choice.name)
        if found is None and choice.name in custom:
            found = from_json(custom[choice.name])
        if found is None:
            missing = missing or choice.name
            continue
        persona, chosen = found, Choice(choice.name, choice.domain, choice.by, choice.scope or "thread")
        break
    return Resolved(
        persona,
        chosen,
        system_prompt(persona, domain=chosen.domain, team_prompt=team_prompt),
        missing,
        team_prompt,
        custom_names,
        channel_model,
    )


# -- storage: each write is a single HSET/HDEL, so nothing is ever half-written ------


async def list_custom(store: Store, team: str) -> list[Persona]:
    return parse_custom(await store.redis.hgetall(keys.workspace(store.prefix, team).personas))


def parse_custom(raw: dict) -> list[Persona]:
    """The workspace's custom personas from their hash, by name."""
    return sorted((from_json(v) for v in raw.values()), key=lambda p: p.name)


async def get(store: Store, team: str, name: str) -> Persona | None:
    name = name.strip().lower()
    if name in BUILTINS:
        return BUILTINS[name]
    raw = await store.redis.hget(keys.workspace(store.prefix, team).personas, name)
    return from_json(raw) if raw else None


async def create(store: Store, team: str, persona: Persona) -> bool:
    """Add a custom persona; False if the name is taken (HSETNX: no race, no overwrite)."""
    key = keys.workspace(store.prefix, team).personas
    return bool(await store.redis.hsetnx(key, persona.name, to_json(persona)))


async def replace(store: Store, team: str, persona: Persona) -> None:
    await store.redis.hset(keys.workspace(store.prefix, team).personas, persona.name, to_json(persona))


async def delete(store: Store, team: str, name: str) -> bool:
    return bool(await store.redis.hdel(keys.workspace(store.prefix, team).personas, name))


async def set_channel(store: Store, team: str, channel: str, choice: Choice) -> None:
    await store.redis.hset(keys.workspace(store.prefix, team).channel_personas, channel, choice.to_json())


async def set_thread(
    store: Store, team: str, channel: str, thread_ts: str, choice: Choice, *, ttl: int
) -> None:
    """A thread's own choice, kept in its metadata (read back at its next turn)."""
    conv_id = keys.conversation_id(team, channel, thread_ts)
    await history.set_meta(store, conv_id, {"persona": choice.to_json()}, ttl=ttl)


async def set_channel_model(store: Store, team: str, channel: str, model: str) -> None:
    """`/finetune use <model> #channel`: turns in `channel` use `model` (see `resolve`)."""
    await store.redis.hset(keys.workspace(store.prefix, team).channel_models, channel, model)


async def set_workspace(
    store: Store, team: str, *, choice: Choice | None = None, prompt: str | None = None
) -> None:
    fields = {}
    if choice is not None:
        fields["persona"] = choice.to_json()
    if prompt is not None:
        fields["prompt"] = prompt
    if fields:
        await store.redis.hset(keys.workspace(store.prefix, team).settings, mapping=fields)


def check_domain(domain: str) -> str:
    domain = " ".join(domain.split())
    if len(domain) > MAX_DOMAIN_CHARS:
        raise PersonaError(
            f"The domain is {len(domain)} characters; the limit is {MAX_DOMAIN_CHARS}. "
            "Name the field in a few words (e.g. `tax law`), and put details in `/persona team`."
        )
    return domain


def describe(persona: Persona) -> str:
    """One line for listings."""
    extras = []
    if persona.model:
        extras.append(f"model `{persona.model}`")
    if persona.temperature is not None:
        extras.append(f"temperature {persona.temperature}")
    if persona.reasoning_effort:
        extras.append(f"reasoning {persona.reasoning_effort}")
    if persona.constraints:
        extras.append(f"{len(persona.constraints)} constraint(s)")
    tail = f" ({', '.join(extras)})" if extras else ""
    return f"{persona.description}{tail}"
