"""Which persona applies: thread > channel > workspace > built-in default."""

from __future__ import annotations

import pytest

from core import history, keys, personas
from core.personas import Choice, PersonaError


async def _set(store, field_key: str, field: str, value: str) -> None:
    await store.redis.hset(getattr(keys.workspace(store.prefix, "T1"), field_key), field, value)


async def test_default_when_nothing_is_chosen(store):
    r = await personas.resolve(store, "T1", "C1", None, default_team_prompt="We sell bikes.")
    assert r.persona.name == "default" and r.choice.scope == "built-in"
    assert r.system.endswith("About this team and its domain: We sell bikes.")


async def test_thread_beats_channel_beats_workspace(store):
    await _set(store, "settings", "persona", Choice("concise").to_json())
    r = await personas.resolve(store, "T1", "C1", None)
    assert (r.persona.name, r.choice.scope) == ("concise", "workspace")

    await _set(store, "channel_personas", "C1", Choice("expert", domain="tax law").to_json())
    r = await personas.resolve(store, "T1", "C1", None)
    assert (r.persona.name, r.choice.scope) == ("expert", "channel")
    assert "expert in tax law" in r.system
    # another channel still follows the workspace
    assert (await personas.resolve(store, "T1", "C2", None)).persona.name == "concise"

    r = await personas.resolve(store, "T1", "C1", Choice("teacher"))
    assert (r.persona.name, r.choice.scope) == ("teacher", "thread")


async def test_custom_persona_with_model_and_constraints(store):
    p = personas.make_custom(
        "support",
        "You answer support tickets.",
        model="gpt-4o-mini",
        temperature=0.2,
        constraints=["Cite the KB article"],
    )
    await _set(store, "personas", "support", personas.to_json(p))
    await _set(store, "channel_personas", "C1", Choice("support").to_json())
    r = await personas.resolve(store, "T1", "C1", None)
    assert r.persona.model == "gpt-4o-mini" and r.persona.temperature == 0.2
    assert r.system.endswith("Every answer must satisfy these constraints:\n- Cite the KB article")


async def test_deleted_custom_persona_falls_through_and_is_reported(store):
    await _set(store, "channel_personas", "C1", Choice("gone").to_json())
    r = await personas.resolve(store, "T1", "C1", None)
    assert r.persona.name == "default" and r.missing == "gone"


def test_names_and_sizes_are_validated():
    with pytest.raises(PersonaError, match="not a valid persona name"):
        personas.make_custom("Bad Name!", "x")
    with pytest.raises(PersonaError, match="built-in"):
        personas.make_custom("teacher", "x")
    with pytest.raises(PersonaError, match="limit is 4000"):
        personas.make_custom("long", "x" * 4001)
    with pytest.raises(PersonaError, match="Temperature"):
        personas.make_custom("hot", "x", temperature=3)


def test_seven_builtins_ship():
    assert set(personas.BUILTINS) >= {
        "default",
        "expert",
        "teacher",
        "concise",
        "creative",
        "socratic",
        "balanced",
    }


async def test_a_thread_choice_is_kept_in_the_threads_metadata(store):
    await personas.set_thread(store, "T1", "C1", "1.000", Choice("teacher", by="U1"), ttl=3600)
    meta = await history.get_meta(store, history.conversation_id("T1", "C1", "1.000"))
    assert Choice.from_json(meta["persona"]) == Choice("teacher", by="U1")
    assert "created" in meta


async def test_a_channel_model_is_resolved_for_that_channel_only(store):
    await personas.set_channel_model(store, "T1", "C1", "ft:gpt-4o-mini:acme::abc")
    assert (await personas.resolve(store, "T1", "C1", None)).channel_model == "ft:gpt-4o-mini:acme::abc"
    assert (await personas.resolve(store, "T1", "C2", None)).channel_model == ""
