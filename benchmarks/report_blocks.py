"""BENCHMARKS.md is written by several scripts, each owning one marked block of it.

``run_all.py`` writes the pipeline figures, ``engines.py`` the engines table; the quality
sections are written by hand from ``quality.py``/``vs_implicit.py`` results. Each script
replaces only the text between its own ``<!-- BEGIN name -->`` and ``<!-- END name -->``
markers, so rerunning one never drops what another (or a person) wrote.
"""

from __future__ import annotations

from pathlib import Path


def markers(name: str, title: str | None = None) -> tuple[str, str]:
    """The BEGIN and END comment lines of block ``name`` (``title`` says who writes it)."""
    return f"<!-- BEGIN {name}{f' ({title})' if title else ''} -->", f"<!-- END {name} -->"


def replace_block(report: Path, begin: str, end: str, body: str, *, first: bool = False) -> None:
    """Put ``body`` between ``begin`` and ``end`` in ``report``; where the markers are not
    there yet, the block goes at the top (``first``) or the end of the file."""
    text = report.read_text() if report.exists() else ""
    block = f"{begin}\n{body.strip(chr(10))}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    elif first:
        text = block + "\n\n" + text.lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    report.write_text(text if text.endswith("\n") else text + "\n")
