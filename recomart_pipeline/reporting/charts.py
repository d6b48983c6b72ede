"""PNG charts for the report (matplotlib, Agg backend), returned as bytes for embedding."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=90, metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


def rating_distribution(counts: Mapping[int, int]) -> bytes:
    figure, axis = plt.subplots(figsize=(5, 3))
    keys = sorted(counts)
    axis.bar([str(k) for k in keys], [counts[k] for k in keys], color="#4c72b0")
    axis.set_xlabel("rating")
    axis.set_ylabel("events")
    axis.set_title("Rating distribution (train)")
    return _png(figure)


def training_curves(histories: dict[str, list[dict[str, float]]]) -> bytes:
    figure, axis = plt.subplots(figsize=(6, 3.2))
    for name, history in histories.items():
        epochs = [h["epoch"] for h in history]
        keys = sorted(
            {
                k
                for h in history
                for k, v in h.items()
                if k != "epoch" and isinstance(v, (int, float))
            }
        )
        for key in keys:
            style = "--" if key.startswith("val") else "-"
            values = [math.nan if (v := h.get(key)) is None else v for h in history]
            axis.plot(epochs, values, style, label=f"{name} {key}")
    axis.set_xlabel("epoch")
    axis.set_ylabel("loss / RMSE")
    axis.set_title("Training curves")
    axis.legend(fontsize=7)
    return _png(figure)


def tuning_curves(
    metric: str, searches: Mapping[str, tuple[Sequence[float | None], Sequence[float | None]]]
) -> bytes:
    """The validation metric of every trial (dots) and the best so far (a step line), one
    colour per tuned candidate: whether the search was still improving when its budget ran
    out (a rising line at the right edge says a larger budget may pay) or had levelled off.

    ``searches``: per candidate, each trial's value and the best so far after it (None: the
    trial could not be scored; it is not drawn).
    """
    figure, axis = plt.subplots(figsize=(6, 3.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (name, (values, best)) in enumerate(searches.items()):
        colour = colours[index % len(colours)]
        trials = list(range(len(values)))
        axis.plot(
            trials,
            [math.nan if v is None else v for v in values],
            "o",
            color=colour,
            alpha=0.5,
            markersize=3,
            label=f"{name} trial",
        )
        axis.step(
            trials,
            [math.nan if v is None else v for v in best],
            where="post",
            color=colour,
            label=f"{name} best so far",
        )
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("trial")
    axis.set_ylabel(f"{metric} (validation)")
    axis.set_title("Tuning: the validation metric over trials")
    axis.legend(fontsize=7)
    return _png(figure)
