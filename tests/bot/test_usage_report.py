"""The usage report's Block Kit, on its output."""

from __future__ import annotations

import json

from bot import usage_report
from core import usage
from tests.scenarios.blockkit import assert_valid_blocks


def test_bars_are_proportional_and_a_small_value_still_shows():
    assert usage_report.bar(8, 16) == "█" * 8 + "░" * 8
    assert usage_report.bar(1, 1000) == "█" + "░" * 15
    assert usage_report.bar(0, 0) == "░" * 16


def test_money_and_token_figures_read_as_people_write_them():
    assert usage_report.money(1_234_567_000) == "$1,234.57"
    assert usage_report.money(4_000) == "under $0.01"
    assert usage_report.money(0) == "$0.00"
    assert usage_report.tokens_text(1_500_000) == "1.5M"
    assert usage_report.dollars(0.001) == "$0.001" and usage_report.dollars(200) == "$200.00"


def _report() -> usage.Report:
    t = usage.Totals
    return usage.Report(
        days=[
            ("2026-11-25", t(cost_micro=1_000_000, turns=1)),
            ("2026-11-26", t(cost_micro=2_000_000, turns=2)),
        ],
        by={
            "channel": {"C2": t(cost_micro=500_000, turns=1), "C1": t(cost_micro=1_500_000, turns=1)},
            "persona": {"<b>*x*": t(cost_micro=2_000_000, turns=2)},
            "model": {"llama": t(tokens=50, turns=1)},
            "user": {"U1": t(cost_micro=2_000_000, turns=2)},
        },
        total=t(prompt=3000, cost_micro=3_000_000, turns=3, tokens=3000),
    )


def test_the_workspace_report_ranks_escapes_and_names_unpriced_models():
    blocks = usage_report.workspace_report(
        _report(), limits=usage.Limits(budget_usd=10), month=usage.Totals(cost_micro=2_000_000)
    )
    assert_valid_blocks(blocks)
    text = json.dumps(blocks, ensure_ascii=False)
    assert text.index("<#C1>") < text.index("<#C2>")
    assert "`&lt;b&gt;*x*`" in text
    assert "budget $10.00/month, 20% used this month" in text
    assert "No price known for `llama`" in text
    chart = usage_report.daily_chart(_report())
    assert "11-25 ████████░░░░░░░░ $1.00" in chart and "11-26 ████████████████ $2.00" in chart


def test_an_empty_period_says_so():
    blocks = usage_report.workspace_report(usage.Report(), limits=usage.Limits(), month=usage.Totals())
    assert "No answers in this period yet" in json.dumps(blocks)
    assert "no monthly budget" in json.dumps(blocks)
