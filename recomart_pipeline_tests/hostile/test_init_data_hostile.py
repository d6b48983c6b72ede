"""init-data reads a user's files: a broken or hostile one gets a one-line refusal, and no
byte of a file (escape sequences in column names) reaches the terminal or the overlay raw."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from recomart_pipeline.cli import main
from recomart_pipeline_tests.conftest import REPO_ROOT

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _project(tmp_path: Path) -> Path:
    shutil.copy(REPO_ROOT / "pipeline_config.yaml", tmp_path / "pipeline_config.yaml")
    return tmp_path


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"", "the file is empty"), (b"\x00\x01garbage\xff\xfe", "binary content (NUL bytes)")],
    ids=["empty file", "binary garbage"],
)
def test_a_file_that_is_no_data_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, expected: str
) -> None:
    data = _project(tmp_path) / "events.csv"
    data.write_bytes(content)
    assert main(["init-data", str(data), "--output", str(tmp_path / "cfg.yaml")]) == 2
    captured = capsys.readouterr()
    assert expected in captured.err and not CONTROL.search(captured.out + captured.err)
    assert not (tmp_path / "cfg.yaml").exists()  # nothing half-written


def test_escape_sequences_in_column_names_never_reach_the_terminal_or_the_overlay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _project(tmp_path) / "events.csv"
    data.write_text("user\x1b[31m,item\x07,ts\nu1,i1,1700000000\nu2,i2,1700000100\n")
    output = tmp_path / "cfg.yaml"
    assert main(["init-data", str(data), "--output", str(output)]) == 0
    captured = capsys.readouterr()
    assert not CONTROL.search(captured.out + captured.err)
    text = output.read_text()
    assert not CONTROL.search(text) and "user\\x1b[31m" in text  # shown escaped
    mapping = yaml.safe_load(text)["tasks"]["ingestion"]["config"]["source"]["interactions"]
    assert mapping["column_mapping"]["user\x1b[31m"] == "user_id"  # the real name, as YAML data
