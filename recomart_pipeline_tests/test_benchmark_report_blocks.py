"""Each benchmark script rewrites only its own block of BENCHMARKS.md: rerunning
``run_all.py`` keeps the engines table and the hand-written quality sections."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from recomart_pipeline_tests.helpers import REPO_ROOT, benchmark_module


def _blocks() -> ModuleType:
    return benchmark_module("report_blocks")


def test_a_block_is_replaced_and_everything_around_it_kept(tmp_path: Path) -> None:
    blocks = _blocks()
    report = tmp_path / "BENCHMARKS.md"
    begin, end = blocks.markers("pipeline", "benchmarks/run_all.py")
    report.write_text(f"{begin}\nold figures\n{end}\n\n## Quality\n\nwritten by hand\n")
    blocks.replace_block(report, begin, end, "new figures")
    assert report.read_text() == f"{begin}\nnew figures\n{end}\n\n## Quality\n\nwritten by hand\n"


def test_a_missing_block_goes_first_or_last(tmp_path: Path) -> None:
    blocks = _blocks()
    report = tmp_path / "BENCHMARKS.md"
    report.write_text("## Quality\n")
    top = blocks.markers("pipeline")
    bottom = blocks.markers("engines")
    blocks.replace_block(report, *top, "figures", first=True)
    blocks.replace_block(report, *bottom, "engines table")
    assert report.read_text() == (
        f"{top[0]}\nfigures\n{top[1]}\n\n## Quality\n\n{bottom[0]}\nengines table\n{bottom[1]}\n"
    )


def test_the_committed_report_marks_the_pipeline_block_before_the_quality_sections() -> None:
    text = (REPO_ROOT / "BENCHMARKS.md").read_text()
    begin, end = _blocks().markers("pipeline", "benchmarks/run_all.py")
    assert text.startswith(begin)
    assert text.index(end) < text.index("## Ranking quality by model type")
