"""Shapes met on the real public files (docs/real_data.md), reproduced with generated data.

Each test writes, in a few thousand generated rows, the one trait of a real copy that
``init-data`` got wrong, and reads what it proposes. Fast: no pipeline run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recomart_pipeline.onboarding import propose, read_inputs
from recomart_pipeline_tests.real_shapes import retail_frame


def _two_digit_years(stamps: pd.Series) -> list[str]:
    """``12/1/10 8:26``: how a spreadsheet saves the UCI Online Retail invoice dates."""
    return [f"{t.month}/{t.day}/{t.strftime('%y')} {t.hour}:{t.minute:02d}" for t in stamps]


def test_invoice_dates_with_two_digit_years_are_event_times(tmp_path: Path) -> None:
    # A public Parquet copy of Online Retail keeps InvoiceDate as the workbook's text; before,
    # init-data found no time column at all and refused the file.
    frame = retail_frame()
    frame["InvoiceDate"] = _two_digit_years(frame["InvoiceDate"])
    path = tmp_path / "online_retail.parquet"
    frame.to_parquet(path, index=False)
    proposal = propose(read_inputs([str(path)]))
    source = proposal.tables["interactions"].source
    assert source["column_mapping"]["InvoiceDate"] == "timestamp"
    assert source["timestamp"]["format"] == "%m/%d/%y %H:%M"


def test_day_or_month_first_is_judged_on_the_whole_file_not_its_head(tmp_path: Path) -> None:
    # Sorted by time, the first 20,000 lines of the real file fall on days 1-12 of one month,
    # where day-first and month-first read alike; later lines (day 13 onwards) settle it.
    rng = np.random.default_rng(5)
    early = pd.Timestamp("2010-12-01") + pd.to_timedelta(rng.integers(0, 11 * 86_400, 30_000), "s")
    late = pd.Timestamp("2010-12-13") + pd.to_timedelta(rng.integers(0, 18 * 86_400, 10_000), "s")
    stamps = pd.Series(np.sort(np.concatenate([early.to_numpy(), late.to_numpy()])))
    path = tmp_path / "lines.csv"
    pd.DataFrame(
        {
            "CustomerID": rng.integers(0, 500, stamps.size).astype(float),
            "StockCode": rng.integers(0, 300, stamps.size),
            "InvoiceDate": _two_digit_years(stamps),
        }
    ).to_csv(path, index=False)
    proposal = propose(read_inputs([str(path)]))
    assert proposal.tables["interactions"].source["timestamp"]["format"] == "%m/%d/%y %H:%M"
    [written] = [c for c in proposal.choices if c.key.endswith("timestamp.format")]
    assert written.confidence == "high", written
    assert "could be either way round" not in written.why
