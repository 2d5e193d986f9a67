"""The loss curve of a finished fine-tuning job, from its result CSV to a PNG for Slack.

A chart answers "did it learn, and did it overfit?" at a glance, which a table of
hundreds of steps does not. Rendering uses matplotlib's object API on an Agg canvas:
no pyplot, so no global figure state shared between concurrent requests and no display
needed on a server.
"""

from __future__ import annotations

import csv
import io
import math

# Columns always present in parsed rows (None when the CSV lacks them or leaves them empty).
METRIC_COLUMNS = ("train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy")
WIDTH_PX, HEIGHT_PX, DPI = 900, 500, 100
# From this many points on, raw train loss is drawn faint with a moving average on top:
# per-step loss of real runs is too noisy to read otherwise.
SMOOTH_FROM = 30


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    raw = raw.strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_result_csv(text: str) -> list[dict]:
    """Rows of a result CSV: `step` as int, every other column as float or None.

    Always has the keys in METRIC_COLUMNS; extra columns (such as `full_valid_loss`)
    are kept too. Rows without a usable step are skipped rather than failing the chart.
    """
    text = text.lstrip("\ufeff")
    if not text.strip():
        return []
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip() for f in (reader.fieldnames or [])]
    if "step" not in fields:
        raise ValueError(f"not a fine-tuning result file: no 'step' column (columns: {', '.join(fields)})")
    reader.fieldnames = fields
    rows = []
    for record in reader:
        step = _number(record.get("step"))
        if step is None or not step.is_integer():
            continue
        row: dict = {"step": int(step), **dict.fromkeys(METRIC_COLUMNS)}
        for key, raw in record.items():
            if key and key != "step" and isinstance(raw, str):
                row[key] = _number(raw)
        rows.append(row)
    return rows


def _moving_average(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def loss_chart_png(rows: list[dict], *, title: str) -> bytes:
    """A 900x500 PNG of training loss per step, with validation loss where it was measured.

    Raises ValueError when there is nothing to draw, so callers can say so instead of
    posting an empty chart.
    """
    if not rows:
        raise ValueError("no metrics rows to chart: the result file is empty or has no steps")
    train = [(r["step"], r["train_loss"]) for r in rows if r.get("train_loss") is not None]
    valid = [(r["step"], r["valid_loss"]) for r in rows if r.get("valid_loss") is not None]
    full_valid = [(r["step"], r["full_valid_loss"]) for r in rows if r.get("full_valid_loss") is not None]
    if not train and not valid:
        raise ValueError("no loss values to chart: every train_loss and valid_loss is empty")

    # Imported here: matplotlib costs ~0.3 s to import, paid only when a chart is drawn.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if train:
        steps, losses = zip(*train, strict=True)
        if len(train) >= SMOOTH_FROM:
            window = max(3, len(train) // 20)
            ax.plot(steps, losses, color="tab:blue", alpha=0.3, linewidth=1, label="training loss (per step)")
            ax.plot(
                steps,
                _moving_average(list(losses), window),
                color="tab:blue",
                linewidth=2,
                label=f"training loss ({window}-step average)",
            )
        else:
            ax.plot(steps, losses, color="tab:blue", linewidth=2, label="training loss")
    if valid:
        steps, losses = zip(*valid, strict=True)
        ax.plot(
            steps,
            losses,
            color="tab:orange",
            linewidth=1.2,
            marker="o",
            markersize=3 if len(valid) > 60 else 4,
            label="validation loss",
        )
    if full_valid:
        steps, losses = zip(*full_valid, strict=True)
        ax.plot(steps, losses, color="tab:red", linestyle="none", marker="D", label="full validation loss")
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no "step 2.5" on short runs
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()
