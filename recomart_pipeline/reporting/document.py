"""A report as structured blocks, rendered to Markdown (for the UI) and self-contained HTML.

Sections hold typed blocks (text lines, tables, charts) rather than Markdown strings, so the
HTML is built from the data itself instead of by parsing Markdown back, and every value is
escaped exactly once for the format it ends up in.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Table:
    """Rows of plain values; floats are shown with 4 decimals, missing values as a dash."""

    header: list[str]
    rows: list[list[object]]


@dataclass(frozen=True)
class Chart:
    """A PNG image; embedded as a data URI in the HTML, mentioned by name in the Markdown."""

    title: str
    png: bytes


Block = str | Table | Chart


@dataclass
class Section:
    """One heading of the report; ``ran`` is False when its upstream task did not run."""

    title: str
    blocks: list[Block] = field(default_factory=list)
    ran: bool = True


def cell(value: object) -> str:
    """How one table value reads in either format."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _markdown_cell(value: object) -> str:
    return cell(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(title: str, subtitle: str, sections: list[Section]) -> str:
    """GitHub-flavoured Markdown; charts are named, since the Dagster UI shows no images."""
    out = [f"# {title}", "", subtitle, ""]
    for section in sections:
        out += [f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, Table):
                out.append("| " + " | ".join(block.header) + " |")
                out.append("|" + " --- |" * len(block.header))
                out += [
                    "| " + " | ".join(_markdown_cell(v) for v in row) + " |" for row in block.rows
                ]
                out.append("")
            elif isinstance(block, Chart):
                out += [f"*Chart: {block.title} (embedded in the HTML report)*", ""]
            else:
                out.append(f"- {block}")
        if out[-1] != "":
            out.append("")
    return "\n".join(out)


STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem;"
    "color:#222}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}"
    "table{border-collapse:collapse;margin:.8rem 0}td,th{border:1px solid #ccc;"
    "padding:.25rem .6rem;text-align:left}th{background:#f3f3f3}td.n{text-align:right}"
    "figure{margin:1rem 0}img{max-width:100%}.notrun{color:#888}"
)


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{html.escape(cell(v))}</td>'
            if isinstance(v, int | float) and not isinstance(v, bool)
            else f"<td>{html.escape(cell(v))}</td>"
            for v in row
        )
        + "</tr>"
        for row in table.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_section(section: Section) -> str:
    css = ' class="notrun"' if not section.ran else ""
    parts = [f"<section{css}><h2>{html.escape(section.title)}</h2>"]
    items: list[str] = []
    for block in [*section.blocks, None]:
        if isinstance(block, str):
            items.append(f"<li>{html.escape(block)}</li>")
            continue
        if items:
            parts.append("<ul>" + "".join(items) + "</ul>")
            items = []
        if isinstance(block, Table):
            parts.append(_html_table(block))
        elif isinstance(block, Chart):
            data = base64.b64encode(block.png).decode("ascii")
            alt = html.escape(block.title)
            parts.append(
                f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">'
                f"<figcaption>{alt}</figcaption></figure>"
            )
    parts.append("</section>")
    return "".join(parts)


def to_html(title: str, subtitle: str, sections: list[Section]) -> str:
    """One self-contained page: inline CSS, charts as base64 PNG data URIs, no scripts."""
    body = "\n".join(_html_section(s) for s in sections)
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p>\n{body}\n</body></html>\n"
    )
