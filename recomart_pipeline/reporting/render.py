"""Markdown and self-contained HTML (charts as data URIs) from report sections.

Rendering is a pure function of the sections: the same sections give the same bytes. The
report's last section, ``CHANGES_TITLE``, compares with the previous run, so it is the one
part that differs when a run is reproduced; ``stable_text`` is the report without it, which
is what ``reproduce`` compares.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field

CHANGES_TITLE = "What changed"


@dataclass
class Section:
    title: str
    lines: list[str] = field(default_factory=list)
    charts: list[tuple[str, bytes]] = field(default_factory=list)  # (alt text, png)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.4f}"
        return "" if value is None else str(value)

    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return out


def to_markdown(
    title: str, subtitle: str, sections: list[Section], *, inline_charts: bool = False
) -> str:
    """The report as Markdown. The file names each chart (they are in the HTML report);
    ``inline_charts`` embeds them as data-URI images instead, for viewers that render
    those (the Dagster UI's Markdown view does) and have no HTML report beside them."""
    parts = [f"# {title}", "", subtitle, ""]
    for section in sections:
        parts += [f"## {section.title}", "", *section.lines, ""]
        for alt, png in section.charts:
            if inline_charts:
                parts += [f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})", ""]
            else:
                parts += [f"*Chart: {alt} (in the HTML report)*", ""]
    return "\n".join(parts)


def _html_lines(lines: list[str]) -> str:
    out, rows = [], []
    for line in [*lines, ""]:
        if line.startswith("|"):
            rows.append(line)
            continue
        if rows:
            cells = [
                [c.strip() for c in r.strip("|").split("|")]
                for r in rows
                if not set(r) <= set("|-")
            ]
            head, *body = cells
            out.append(
                "<table><tr>"
                + "".join(f"<th>{html.escape(c)}</th>" for c in head)
                + "</tr>"
                + "".join(
                    "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                    for r in body
                )
                + "</table>"
            )
            rows = []
        if line:
            out.append(f"<p>{html.escape(line.lstrip('- '))}</p>")
    return "\n".join(out)


def to_html(title: str, subtitle: str, sections: list[Section]) -> str:
    body = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(subtitle)}</p>"]
    for section in sections:
        body.append(f"<h2>{html.escape(section.title)}</h2>")
        body.append(_html_lines(section.lines))
        for alt, png in section.charts:
            data = base64.b64encode(png).decode()
            body.append(f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">')
    style = (
        "body{font-family:sans-serif;max-width:60rem;margin:2rem auto;color:#222}"
        "table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem}"
        "th{background:#f3f3f3}img{max-width:100%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>"
    )


def stable_text(text: str) -> str:
    """A rendered report (Markdown or HTML) without its last, history-dependent section.

    The report task appends the ``CHANGES_TITLE`` section last, so everything from its
    heading on is cut; a report without that heading is returned unchanged."""
    for heading in (f"\n## {CHANGES_TITLE}\n", f"<h2>{html.escape(CHANGES_TITLE)}</h2>"):
        at = text.rfind(heading)
        if at >= 0:
            return text[:at]
    return text
