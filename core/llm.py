"""The OpenAI client: one AsyncOpenAI, streamed chat, moderation, and one retry policy.

The SDK's own retries are switched off (`max_retries=0`) so tenacity is the only layer:
otherwise 4 tenacity attempts x 3 SDK attempts would hammer a struggling server 12 times.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import openai
from openai import AsyncOpenAI, AsyncStream
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from core import tokens
from core.settings import Settings

log = logging.getLogger(__name__)

MODERATION_MODEL = "omni-moderation-latest"
MAX_RETRY_AFTER = 30.0  # honour Retry-After, but never park a Slack reply for minutes


def create_openai(settings: Settings, *, api_key: str | None = None) -> AsyncOpenAI:
    """The deployment's client (or, with `api_key`, a workspace's own), on the SDK's
    aiohttp transport; call inside the running loop.

    httpx's pool scans every connection on each request, which showed up as the top cost
    with hundreds of answers streaming at once; aiohttp's connector does not.
    """
    return AsyncOpenAI(
        api_key=api_key or settings.openai_api_key or "not-needed",
        base_url=settings.openai_base_url or None,
        timeout=settings.openai_timeout,
        max_retries=0,
        http_client=openai.DefaultAioHttpClient(timeout=settings.openai_timeout),
    )


def _code(exc: BaseException) -> str | None:
    code = getattr(exc, "code", None)
    if code:
        return str(code)
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("code"):
            return str(inner["code"])
    return None


def error_kind(exc: BaseException) -> str:
    """Classify an OpenAI failure into what the user can do about it."""
    if isinstance(exc, openai.RateLimitError):
        return "quota" if _code(exc) == "insufficient_quota" else "rate_limited"
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return "auth"
    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "unavailable"
    if isinstance(exc, openai.BadRequestError):
        if _code(exc) == "context_length_exceeded":
            return "context_length"
        return "bad_request"
    if isinstance(exc, openai.NotFoundError):
        return "model_not_found"
    if isinstance(exc, openai.APIStatusError) and exc.status_code >= 500:
        return "unavailable"
    return "other"


def is_retryable(exc: BaseException) -> bool:
    """429 (except an empty quota), 408/409, 5xx, timeouts and dropped connections."""
    if isinstance(exc, openai.RateLimitError):
        return _code(exc) != "insufficient_quota"
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code >= 500 and "validation error" in str(exc).lower():
            return False  # a server that rejects the request's shape will do so again
        return exc.status_code in (408, 409) or exc.status_code >= 500
    return False


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw:
            try:
                return max(0.0, float(raw) * scale)
            except ValueError:
                continue
    return None


@dataclass
class _Backoff:
    """Exponential backoff with full jitter, unless the server said how long to wait."""

    initial: float = 0.5
    maximum: float = 8.0

    def __call__(self, retry_state) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        told = _retry_after(exc) if exc else None
        if told is not None:
            return min(told, MAX_RETRY_AFTER)
        ceiling = min(self.maximum, self.initial * 2 ** (retry_state.attempt_number - 1))
        return random.uniform(self.initial / 2, ceiling)


def _log_retry(retry_state) -> None:
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    log.warning(
        "OpenAI call failed (%s, attempt %d); retrying",
        type(exc).__name__,
        retry_state.attempt_number,
    )


def retrying(attempts: int, *, backoff: _Backoff | None = None) -> AsyncRetrying:
    return AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=backoff or _Backoff(),
        retry=retry_if_exception(is_retryable),
        before_sleep=_log_retry,
        reraise=True,
    )


async def _post_chat(client: AsyncOpenAI, body: dict[str, Any], *, stream: bool):
    """POST /chat/completions through the SDK's public low-level `post`.

    `chat.completions.create()` first walks every message through the SDK's TypedDict
    transform: measured at ~40 ms of CPU per call with 270 history messages, more than the
    rest of a turn together. Our messages are plain JSON already, so we send the body as
    is and keep everything else of the SDK: auth, errors, SSE parsing and response types.
    """
    if stream:
        return await client.post(
            "/chat/completions",
            body=body,
            cast_to=ChatCompletionChunk,
            stream=True,
            stream_cls=AsyncStream[ChatCompletionChunk],
        )
    return await client.post("/chat/completions", body=body, cast_to=ChatCompletion)


# The current workspace's own client, when it set an OpenAI key (core/openai_keys.py);
# None: the deployment's. Set per request (bot/workspaces.py); tasks inherit it.
WORKSPACE_CLIENT: ContextVar[AsyncOpenAI | None] = ContextVar("threadwise_openai", default=None)


@dataclass
class StreamResult:
    """Filled in while a stream is consumed: usage arrives only in the final chunk."""

    text: str = ""
    finish_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    refusal: str = ""


def usage_of(usage: Any) -> dict[str, int]:
    """Token counts of a response's `usage`, cached prompt tokens included (they cost less)."""
    details = getattr(usage, "prompt_tokens_details", None)
    return {
        "prompt_tokens": getattr(usage, "prompt_tokens", 0) or 0,
        "completion_tokens": getattr(usage, "completion_tokens", 0) or 0,
        "cached_tokens": (getattr(details, "cached_tokens", 0) or 0) if details else 0,
    }


REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")  # weakest first


def closest_effort(asked: str, accepted: tuple[str, ...]) -> str:
    """The accepted effort nearest to what a persona asks (a tie goes up): one persona
    can then serve gpt-5 (no "none"), gpt-5.2 (adds "xhigh") and the o-series alike."""
    if asked in accepted or not accepted:
        return asked
    rank = REASONING_EFFORTS.index
    return min(accepted, key=lambda e: (abs(rank(e) - rank(asked)), -rank(e)))


def steering_args(model: str, *, temperature: float | None, reasoning_effort: str | None) -> dict[str, Any]:
    """The temperature and reasoning parameters `model` accepts, from what a persona asks.

    Reasoning models reject `temperature` (so it is dropped) and sampling models reject
    `reasoning_effort` (likewise); a model that reasons only when asked takes either, but
    `temperature` only while it doesn't reason. An unknown model gets `temperature` only.
    """
    info = tokens.model_info(model)
    steering = info.steering
    args: dict[str, Any] = {}
    if steering != tokens.SAMPLING and reasoning_effort:
        reasoning_effort = closest_effort(reasoning_effort, info.efforts)
        args["reasoning_effort"] = reasoning_effort
    thinking = steering == tokens.REASONING or reasoning_effort not in (None, "none")
    if temperature is not None and (
        steering == tokens.SAMPLING or (steering == tokens.EITHER and not thinking)
    ):
        args["temperature"] = temperature
    return args


async def stream_chat(
    client: AsyncOpenAI,
    *,
    model: str,
    messages: list[dict],
    result: StreamResult,
    max_tokens: int | None = None,
    temperature: float | None = None,
    reasoning_effort: str | None = None,
    attempts: int = 4,
    backoff: _Backoff | None = None,
) -> AsyncIterator[str]:
    """Yield text deltas of a streamed chat completion.

    Opening the stream is retried; once tokens have reached the user a broken stream is
    not (the SDK cannot resume it), and the error propagates with `result.text` holding
    what arrived.

    Example:
        result = StreamResult()
        async for delta in stream_chat(client, model="gpt-4.1-mini", messages=msgs, result=result):
            print(delta, end="")
    """
    kwargs: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if max_tokens:
        kwargs["max_completion_tokens"] = max_tokens
    kwargs.update(steering_args(model, temperature=temperature, reasoning_effort=reasoning_effort))
    stream = None
    async for attempt in retrying(attempts, backoff=backoff):
        with attempt:
            stream = await _post_chat(client, kwargs, stream=True)
    assert stream is not None
    async with stream:
        async for chunk in stream:
            if chunk.usage:
                result.usage = usage_of(chunk.usage)
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            if choice.finish_reason:
                result.finish_reason = choice.finish_reason
            delta = choice.delta
            if delta is None:
                continue
            if getattr(delta, "refusal", None):
                result.refusal += delta.refusal
            if delta.content:
                result.text += delta.content
                yield delta.content


async def complete(
    client: AsyncOpenAI,
    *,
    model: str,
    messages: list[dict],
    attempts: int = 4,
    backoff: _Backoff | None = None,
    **kwargs: Any,
):
    """A non-streamed chat completion with the shared retry policy."""
    async for attempt in retrying(attempts, backoff=backoff):
        with attempt:
            return await _post_chat(client, {"model": model, "messages": messages, **kwargs}, stream=False)


async def is_flagged(client: AsyncOpenAI, text: str, *, attempts: int = 3) -> bool:
    """Screen user input with the moderation endpoint before it reaches the chat model."""
    async for attempt in retrying(attempts):
        with attempt:
            response = await client.moderations.create(model=MODERATION_MODEL, input=text)
    return any(r.flagged for r in response.results)
