"""A redis-py connection that counts round trips (writes to the socket), for tests and bench."""

from __future__ import annotations

from redis.asyncio.connection import Connection


class CountingConnection(Connection):
    round_trips = 0

    async def send_packed_command(self, command, check_health: bool = True) -> None:
        type(self).round_trips += 1
        await super().send_packed_command(command, check_health)
