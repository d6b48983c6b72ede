"""Shapes met on the real public files (docs/real_data.md), reproduced with generated data.

Each test writes, in a few thousand generated rows, the one trait of a real copy that
``init-data`` got wrong, and reads what it proposes. Fast: no pipeline run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recomart_pipeline.onboarding import OnboardingError, propose, read_inputs
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


def test_times_with_a_zone_name_as_bigquery_exports_them(tmp_path: Path) -> None:
    # The REES46 e-commerce logs write event_time as "2019-10-01 00:00:00 UTC"; before, no
    # column read as event times and init-data refused the file.
    rng = np.random.default_rng(6)
    n = 3000
    stamps = pd.Timestamp("2019-10-01") + pd.to_timedelta(rng.integers(0, 30 * 86_400, n), "s")
    path = tmp_path / "2019-Oct.csv"
    pd.DataFrame(
        {
            "event_time": stamps.strftime("%Y-%m-%d %H:%M:%S UTC"),
            "event_type": rng.choice(["view", "cart", "purchase"], n),
            "product_id": rng.integers(1_000_000, 1_000_200, n),
            "user_id": rng.integers(500_000_000, 500_000_300, n),
        }
    ).to_csv(path, index=False)
    proposal = propose(read_inputs([str(path)]))
    source = proposal.tables["interactions"].source
    assert source["column_mapping"]["event_time"] == "timestamp"
    # the zone is in the text, so no timezone to assume (and no "read as UTC" choice)
    assert source["timestamp"] == {"format": "%Y-%m-%d %H:%M:%S %Z"}
    assert not any(c.key.endswith("timestamp.timezone") for c in proposal.choices)
    newest = stamps.max().strftime("%Y-%m-%dT%H:%M:%SZ")
    assert proposal.tasks["validation"]["freshness"] == {"reference_time": newest}


def test_a_line_with_a_stray_delimiter_is_named_with_its_file_and_the_fix(tmp_path: Path) -> None:
    # A public copy of u.data adds user 0's ratings at the top, one line ending in a stray
    # tab; pandas' own words ("C error: Expected 4 fields in line 3, saw 5") named neither
    # the delimiter nor what to do, and a later file's fault named the first file.
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    good = "".join(
        f"{u}\t{i}\t{1 + (u + i) % 5}\t88125{u:04d}\n" for u in range(1, 40) for i in range(5)
    )
    (folder / "a.data").write_text(good)
    (folder / "b.data").write_text("0\t50\t5\t881250949\n0\t133\t1\t881250949\t\n" + good)
    with pytest.raises(OnboardingError) as refused:
        read_inputs([str(folder)])
    message = str(refused.value)
    assert message.startswith(f"{folder / 'b.data'}: line 2 has 5 fields where")
    assert "have 4 (separated by '\\t')" in message
    assert "stray one at the end of the line" in message
    assert message.endswith("fix or remove that line")
