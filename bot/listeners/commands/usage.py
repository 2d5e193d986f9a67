"""`/usage`: the last 30 days of tokens and estimated cost (admins see the workspace,
everyone else their own), and the admins' limits and prices."""

from __future__ import annotations

from bot import limits, usage_report
from bot.auth import admin_channels, is_admin
from bot.blocks import escape
from bot.commands import Args, Ctx, Registry, Subcommand
from bot.errors import UserError
from core import usage

DAYS = 30


async def show(ctx: Ctx, args: Args) -> None:
    """Admins (where admin commands work) get the workspace's report; others their own."""
    store = ctx.deps.core.store
    channels = admin_channels(ctx.deps)
    admin_here = not channels or ctx.channel in channels
    if admin_here and await is_admin(ctx.deps, ctx.team, ctx.user):
        report = await usage.report(store, ctx.team, days=DAYS)
        month = await usage.month_so_far(store, ctx.team)
        current = await usage.limits(store, ctx.team, limits.defaults(ctx.deps))
        await ctx.say("Usage", usage_report.workspace_report(report, limits=current, month=month, days=DAYS))
        return
    await show_mine(ctx, args)


async def show_mine(ctx: Ctx, args: Args) -> None:
    store = ctx.deps.core.store
    report = await usage.report(store, ctx.team, days=DAYS, user=ctx.user)
    month = await usage.month_so_far(store, ctx.team, user=ctx.user)
    await ctx.say("Your usage", usage_report.personal_report(report, month=month, days=DAYS))


def _off_or_number(text: str, what: str, example: str) -> float:
    word = text.strip().lower().lstrip("$")
    if word in ("off", "none", "0"):
        return 0.0
    try:
        value = float(word)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1_000_000:
        raise UserError(f"Give {what} as a positive number, or `off`: e.g. `{example}`.")
    return value


async def set_budget(ctx: Ctx, args: Args) -> None:
    amount = _off_or_number(args.first(), "the monthly budget in USD", "/usage budget 200")
    await usage.set_limits(ctx.deps.core.store, ctx.team, budget_usd=amount)
    await ctx.say(
        f"Done: the monthly budget is now {usage_report.dollars(amount)} (estimated cost, UTC months)."
        if amount
        else "Done: no monthly budget."
    )


async def set_limit(ctx: Ctx, args: Args) -> None:
    raw = args.first().split("/")[0]
    if raw.lower() not in ("off", "none") and not raw.isdigit():
        raise UserError(
            "Give the turns each person may start per hour as a whole number, or `off`: e.g. `/usage limit 30`."
        )
    turns = int(_off_or_number(raw, "the turns each person may start per hour", "/usage limit 30"))
    await usage.set_limits(ctx.deps.core.store, ctx.team, user_turns_per_hour=turns)
    await ctx.say(
        f"Done: each person may start {turns} turns per hour." if turns else "Done: no per-person limit."
    )


async def set_price(ctx: Ctx, args: Args) -> None:
    """`/usage price <model> <input> <cached> <output>` or `/usage price <model> reset`."""
    if not args.positional:
        await list_prices(ctx, args)
        return
    model, *values = args.positional
    model = model[:200]
    if [v.lower() for v in values] == ["reset"]:
        await usage.set_price(ctx.deps.core.store, ctx.team, model, None)
        await ctx.say(f"Done: `{escape(model)}` is priced from the built-in table again.")
        return
    try:
        price = usage.check_price(values)
    except ValueError as exc:
        raise UserError(f"Couldn't set the price: {exc}") from exc
    await usage.set_price(ctx.deps.core.store, ctx.team, model, price)
    await ctx.say(
        f"Done: `{escape(model)}` now costs ${price.input:g} input, ${price.cached:g} cached input and "
        f"${price.output:g} output per 1M tokens, for answers from now on."
    )


async def list_prices(ctx: Ctx, args: Args) -> None:
    overrides = await usage.price_overrides(ctx.deps.core.store, ctx.team)
    model = ctx.deps.settings.openai_model
    default = usage.default_price(model)
    lines = ["*Prices* (USD per 1M tokens: input / cached input / output)"]
    if default:
        lines.append(
            f"• `{model}` (the default model): {default.input:g} / {default.cached:g} / {default.output:g}"
        )
    for name, p in sorted(overrides.items()):
        lines.append(f"• `{escape(name)}` (set by an admin): {p.input:g} / {p.cached:g} / {p.output:g}")
    lines.append("Other models use the built-in table; unknown models count at $0 until priced.")
    await ctx.say("\n".join(lines))


USAGE = Registry(
    "/usage",
    title="Usage and cost",
    entries=(
        Subcommand(("me",), show_mine, "`/usage me`: your own usage, last 30 days"),
        Subcommand(
            ("budget",), set_budget, "`/usage budget <USD>|off`: the workspace's monthly budget", admin=True
        ),
        Subcommand(
            ("limit",),
            set_limit,
            "`/usage limit <turns>|off`: turns each person may start per hour",
            admin=True,
        ),
        Subcommand(
            ("price",),
            set_price,
            "`/usage price <model> <input> <cached> <output>|reset`: USD per 1M tokens",
            admin=True,
        ),
        Subcommand(("prices",), list_prices, "`/usage prices`: the prices in use", admin=True),
    ),
    on_empty=Subcommand((), show, "`/usage`: the last 30 days (the workspace's for admins, else yours)"),
)
