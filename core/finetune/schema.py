"""The shape OpenAI's chat fine-tuning expects of one example, checked field by field.

Errors are what make OpenAI reject the file (or a line of it); warnings are what it
accepts but probably trains badly on. Each message is named by its 1-based position,
so "line 7, message 3" is enough to find it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from core.finetune.report import Problem, Severity

ALLOWED_TOP_LEVEL_KEYS = frozenset({"messages", "tools", "parallel_tool_calls", "functions"})
ALLOWED_MESSAGE_KEYS = frozenset(
    {"role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call", "refusal"}
)
ALLOWED_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
INSTRUCTION_ROLES = frozenset({"system", "developer"})
# Vision fine-tuning takes images in user messages only; text parts go anywhere.
IMAGE_PART_ROLES = frozenset({"user"})
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ROLE_HINTS = {
    "function": "the deprecated function-calling format; use role 'tool' with a tool_call_id",
    "human": "use 'user'",
    "bot": "use 'assistant'",
    "model": "use 'assistant'",
    "ai": "use 'assistant'",
}

Add = Callable[[Severity, str, str], None]


def _type_name(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number" if isinstance(value, int | float) else type(value).__name__)


def _nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def check_example(example: Any, line: int, file: str = "train") -> list[Problem]:
    """All format problems of one parsed line; an empty list means OpenAI should accept it."""
    problems: list[Problem] = []

    def add(severity: Severity, code: str, message: str) -> None:
        problems.append(Problem(line=line, severity=severity, code=code, message=message, file=file))

    messages = _messages_of(example, add)
    if messages is None:
        return problems
    tool_names = _check_tools(example, add)
    roles = _check_messages(messages, tool_names, example.get("parallel_tool_calls", True), add)
    _check_turns(messages, roles, add)
    return problems


def _messages_of(example: Any, add: Add) -> list | None:
    """The example's `messages` list, or None when there is none to check message by message.

    Without an object and a non-empty list there is nothing else worth reporting: every
    other check would only repeat the same mistake in other words.
    """
    if not isinstance(example, dict):
        hint = " (JSONL needs one example object per line)" if isinstance(example, list) else ""
        add("error", "not_a_dict", f"example is a JSON {_type_name(example)}, not an object{hint}")
        return None
    for key in example:
        if key not in ALLOWED_TOP_LEVEL_KEYS:
            add(
                "warning",
                "unknown_top_level_key",
                f"unrecognized top-level key {key!r} is not used for training",
            )
    messages = example.get("messages")
    if messages is None or messages == []:
        hint = (
            " (prompt/completion is the legacy format; convert to chat messages)"
            if "prompt" in example
            else ""
        )
        add("error", "missing_messages", f"missing or empty 'messages' list{hint}")
        return None
    if not isinstance(messages, list):
        add("error", "missing_messages", f"'messages' must be a list, not a JSON {_type_name(messages)}")
        return None
    return messages


def _check_messages(messages: list, tool_names: set[str] | None, parallel: Any, add: Add) -> list[Any]:
    """Check each message in order and return the roles of those that are objects.

    In order because a tool message must answer a call made before it: the ids of the
    calls seen so far are carried from one message to the next.
    """
    call_ids: set[str] = set()
    roles: list[Any] = []
    for index, message in enumerate(messages, start=1):
        where = f"message {index}"
        if not isinstance(message, dict):
            add("error", "message_not_dict", f"{where} is a JSON {_type_name(message)}, not an object")
            continue
        role = _check_role(message, where, add)
        roles.append(role)
        where = f"{where} ({role})" if isinstance(role, str) else where
        _check_content(message, role, where, add)
        _check_name_and_refusal(message, role, where, add)
        _check_weight(message, role, where, add)
        calls = _check_tool_calls(message, role, where, tool_names, add)
        call_ids.update(calls)
        if len(calls) > 1 and parallel is False:
            add(
                "warning",
                "parallel_calls_disabled",
                f"{where}: several tool calls but parallel_tool_calls is false",
            )
        _check_tool_call_id(message, role, where, call_ids, add)
    return roles


def _check_role(message: dict, where: str, add: Add) -> Any:
    """The message's role (whatever it is), after checking its keys and the role itself.

    A wrong role gets a hint when it is a common mistake ("human", "bot", the deprecated
    "function"), since those come from converting another tool's format.
    """
    role = message.get("role")
    for key in message:
        if key not in ALLOWED_MESSAGE_KEYS:
            add("error", "unknown_message_key", f"{where}: unrecognized key {key!r}")
    if role is None:
        add("error", "missing_role", f"{where}: missing 'role'")
    elif not isinstance(role, str) or role not in ALLOWED_ROLES:
        hint = _ROLE_HINTS.get(str(role).lower(), "expected system, developer, user, assistant or tool")
        add("error", "unknown_role", f"{where}: unrecognized role {_shown(role)} ({hint})")
    # A role that isn't a string (a list, an object) is reported above; from here on it
    # counts as no role, so later checks never hash or compare it.
    return role if isinstance(role, str) else None


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_turns(messages: list, roles: list[Any], add: Add) -> None:
    """Whether the conversation as a whole has something to train on, and a usual shape.

    Only assistant messages are trained, so none (or none with weight) is an error or a
    wasted example; a missing system or user message is legal but rarely intended.
    """
    assistant_messages = [m for m in messages if isinstance(m, dict) and m.get("role") == "assistant"]
    if not assistant_messages:
        add("error", "no_assistant", "no assistant message: there is nothing to train on")
    else:
        if all(m.get("weight") == 0 for m in assistant_messages):
            add("warning", "no_trained_assistant", "every assistant message has weight 0: nothing is trained")
        last = messages[-1]
        if not (isinstance(last, dict) and last.get("role") == "assistant"):
            add(
                "warning",
                "last_not_assistant",
                "last message is not from the assistant: trailing turns are not trained",
            )
    if not any(role in INSTRUCTION_ROLES for role in roles):
        add("warning", "no_system", "no system or developer message")
    if "user" not in roles:
        add("warning", "no_user", "no user message")


def _check_tools(example: dict, add: Add) -> set[str] | None:
    """Validate `tools`/`functions` and return the declared function names (None if none declared)."""
    names: set[str] | None = None
    tools = example.get("tools")
    if tools is not None:
        names = set()
        if not isinstance(tools, list):
            add("error", "bad_tools", f"'tools' must be a list, not a JSON {_type_name(tools)}")
        else:
            for index, tool in enumerate(tools, start=1):
                function = tool.get("function") if isinstance(tool, dict) else None
                if (
                    not isinstance(tool, dict)
                    or tool.get("type") != "function"
                    or not isinstance(function, dict)
                ):
                    add(
                        "error",
                        "bad_tools",
                        f"tool {index}: expected {{type: 'function', function: {{name, ...}}}}",
                    )
                elif not _nonempty_str(function.get("name")):
                    add("error", "bad_tools", f"tool {index}: function has no name")
                else:
                    names.add(function["name"])
                    if "parameters" in function and not isinstance(function["parameters"], dict):
                        add("error", "bad_tools", f"tool {index}: 'parameters' must be a JSON schema object")
    functions = example.get("functions")
    if functions is not None:
        names = names if names is not None else set()
        if not isinstance(functions, list):
            add("error", "bad_tools", f"'functions' must be a list, not a JSON {_type_name(functions)}")
        else:
            for index, function in enumerate(functions, start=1):
                if not isinstance(function, dict) or not _nonempty_str(function.get("name")):
                    add("error", "bad_tools", f"function {index}: expected an object with a 'name'")
                else:
                    names.add(function["name"])
    if "parallel_tool_calls" in example and not isinstance(example["parallel_tool_calls"], bool):
        add("error", "bad_tools", "'parallel_tool_calls' must be true or false")
    return names


def _check_content(message: dict, role: Any, where: str, add: Add) -> None:
    content = message.get("content")
    calls_instead = role == "assistant" and (
        message.get("tool_calls") is not None or message.get("function_call") is not None
    )
    if content is None:
        if not calls_instead:
            add("error", "missing_content", f"{where}: missing content")
        return
    if isinstance(content, str):
        if not content.strip() and not calls_instead:
            add("warning", "empty_content", f"{where}: content is empty")
        return
    if not isinstance(content, list) or not content:
        add(
            "error",
            "bad_content",
            f"{where}: content must be a string or a list of text parts, not {content!r:.40}",
        )
        return
    for index, part in enumerate(content, start=1):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            continue
        if kind == "image_url" and role in IMAGE_PART_ROLES and isinstance(part.get("image_url"), dict):
            if _nonempty_str(part["image_url"].get("url")):
                continue
        add(
            "error", "bad_content", f"{where}: content part {index} is not a {{type: 'text', text: ...}} part"
        )


def _check_name_and_refusal(message: dict, role: Any, where: str, add: Add) -> None:
    if "name" in message:
        name = message["name"]
        if not isinstance(name, str):
            add("error", "bad_name", f"{where}: 'name' must be a string")
        elif not _NAME_PATTERN.match(name):
            add("warning", "bad_name", f"{where}: name {name!r} should be 1-64 letters, digits, _ or -")
    refusal = message.get("refusal")
    if refusal is not None and (role != "assistant" or not isinstance(refusal, str)):
        add("error", "bad_refusal", f"{where}: 'refusal' must be a string on an assistant message")


def _check_weight(message: dict, role: Any, where: str, add: Add) -> None:
    if "weight" not in message:
        return
    weight = message["weight"]
    if role in ALLOWED_ROLES and role != "assistant":
        add("error", "weight_not_assistant", f"{where}: 'weight' is only allowed on assistant messages")
    if isinstance(weight, bool) or not isinstance(weight, int) or weight not in (0, 1):
        add("error", "bad_weight", f"{where}: weight must be 0 or 1, not {weight!r}")


def _check_tool_calls(
    message: dict, role: Any, where: str, tool_names: set[str] | None, add: Add
) -> list[str]:
    """Validate assistant tool calls; returns their ids so later tool messages can be matched."""
    ids: list[str] = []
    function_call = message.get("function_call")
    if function_call is not None:
        if role != "assistant":
            add("error", "bad_function_call", f"{where}: only assistant messages may have 'function_call'")
        elif not (
            isinstance(function_call, dict)
            and _nonempty_str(function_call.get("name"))
            and isinstance(function_call.get("arguments"), str)
        ):
            add("error", "bad_function_call", f"{where}: function_call needs a 'name' and string 'arguments'")
        else:
            _check_call_target(function_call, where, tool_names, add)
    calls = message.get("tool_calls")
    if calls is None:
        return ids
    if role != "assistant":
        add("error", "bad_tool_calls", f"{where}: only assistant messages may have 'tool_calls'")
        return ids
    if not isinstance(calls, list) or not calls:
        add("error", "bad_tool_calls", f"{where}: 'tool_calls' must be a non-empty list")
        return ids
    for index, call in enumerate(calls, start=1):
        label = f"{where}, tool call {index}"
        if not isinstance(call, dict):
            add("error", "bad_tool_calls", f"{label}: expected an object")
            continue
        if not _nonempty_str(call.get("id")):
            add("error", "bad_tool_calls", f"{label}: missing 'id'")
        else:
            ids.append(call["id"])
        if call.get("type") != "function":
            add("error", "bad_tool_calls", f"{label}: 'type' must be 'function'")
        function = call.get("function")
        if not isinstance(function, dict) or not _nonempty_str(function.get("name")):
            add("error", "bad_tool_calls", f"{label}: 'function' needs a 'name'")
        elif not isinstance(function.get("arguments"), str):
            add("error", "bad_tool_calls", f"{label}: function 'arguments' must be a JSON-encoded string")
        else:
            _check_call_target(function, label, tool_names, add)
    return ids


def _check_call_target(function: dict, where: str, tool_names: set[str] | None, add: Add) -> None:
    """A model trained on bad arguments or undeclared tools learns to emit them."""
    try:
        json.loads(function["arguments"])
    except ValueError:
        add("warning", "tool_arguments_not_json", f"{where}: arguments are not valid JSON")
    if tool_names is not None and function["name"] not in tool_names:
        add(
            "warning",
            "unknown_tool",
            f"{where}: calls {function['name']!r}, which the example does not declare",
        )


def _check_tool_call_id(message: dict, role: Any, where: str, call_ids: set[str], add: Add) -> None:
    call_id = message.get("tool_call_id")
    if role == "tool":
        if not _nonempty_str(call_id):
            add("error", "missing_tool_call_id", f"{where}: tool message without 'tool_call_id'")
        elif call_id not in call_ids:
            add(
                "warning",
                "unknown_tool_call_id",
                f"{where}: tool_call_id {call_id!r} answers no earlier tool call",
            )
    elif call_id is not None and role in ALLOWED_ROLES:
        add("error", "bad_tool_call_id", f"{where}: 'tool_call_id' belongs on tool messages only")
