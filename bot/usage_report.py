"""Block Kit for usage and cost: `/usage` and App Home show the same report.

Bars are text (`█` blocks in monospace), so a chart needs no image upload and reads the
same in every client and in a screen reader's fallback.
"""

from __future__ import annotations

from bot.blocks import Block, context_line, escape, section
from core import usage

BAR_WIDTH = 16
DMS = "(DMs)"
TOP = 5


def bar(value: float, largest: float, width: int = BAR_WIDTH) -> str:
    """`████████░░░░░░░░` for half the largest; a non-zero value shows at least one block."""
    if largest <= 0:
        return "░" * width
    filled = round(width * value / largest)
    if value > 0:
        filled = max(1, filled)
    return "█" * filled + "░" * (width - filled)


def money(micro: int) -> str:
    dollars = micro / 1_000_000
    return f"${dollars:,.2f}" if dollars >= 0.01 or dollars == 0 else "under $0.01"


def dollars(amount: float) -> str:
    """A limit as an admin typed it: `$200.00`, or `$0.001` for a test budget."""
    return f"${amount:,.2f}" if amount >= 1 else f"${amount:g}"


def tokens_text(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 1_000:
        return f"{n / 1_000:.1f}k"
    return str(n)


def _label(dimension: str, ident: str) -> str:
    if dimension == "channel" and ident == DMS:
        return "_direct messages_"
    if dimension == "channel":
        return f"<#{ident}>"
    if dimension == "user":
        return f"<@{ident}>"
    return f"`{escape(ident[:60])}`"


def _dms_grouped(report: usage.Report) -> usage.Report:
    """Channels by id, with every DM (`D…`) in one row: a DM's id tells nobody anything."""
    channels = report.by.get("channel", {})
    if not any(c.startswith("D") for c in channels):
        return report
    grouped = {c: t for c, t in channels.items() if not c.startswith("D")}
    dms = usage.Totals()
    for c, t in channels.items():
        if c.startswith("D"):
            dms = dms.plus(t)
    grouped[DMS] = dms
    return usage.Report(days=report.days, by={**report.by, "channel": grouped}, total=report.total)


def ranking(report: usage.Report, dimension: str, title: str, n: int = TOP) -> Block | None:
    """The top `n` by cost (then tokens), each with a bar against the first."""
    if dimension == "channel":
        report = _dms_grouped(report)
    rows = report.top(dimension, n)
    if not rows:
        return None
    largest = max(t.cost_micro for _, t in rows) or max(t.tokens for _, t in rows)
    use_cost = any(t.cost_micro for _, t in rows)
    lines = [f"*{title}*"]
    for ident, t in rows:
        value = t.cost_micro if use_cost else t.tokens
        lines.append(
            f"`{bar(value, largest, 10)}` {_label(dimension, ident)}  {money(t.cost_micro)} · "
            f"{t.turns} turns · {tokens_text(t.tokens)} tokens"
        )
    more = len(report.by.get(dimension, {})) - len(rows)
    if more > 0:
        lines.append(f"_…and {more} more_")
    return section("\n".join(lines))


def daily_chart(report: usage.Report) -> str:
    """One line per day, oldest first: date, bar, cost (or tokens when nothing is priced)."""
    use_cost = any(t.cost_micro for _, t in report.days)
    values = [(day, t.cost_micro if use_cost else t.tokens) for day, t in report.days]
    largest = max((v for _, v in values), default=0)
    lines = []
    for day, value in values:
        shown = money(value) if use_cost else tokens_text(value)
        lines.append(f"{day[5:]} {bar(value, largest)} {shown if value else ''}".rstrip())
    return "```\n" + "\n".join(lines) + "\n```"


def summary_line(total: usage.Totals) -> str:
    return (
        f"*{money(total.cost_micro)}* estimated · {total.turns:,} turns · "
        f"{tokens_text(total.prompt)} prompt tokens ({tokens_text(total.cached)} cached) · "
        f"{tokens_text(total.completion)} completion tokens"
    )


def limits_line(limits: usage.Limits, month: usage.Totals) -> str:
    parts = []
    if limits.budget_usd > 0:
        share = month.cost / limits.budget_usd * 100
        parts.append(
            f"budget ${limits.budget_usd:,.2f}/month, {share:.0f}% used this month ({money(month.cost_micro)})"
        )
    else:
        parts.append(f"no monthly budget ({money(month.cost_micro)} this month)")
    if limits.user_turns_per_hour > 0:
        parts.append(f"{limits.user_turns_per_hour} turns per person per hour")
    else:
        parts.append("no per-person limit")
    return "Limits: " + "; ".join(parts) + "."


def workspace_report(
    report: usage.Report, *, limits: usage.Limits, month: usage.Totals, days: int = 30
) -> list[Block]:
    """What admins see: totals, the daily chart, and who and what it went to."""
    out: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"Usage, last {days} days (UTC)"}},
        section(summary_line(report.total)),
        context_line(limits_line(limits, month)),
    ]
    if not report.total.turns:
        out.append(section("_No answers in this period yet._"))
        return out
    out.append(section(daily_chart(report)))
    for dimension, title in (
        ("channel", "By channel"),
        ("persona", "By persona"),
        ("model", "By model"),
        ("user", "By person"),
    ):
        block = ranking(report, dimension, title)
        if block:
            out.append(block)
    if report.unpriced:
        names = ", ".join(f"`{escape(m[:60])}`" for m in report.unpriced[:5])
        out.append(
            context_line(
                f"No price known for {names}: counted at $0. Set one with `/usage price <model> <input> <cached> <output>`."
            )
        )
    out.append(
        context_line(
            "Costs are estimates from list prices per 1M tokens; your OpenAI invoice is the reference."
        )
    )
    return out


def personal_report(report: usage.Report, *, month: usage.Totals, days: int = 30) -> list[Block]:
    """What a member sees: their own usage only."""
    out: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"Your usage, last {days} days (UTC)"}},
        section(summary_line(report.total)),
        context_line(f"This month so far: {money(month.cost_micro)} · {month.turns:,} turns."),
    ]
    if report.total.turns:
        out.append(section(daily_chart(report)))
    return out
