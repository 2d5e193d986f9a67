"""Many workspaces: installed through the real OAuth redirect flow, each answered with its
own token and memory, and forgotten after an uninstall's grace period."""

from __future__ import annotations

import asyncio
import json
import re
import time

from core import admins, audit, keys
from tests.scenarios.harness import mention, message
from tests.standins.openai_api import Reply

DISTRIBUTED = dict(
    SLACK_BOT_TOKEN="",
    SLACK_CLIENT_ID="111.222",
    SLACK_CLIENT_SECRET="client-secret-abc",
    UNINSTALL_GRACE_DAYS="0.00002",  # under 2 s
    TURN_LEASE_SECONDS="1",  # the scan (every lease/4) also deletes what is due
)


async def _install_page(bot) -> tuple[str, str]:
    """Open /slack/install as a browser does: the state cookie it sets, and the state."""
    async with bot.session.get(bot.url + "/slack/install", allow_redirects=False) as page:
        assert page.status in (200, 302)
        cookie = page.headers["Set-Cookie"].split(";", 1)[0]
        state = re.search(r"state=([\w-]+)", page.headers.get("Location", "") + await page.text()).group(1)
    assert cookie.endswith(state)
    return cookie, state


async def _redirect(bot, code: str, cookie: str, state: str) -> str:
    """Slack sending the installer back with `code`: the page's status and text."""
    url = f"{bot.url}/slack/oauth_redirect?code={code}&state={state}"
    async with bot.session.get(url, headers={"Cookie": cookie}, allow_redirects=False) as done:
        return f"{done.status} {await done.text()}"


async def _install(bot, slack, team: str, code: str, *, user: str = "U1", **kind) -> str:
    """The whole install: the page, Slack's consent (`add_install`), the redirect back."""
    slack.add_install(code, team=team, user=user, **kind)
    return await _redirect(bot, code, *await _install_page(bot))


async def _ask(bot, openai_api, text: str, team: str, **kw):
    openai_api.enqueue(Reply(text=f"answer to {text}"))
    event = mention(text, bot=f"UB{team}", **kw)  # each workspace's bot has its own id
    await bot.event(event, team=team, bot=f"UB{team}")
    await bot.idle()
    return event


async def test_two_installed_workspaces_are_answered_with_their_own_token_and_memory(
    http_bot, slack, openai_api
):
    bot = await http_bot(**DISTRIBUTED)
    assert (await _install(bot, slack, "T1", "code-1")).startswith("200")
    assert (await _install(bot, slack, "T2", "code-2")).startswith("200")
    tokens = {team: token for token, team in slack.issued_tokens.items()}

    first = await _ask(bot, openai_api, "T1 secret plan", "T1", channel="C1")
    asked = openai_api.chat_requests()[-1]["messages"][-1]["content"]
    assert asked == "<@U1>: T1 secret plan", "the mention of T1's own bot (UBT1) was taken out"
    second = await _ask(bot, openai_api, "T2 question", "T2", channel="C2")
    [a1] = slack.messages(thread_ts=first["ts"])
    [a2] = slack.messages(thread_ts=second["ts"])
    assert "answer to T1 secret plan" in a1["text"] and "answer to T2 question" in a2["text"]
    by_channel = {}
    for call in slack.calls_to("chat.postMessage") + slack.calls_to("chat.update"):
        by_channel.setdefault(call.params.get("channel"), set()).add(slack.token_of(call))
    assert by_channel["C1"] == {tokens["T1"]} and by_channel["C2"] == {tokens["T2"]}
    assert "T1 secret plan" not in str(openai_api.chat_requests()[-1]["messages"]), "nothing of T1 in T2"

    # A workspace that never installed the app gets nothing, with no token to use.
    stray = mention("hello?", channel="C3", bot="UBT3")
    await bot.event(stray, team="T3", bot="UBT3")
    await bot.idle()
    assert not slack.messages(thread_ts=stray["ts"])


async def test_a_state_works_once_and_a_forged_one_installs_nothing(http_bot, slack, openai_api):
    bot = await http_bot(**DISTRIBUTED)
    slack.client_credentials = ("111.222", "client-secret-abc")  # and the app's credentials are sent
    slack.add_install("code-x", team="T9")
    async with bot.session.get(bot.url + "/slack/oauth_redirect?code=code-x&state=forged") as done:
        assert done.status >= 400
    assert "code-x" in slack.oauth_codes, "the code was never exchanged"
    assert not slack.issued_tokens

    # a real state, used twice: the second time installs nothing
    slack.add_install("code-y", team="T9")
    cookie, state = await _install_page(bot)
    assert (await _redirect(bot, "code-y", cookie, state)).startswith("200")
    slack.add_install("code-z", team="T8")
    assert int((await _redirect(bot, "code-z", cookie, state))[:3]) >= 400
    assert "code-z" in slack.oauth_codes and set(slack.issued_tokens.values()) == {"T9"}


