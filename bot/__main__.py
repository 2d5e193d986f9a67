"""Run the bot: `python -m bot [--mode socket|http]`.

Socket Mode when SLACK_APP_TOKEN is set, HTTP mode (uvicorn on PORT) otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys

from core.settings import ConfigError, Settings


def _settle() -> None:
    """Hide what start-up loaded from the garbage collector.

    The modules, SDK models and tokenizer loaded by then live as long as the process. Out
    of the collector's sight, they no longer make each gen-2 pass take 80–140 ms, which
    showed up as the slowest acks while an admin validated a 20,000-example dataset
    (bench/admin_load.py). Done here, in the real process only: a test process starting
    hundreds of bots would keep every one's objects forever.
    """
    gc.freeze()


def _mode(arg: str | None, settings: Settings) -> str:
    if arg:
        return arg
    return "socket" if settings.slack_app_token else "http"


async def run_socket_mode(settings: Settings) -> None:
    from bot.socket_mode import open_socket_mode

    bot = await open_socket_mode(settings)
    _settle()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await bot.close()


def run_http_mode(settings: Settings) -> None:
    import uvicorn

    from bot.deps import check_slack

    asyncio.run(check_slack(settings))

    from bot.http import create_asgi_app

    app = create_asgi_app(settings)
    _settle()
    uvicorn.run(app, host="0.0.0.0", port=settings.port, log_level=settings.log_level.lower())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Run the Threadwise Slack bot.")
    parser.add_argument(
        "--mode", choices=["socket", "http"], help="default: socket if SLACK_APP_TOKEN is set"
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        mode = _mode(args.mode, settings)
        settings.require_slack(mode)
    except ConfigError as exc:
        print(f"Configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if mode == "socket":
            asyncio.run(run_socket_mode(settings))
        else:
            run_http_mode(settings)
    except ConfigError as exc:
        print(f"Start-up failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
