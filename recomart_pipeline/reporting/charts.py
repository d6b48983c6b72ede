"""PNG charts for the report, drawn with matplotlib's Agg backend (no display on servers)."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # must precede the pyplot import; workers have no display
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

RMSE_KEYS = ("train_rmse", "val_rmse")


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    # No "Software" stamp: identical data gives identical bytes across matplotlib builds.
    figure.savefig(buffer, format="png", dpi=90, metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


def rating_distribution(counts: Mapping[int, int]) -> bytes:
    """Bar chart of how many rating events gave each star value."""
    figure, axis = plt.subplots(figsize=(5, 3))
    keys = sorted(counts)
    axis.bar([str(k) for k in keys], [counts[k] for k in keys], color="#4c72b0")
    axis.set_xlabel("rating")
    axis.set_ylabel("events")
    axis.set_title("Rating distribution")
    return _png(figure)


def _series(history: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    points = [
        (int(h["epoch"]), float(h[key]))
        for h in history
        if isinstance(h.get(key), int | float) and not math.isnan(h[key]) and "epoch" in h
    ]
    return [p[0] for p in points], [p[1] for p in points]


def training_curves(histories: Mapping[str, Sequence[Mapping[str, Any]]]) -> bytes | None:
    """Train (solid) and validation (dashed) RMSE per epoch, one colour per candidate.

    Candidates that log no RMSE (ALS reports its objective as ``train_loss``) get a second
    panel, since a loss and an RMSE do not share a scale. None when nothing has a history.
    """
    rmse = {n: h for n, h in histories.items() if any(_series(h, k)[0] for k in RMSE_KEYS)}
    loss = {n: h for n, h in histories.items() if n not in rmse and _series(h, "train_loss")[0]}
    panels = [(p, label) for p, label in ((rmse, "RMSE"), (loss, "training loss")) if p]
    if not panels:
        return None
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.2), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axis, (panel, label) in zip(axes[0], panels, strict=True):
        for i, (name, history) in enumerate(sorted(panel.items())):
            keys = RMSE_KEYS if label == "RMSE" else ("train_loss",)
            for key in keys:
                epochs, values = _series(history, key)
                if epochs:
                    style = "--" if key.startswith("val") else "-"
                    axis.plot(
                        epochs,
                        values,
                        style,
                        color=colours[i % len(colours)],
                        marker=".",
                        label=f"{name} {key}",
                    )
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.set_title(f"Training curves ({label})")
        axis.legend(fontsize=7)
    return _png(figure)