async def test_an_uninstalled_workspace_is_forgotten_after_its_grace_period(http_bot, slack, openai_api):
    bot = await http_bot(**DISTRIBUTED)
    await _install(bot, slack, "T1", "code-1")
    await _install(bot, slack, "T2", "code-2")
    await _ask(bot, openai_api, "keep me", "T1", channel="C1")
    await _ask(bot, openai_api, "forget me", "T2", channel="C2")
    store = bot.deps.core.store

    async def keys_of(team: str) -> list:
        found = []
        for pattern in keys.workspace_patterns(store.prefix, team):
            found += [k async for k in store.redis.scan_iter(match=pattern)]
        return found

    assert await keys_of("T2")
    await bot.event({"type": "app_uninstalled", "event_ts": "1.0"}, team="T2", bot="UBT2")
    await bot.idle()
    after = mention("still there?", channel="C2", bot="UBT2")
    await bot.event(after, team="T2", bot="UBT2")
    await bot.idle()
    assert not slack.messages(thread_ts=after["ts"]), "no answer once uninstalled"
    deadline = time.monotonic() + 10
    while await keys_of("T2") and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert await keys_of("T2") == [], "T2's data was deleted after the grace period"
    assert await keys_of("T1"), "T1's was not"
    assert await bot.deps.installations.async_find_bot(enterprise_id=None, team_id="T2") is None
    assert await bot.deps.installations.async_find_bot(enterprise_id=None, team_id="T1") is not None


async def test_a_rotating_token_is_refreshed_once_though_two_processes_need_it(http_bot, slack, openai_api):
    one = await http_bot(**DISTRIBUTED)
    two = await http_bot(**DISTRIBUTED)
    slack.token_lifetime = 3_600  # under the two hours before expiry when tokens are refreshed
    assert (await _install(one, slack, "T1", "code-r", rotation=True)).startswith("200")
    [installed] = slack.issued_tokens
    slack.token_lifetime = 43_200
    openai_api.enqueue(Reply(text="from one"), Reply(text="from two"))
    a, b = mention("first", channel="C1", bot="UBT1"), mention("second", channel="C1", bot="UBT1")
    await asyncio.gather(one.event(a, team="T1", bot="UBT1"), two.event(b, team="T1", bot="UBT1"))
    await one.idle()
    await two.idle()
    assert slack.messages(thread_ts=a["ts"]) and slack.messages(thread_ts=b["ts"]), "both answered at once"
    refreshes = [
        c for c in slack.calls_to("oauth.v2.access") if c.params.get("grant_type") == "refresh_token"
    ]
    assert len(refreshes) == 1, "one refresh token, spent once"
    rotated = next(t for t in slack.issued_tokens if t != installed)
    saved = await one.deps.installations.async_find_bot(enterprise_id=None, team_id="T1")
    assert saved.bot_token == rotated and saved.bot_token_expires_at > time.time() + 40_000

    later = mention("third", channel="C1", bot="UBT1")
    await one.event(later, team="T1", bot="UBT1")
    await one.idle()
    [answer] = slack.messages(thread_ts=later["ts"])
    posted = [
        c
        for c in slack.calls_to("chat.postMessage") + slack.calls_to("chat.update")
        if c.params.get("ts") == answer["ts"] or c.params.get("thread_ts") == later["ts"]
    ]
    assert posted and {slack.token_of(c) for c in posted} == {rotated}, "the refreshed token from then on"


async def test_the_installer_is_the_workspaces_first_admin_and_only_there(http_bot, slack, openai_api):
    bot = await http_bot(**DISTRIBUTED)
    await _install(bot, slack, "T1", "code-1", user="UINST")
    await _install(bot, slack, "T2", "code-2", user="UOTHER")
    slack.users["UINST"] = {"id": "UINST", "is_admin": False}
    slack.users["UOTHER"] = {"id": "UOTHER", "is_admin": False}

    async def admins_command(user: str, team: str) -> str:
        key = f"{user}-{team}"
        await bot.command("/finetune", "admins", user=user, team=team, response_url=slack.response_url(key))
        await bot.idle()
        [reply] = await slack.wait_response(key)
        return reply["text"]

    assert "<@UINST>" in await admins_command("UINST", "T1")
    assert "for admins only" in await admins_command("UINST", "T2")


