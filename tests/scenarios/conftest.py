from __future__ import annotations

import pytest

from tests.scenarios.harness import HttpBot


@pytest.fixture
async def http_bot(env):
    """A factory: start the real HTTP-mode bot with `env` plus overrides; closed after the test."""
    bots: list[HttpBot] = []

    async def start(**overrides: str) -> HttpBot:
        bot = await HttpBot({**env, **overrides}).start()
        bots.append(bot)
        return bot

    yield start
    for bot in bots:
        await bot.close()
