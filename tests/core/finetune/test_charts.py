"""Result CSV parsing and the loss chart PNG."""

from __future__ import annotations

import struct
import time

import pytest

from core.finetune.charts import loss_chart_png, parse_result_csv

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

FULL = (
    "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n"
    "1,2.5,0.40,2.6,0.38\n"
    "2,2.0,0.50,,\n"
    "3,1.5,0.60,1.7,0.55\n"
)


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which always follows the signature."""
    return struct.unpack(">II", png[16:24])


def test_parse_rows_with_gaps():
    rows = parse_result_csv(FULL)
    assert rows == [
        {
            "step": 1,
            "train_loss": 2.5,
            "train_accuracy": 0.4,
            "valid_loss": 2.6,
            "valid_mean_token_accuracy": 0.38,
        },
        {
            "step": 2,
            "train_loss": 2.0,
            "train_accuracy": 0.5,
            "valid_loss": None,
            "valid_mean_token_accuracy": None,
        },
        {
            "step": 3,
            "train_loss": 1.5,
            "train_accuracy": 0.6,
            "valid_loss": 1.7,
            "valid_mean_token_accuracy": 0.55,
        },
    ]


def test_parse_missing_columns_bom_crlf_and_junk():
    text = "\ufeffstep,train_loss,train_accuracy,full_valid_loss\r\n1,1.0,0.5,\r\n2,nan,0.6,0.9\r\nx,1,1,1\r\n\r\n"
    rows = parse_result_csv(text)
    assert [r["step"] for r in rows] == [1, 2]  # the row without a numeric step is skipped
    assert rows[0]["valid_loss"] is None and rows[0]["valid_mean_token_accuracy"] is None
    assert rows[1]["train_loss"] is None  # NaN is no value
    assert rows[1]["full_valid_loss"] == 0.9  # extra columns are kept
    assert parse_result_csv("") == [] and parse_result_csv("  \n") == []
    with pytest.raises(ValueError, match="no 'step' column"):
        parse_result_csv("epoch,loss\n1,2\n")


def test_chart_is_a_png_of_the_right_size():
    started = time.perf_counter()
    png = loss_chart_png(parse_result_csv(FULL), title="ft:gpt-4o-mini:acme::abc")
    assert time.perf_counter() - started < 5  # generous: the first call pays matplotlib's import
    assert png.startswith(PNG_MAGIC) and len(png) > 5_000
    assert png_size(png) == (900, 500)

    started = time.perf_counter()
    loss_chart_png(parse_result_csv(FULL), title="again")
    assert time.perf_counter() - started < 1


def test_chart_without_validation_and_with_many_steps():
    only_train = parse_result_csv(
        "step,train_loss,train_accuracy\n" + "".join(f"{i},{3 / i},0.5\n" for i in range(1, 6))
    )
    assert loss_chart_png(only_train, title="train only").startswith(PNG_MAGIC)

    many = "step,train_loss,valid_loss\n" + "".join(
        f"{i},{2 / i + (0.2 if i % 2 else 0)},{(2 / i + 0.1) if i % 10 == 0 else ''}\n" for i in range(1, 400)
    )
    png = loss_chart_png(parse_result_csv(many), title="smoothed")
    assert png.startswith(PNG_MAGIC) and png_size(png) == (900, 500)


def test_nothing_to_chart_raises_clearly():
    with pytest.raises(ValueError, match="no metrics rows"):
        loss_chart_png([], title="empty")
    rows = parse_result_csv("step,train_loss,valid_loss\n1,,\n2,,\n")
    with pytest.raises(ValueError, match="no loss values"):
        loss_chart_png(rows, title="blank")