async def test_a_workspaces_own_openai_key_is_checked_kept_encrypted_and_used_only_there(
    http_bot, slack, openai_api
):
    from cryptography.fernet import Fernet

    bot = await http_bot(**DISTRIBUTED, OPENAI_KEY_ENCRYPTION_KEY=Fernet.generate_key().decode())
    await _install(bot, slack, "T1", "code-1", user="UINST")
    await _install(bot, slack, "T2", "code-2", user="UOTHER")

    async def finetune(text: str, key: str) -> str:
        await bot.command("/finetune", text, user="UINST", team="T1", response_url=slack.response_url(key))
        await bot.idle()
        [reply] = await slack.wait_response(key)
        return reply["text"]

    own = "sk-workspace-one-0123456789abcdef"
    openai_api.rejected_keys.add("sk-revoked-0123456789abcdef")
    assert "OpenAI rejected that key" in await finetune("openai-key sk-revoked-0123456789abcdef", "bad")
    assert "doesn't look like an OpenAI API key" in await finetune("openai-key hunter2", "silly")
    done = await finetune(f"openai-key {own}", "set")
    assert "sk-…cdef" in done and own not in done

    assert own not in await _everything_in_redis(bot), "the key is nowhere in Redis in clear"
    entries = await audit.recent(bot.deps.core.store, "T1", 100)
    assert any(e["action"] == "openai-key set" for e in entries)
    assert own not in json.dumps(entries) and "sk-revoked-0123456789abcdef" not in json.dumps(entries)

    await _ask(bot, openai_api, "with my key", "T1", channel="C1")
    assert openai_api.requests[-1].headers["Authorization"] == f"Bearer {own}"
    await _ask(bot, openai_api, "with theirs", "T2", channel="C2")
    assert openai_api.requests[-1].headers["Authorization"] == "Bearer sk-test"

    assert "deployment's OpenAI key again" in await finetune("openai-key clear", "clear")
    await _ask(bot, openai_api, "back to default", "T1", channel="C1")
    assert openai_api.requests[-1].headers["Authorization"] == "Bearer sk-test"


async def _everything_in_redis(bot) -> str:
    """Every value under the bot's prefix, read by type (DUMP output is encoded)."""
    redis, out = bot.deps.core.store.redis, []
    async for key in redis.scan_iter(match=f"{bot.deps.core.store.prefix}:*"):
        kind = (await redis.type(key)).decode()
        if kind == "string":
            out.append(await redis.get(key))
        elif kind == "hash":
            out += list((await redis.hgetall(key)).values())
        elif kind == "list":
            out += await redis.lrange(key, 0, -1)
        elif kind == "set":
            out += list(await redis.smembers(key))
        elif kind == "zset":
            out += await redis.zrange(key, 0, -1)
    return b"\n".join(v for v in out if isinstance(v, bytes)).decode(errors="replace")


async def test_a_reinstall_by_a_member_makes_them_no_admin(http_bot, slack, openai_api):
    bot = await http_bot(**DISTRIBUTED)
    await _install(bot, slack, "T1", "code-1", user="UFIRST")
    await _install(bot, slack, "T1", "code-2", user="UMEMBER")
    assert await admins.named(bot.deps.core.store, "T1") == ["UFIRST"]
    entries = await audit.recent(bot.deps.core.store, "T1")
    assert [e["detail"] for e in entries if e["action"] == "install"] == [
        "reinstall",
        "first install: named admin",
    ]


async def test_a_thread_reply_that_mentions_the_bot_leaves_nothing_in_the_inbox(http_bot, slack, openai_api):
    """Before the ack the request isn't authorized yet: the bot's id comes from the payload."""
    bot = await http_bot(**DISTRIBUTED)
    await _install(bot, slack, "T1", "code-1")
    first = await _ask(bot, openai_api, "start", "T1", channel="C1")
    reply = message("<@UBT1> and a follow-up", thread_ts=first["ts"], channel="C1")
    await bot.event(reply, team="T1", bot="UBT1")
    await bot.event(
        {**mention("and a follow-up", thread_ts=first["ts"], channel="C1", bot="UBT1"), "ts": reply["ts"]},
        team="T1",
        bot="UBT1",
    )
    await bot.idle()
    conv = keys.conversation_id("T1", "C1", first["ts"])
    inbox = keys.conversation(bot.deps.core.store.prefix, conv).inbox
    assert await bot.deps.core.store.redis.hlen(inbox) == 0


