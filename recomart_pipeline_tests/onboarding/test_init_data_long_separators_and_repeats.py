"""init-data on a MovieLens-1M ``ratings.dat`` (``::`` separated) and on invoice lines whose
customers buy the same product again: the separator is found whole, and folding the repeats
into weighted interactions is proposed as a choice with its key. Fast: no pipeline run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recomart_pipeline.onboarding import propose, read_inputs
from recomart_pipeline_tests.onboarding.test_init_data import _init, _project, _source
from recomart_pipeline_tests.real_shapes import (
    START,
    write_ratings_dat,
    write_repeat_purchases,
    write_retail_parquet,
)

AGGREGATE_KEY = "key: tasks.ingestion.config.source.interactions.aggregate"


def test_movielens_1m_ratings_dat_is_split_on_the_whole_separator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(tmp_path)
    overlay, _ = _init(project, capsys, write_ratings_dat(project / "data"))
    # ':' alone would split "1::1193" into three fields, the middle one empty.
    assert _source(overlay) == {
        "path": "data/ratings.dat",
        "format": "csv",
        "delimiter": "::",
        "header": False,
        "columns": ["user_id", "item_id", "rating", "timestamp"],
        "constants": {"event_type": "rating"},
        "timestamp": {"unit": "s"},
    }
    assert "aggregate" not in _source(overlay)  # one rating per pair: nothing to fold


def test_a_long_separator_with_a_header_and_regex_characters(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    n = 2000
    lines = ["user||item||when"] + [
        f"u{rng.integers(200)}||i.{rng.integers(60)}||{START + int(rng.integers(0, 86_400 * 30))}"
        for _ in range(n)
    ]
    path = tmp_path / "events.txt"
    path.write_text("\n".join(lines) + "\n")
    [data] = read_inputs([str(path)])
    # As a pattern "||" would match the empty string between every two characters.
    assert data.layout is not None and data.layout.delimiter == "||" and data.layout.header
    assert list(data.frame.columns) == ["user", "item", "when"]
    assert data.frame["item"].str.fullmatch(r"i\.\d+").all()


def test_repeat_purchases_are_folded_by_summed_quantity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(tmp_path)
    overlay, printed = _init(project, capsys, write_repeat_purchases(project / "data"))
    assert _source(overlay)["aggregate"] == {"weight": "sum:Quantity"}
    assert (
        "fold repeated user-item events into one interaction weighted by the sum of Quantity"
        in printed
    )
    assert AGGREGATE_KEY in printed
    assert "repeats: " in printed and "of the rows repeat a user's earlier item" in printed


def test_lines_that_rarely_repeat_are_not_folded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(tmp_path)
    overlay, printed = _init(project, capsys, write_retail_parquet(project / "data"))
    assert "aggregate" not in _source(overlay) and AGGREGATE_KEY not in printed


def test_repeated_clicks_without_a_quantity_are_not_folded(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    n = 4000
    frame = pd.DataFrame(
        {
            "user": [f"c{x}" for x in rng.integers(0, 150, n)],
            "item": [f"p{x}" for x in rng.integers(0, 40, n)],  # most pairs repeat
            "event": "view",
            "time": START + rng.integers(0, 86_400 * 40, n),
        }
    )
    path = tmp_path / "clicks.csv"
    frame.to_csv(path, index=False)
    proposal = propose(read_inputs([str(path)]))
    assert "aggregate" not in proposal.tables["interactions"].source
