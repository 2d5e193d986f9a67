"""Benchmarks that print figures (not timed tests); each runs the real bot process."""

from __future__ import annotations

import asyncio

import aiohttp


async def wait_until_healthy(session: aiohttp.ClientSession, url: str, timeout: float = 15.0) -> None:
    """Until the bot process under test answers /healthz (it starts in a second or two)."""
    for _ in range(int(timeout / 0.05)):
        try:
            async with session.get(url + "/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError("bot did not start")