async def test_an_org_wide_install_serves_every_workspace_of_the_org_and_is_forgotten_whole(
    http_bot, slack, openai_api
):
    bot = await http_bot(**DISTRIBUTED)
    assert (await _install(bot, slack, "E1", "code-org", user="UORG", org=True)).startswith("200")
    [org_token] = slack.issued_tokens
    store = bot.deps.core.store
    for team, channel in (("T5", "C5"), ("T6", "C6")):
        openai_api.enqueue(Reply(text=f"hello {team}"))
        event = mention(f"from {team}", channel=channel, bot="UBE1")
        await bot.event(event, team=team, bot="UBE1", org="E1")
        await bot.idle()
        [answer] = slack.messages(thread_ts=event["ts"])
        assert f"hello {team}" in answer["text"]
    posted = slack.calls_to("chat.postMessage") + slack.calls_to("chat.update")
    assert {slack.token_of(c) for c in posted} == {org_token}
    assert await bot.deps.installations.async_teams_of("E1") == ["T5", "T6"]

    uninstall = {"type": "app_uninstalled", "event_ts": "1.0"}
    await bot.event(uninstall, team="T5", bot="UBE1", org="E1")
    await bot.idle()
    assert (
        await bot.deps.installations.async_find_bot(
            enterprise_id="E1", team_id=None, is_enterprise_install=True
        )
        is None
    )

    async def keys_of(team: str) -> list:
        return [
            k
            for p in keys.workspace_patterns(store.prefix, team)
            async for k in store.redis.scan_iter(match=p)
        ]

    deadline = time.monotonic() + 10
    while (await keys_of("T5") or await keys_of("T6")) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert await keys_of("T5") == [] and await keys_of("T6") == [], "every workspace of the org forgotten"


async def test_an_admin_sets_the_workspaces_openai_key_from_app_home(http_bot, slack, openai_api):
    from cryptography.fernet import Fernet

    from tests.scenarios.test_app_home import _click, _submission

    bot = await http_bot(**DISTRIBUTED, OPENAI_KEY_ENCRYPTION_KEY=Fernet.generate_key().decode())
    await _install(bot, slack, "T1", "code-1", user="UINST")
    slack.users["UINST"] = {"id": "UINST", "is_admin": False}
    await bot.event(
        {"type": "app_home_opened", "user": "UINST", "tab": "home", "channel": "DU"}, team="T1", bot="UBT1"
    )
    await bot.idle()
    assert "Set our OpenAI key" in json.dumps(slack.home_views["UINST"]["blocks"])
    await bot.action(_click("home_set_openai_key", "UINST"))
    await bot.idle()
    view = slack.calls_to("views.open")[-1].params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    openai_api.rejected_keys.add("sk-revoked-0123456789abcdef")
    bad = await bot.action(_submission(view, "UINST", {"key": "sk-revoked-0123456789abcdef"}))
    assert "OpenAI rejected that key" in json.loads(bad.body)["errors"]["key"]
    own = "sk-from-home-0123456789abcdef"
    good = await bot.action(_submission(view, "UINST", {"key": own}))
    assert good.status == 200 and not good.body
    await _ask(bot, openai_api, "with the key from home", "T1", channel="C1")
    assert openai_api.requests[-1].headers["Authorization"] == f"Bearer {own}"


async def test_a_workspace_over_its_budget_tells_its_own_admins(http_bot, slack, openai_api):
    """ADMIN_USER_IDS and ADMIN_CHANNEL_IDS are the deployment's; a workspace's own admins
    hear about its limits."""
    bot = await http_bot(**DISTRIBUTED, ADMIN_CHANNEL_IDS="CDEPLOY")
    await _install(bot, slack, "T1", "code-1", user="UINST")
    slack.users["UINST"] = {"id": "UINST", "is_admin": False}
    await bot.command(
        "/usage", "budget 0.000001", user="UINST", team="T1", response_url=slack.response_url("b")
    )
    await slack.wait_response("b")
    await _ask(bot, openai_api, "spend", "T1", channel="C1")
    await _ask(bot, openai_api, "over", "T1", channel="C1")
    told = [m for m in slack.messages(channel="DUINST") if "monthly budget" in m["text"]]
    assert len(told) == 1
    assert not slack.messages(channel="CDEPLOY"), "not the deployment's channel"
