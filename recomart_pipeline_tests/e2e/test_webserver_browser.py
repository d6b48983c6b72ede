"""The web UI in a real browser, after a real run: the asset graph and the report's charts.

Headless Chromium renders ``/asset-groups`` (the global asset lineage) and dumps the DOM
after the page's scripts ran; the asset names must be in the graph's nodes (the SVG
``foreignObject`` boxes the UI draws), and the tasks the config skips must not be there.

The report's Markdown metadata opens in a dialog only after a click on the asset page, so
that check drives Chromium over the DevTools protocol (``recomart_pipeline_tests.chromium``):
it clicks "[Show Markdown]" on the report's latest materialization and requires the charts
to be images the browser decoded and painted (a screenshot of each image's place has the
chart's pixels), the very PNGs the report task wrote. Chart names in place of images (as
the report's own Markdown file names them), a truncated PNG or a blank one fail it.
"""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from PIL import Image

from recomart_pipeline_tests.chromium import CHROMIUM, CHROMIUM_FLAGS, chromium_page, needs_chromium
from recomart_pipeline_tests.conftest import REPO_ROOT
from recomart_pipeline_tests.helpers import (
    DEFAULT_TASKS,
    dagster_dev,
    graphql,
    project_env,
    run_in_project,
    wait_until,
)

pytestmark = [pytest.mark.slow, needs_chromium]

DUMP_DOM_FLAGS = [
    "--virtual-time-budget=15000",  # let the page's scripts and GraphQL calls finish first
    "--enable-logging=stderr",
    "--v=0",
]
# The default pipeline with `deploy` disabled: `deploy` and `monitoring` (which depends on it)
# are skipped, so they must not be drawn.
SHOWN = DEFAULT_TASKS[:-2]
NOT_SHOWN = ["deploy", "monitoring"]
PAGE = "/asset-groups"
# The report's charts, in the order the report shows them.
CHARTS = ["rating distribution", "training curves"]
UI_TIMEOUT_S = 180  # the UI's first load compiles nothing but waits for GraphQL on a busy machine


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """``dagster dev`` (its port) on a project the pipeline ran in, `deploy` disabled."""
    project = tmp_path_factory.mktemp("project")
    (project / "pipeline_config.yaml").write_text(
        f"extends: {REPO_ROOT / 'pipeline_config.yaml'}\ntasks:\n  deploy:\n    enabled: false\n"
    )
    shutil.copytree(REPO_ROOT / "data", project / "data")
    done = run_in_project([sys.executable, "-m", "recomart_pipeline", "run"], project)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with dagster_dev(project, project_env(project)) as port:
        query = "{ assetNodes { assetKey { path } } }"
        wait_until(lambda: graphql(port, query)["assetNodes"], 120, "the code location")
        yield port


class _GraphNodeText(HTMLParser):
    """Text inside the asset graph's node boxes (``<foreignObject>``), scripts excluded."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.script = 0
        self.texts: set[str] = set()
        self.all_texts: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag.lower() == "foreignobject":
            self.depth += 1
        elif tag in ("script", "style"):
            self.script += 1

    def handle_endtag(self, tag: str) -> None:
        if tag.lower() == "foreignobject":
            self.depth -= 1
        elif tag in ("script", "style"):
            self.script -= 1

    def handle_data(self, data: str) -> None:
        text = data.strip()
        if not text or self.script:
            return
        self.all_texts.add(text)
        if self.depth:
            self.texts.add(text)


def _render(url: str) -> tuple[_GraphNodeText, str]:
    """The DOM of ``url`` after it rendered, parsed, and Chromium's log."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [
                CHROMIUM,
                *CHROMIUM_FLAGS,
                *DUMP_DOM_FLAGS,
                f"--user-data-dir={profile}",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    parser = _GraphNodeText()
    parser.feed(done.stdout)
    return parser, done.stderr


def test_asset_graph_page_shows_the_pipeline_assets(served: int) -> None:
    port = served
    nodes = graphql(port, "{ assetNodes { assetKey { path } } }")["assetNodes"]
    keys = {"/".join(n["assetKey"]["path"]) for n in nodes}
    assert keys == {*SHOWN, "sources/ingestion"}  # and the data files ingestion reads
    page: dict[str, tuple[_GraphNodeText, str]] = {}

    def rendered() -> bool:
        # a fresh render each time until the graph's nodes are drawn (or the deadline)
        page["last"] = _render(f"http://127.0.0.1:{port}{PAGE}")
        return set(SHOWN) <= page["last"][0].texts

    try:
        wait_until(rendered, 180, "the asset graph to show the assets")
    except AssertionError:
        parser, log = page["last"]
        missing = sorted(set(SHOWN) - parser.texts)
        raise AssertionError(
            f"asset graph lacks {missing}; page text: {sorted(parser.all_texts)[:80]}"
            f"\n{log[-1500:]}"
        ) from None
    parser, log = page["last"]
    assert not set(NOT_SHOWN) & parser.all_texts, "skipped tasks must not be drawn"
    errors = [
        line
        for line in log.splitlines()
        if ("CONSOLE" in line and ":ERROR:" in line) or "Uncaught" in line
    ]
    assert not errors, errors


# The "[Show Markdown]" link in the report_markdown row of the latest materialization's
# metadata table (the asset page's overview).
SHOW_MARKDOWN = """[...document.querySelectorAll('tr')]
  .find(row => row.cells.length > 1 && row.cells[0].innerText.trim() === 'report_markdown')
  ?.querySelector('a')"""
MARKDOWN_DIALOG = """[...document.querySelectorAll('[role=dialog]')]
  .find(dialog => dialog.innerText.trim().startsWith('report_markdown'))"""
# Every image in the dialog once the browser has decoded it (or failed to): decode() rejects
# for an image it cannot show. `onTop`: the image itself is what a click at its middle hits
# once scrolled into view, so nothing covers it.
DIALOG_IMAGES = f"""(async () => {{
  const dialog = {MARKDOWN_DIALOG};
  const images = [...dialog.querySelectorAll('img')];
  const decoded = await Promise.all(images.map(i => i.decode().then(() => true, () => false)));
  return images.map((image, n) => {{
    image.scrollIntoView({{block: 'center'}});
    const box = image.getBoundingClientRect();
    const hit = document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
    return {{alt: image.alt, src: image.src, decoded: decoded[n], width: image.naturalWidth,
             height: image.naturalHeight, shown: [box.width, box.height], onTop: hit === image}};
  }});
}})()"""
LATEST_MARKDOWN = """
{ assetOrError(assetKey: {path: ["report"]}) { ... on Asset { assetMaterializations(limit: 1) {
  metadataEntries { label ... on MarkdownMetadataEntry { mdStr } } } } } }
"""


# Where image n of the dialog is on the page, once scrolled into view (format with n=).
IMAGE_BOX = f"""(() => {{{{
  const image = [...({MARKDOWN_DIALOG}).querySelectorAll('img')][{{n}}];
  image.scrollIntoView({{{{block: 'center', behavior: 'instant'}}}});
  const box = image.getBoundingClientRect();
  return {{{{x: box.x + window.scrollX, y: box.y + window.scrollY, width: box.width,
           height: box.height}}}};
}}}})()"""
# No finite animation is running (the dialog's opening zoom moves the images while it
# plays); endless ones, such as a spinner elsewhere on the page, do not count.
SETTLED = """document.getAnimations().every(a => a.playState !== 'running'
  || a.effect?.getComputedTiming().iterations === Infinity)"""
INK_BELOW = 200  # a pixel darker than this in some channel is ink, not the white background
SAME_WITHIN = 48  # per channel: antialiasing and scaling, not a different picture


def _png_size(data_uri: str) -> tuple[int, int]:
    """Width and height from a PNG data URI's header (IHDR)."""
    png = base64.b64decode(data_uri.split(",", 1)[1])
    assert png.startswith(b"\x89PNG\r\n\x1a\n"), data_uri[:60]
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def _ink_shown(data_uri: str, shown: bytes) -> tuple[float, float]:
    """The chart's ink (the share of its pixels that are not background) and how much of it
    the screenshot ``shown`` of the image's place on the page has at the same spots.

    Pillow decodes the chart independently of the browser (a truncated or corrupt PNG fails
    here); both sides are put on white, the chart scaled to the size it is shown at."""
    chart = Image.open(io.BytesIO(base64.b64decode(data_uri.split(",", 1)[1])))
    chart.load()
    page = Image.open(io.BytesIO(shown)).convert("RGB")
    white = Image.new("RGBA", chart.size, "white")
    chart_rgb = Image.alpha_composite(white, chart.convert("RGBA")).convert("RGB")
    chart_rgb = chart_rgb.resize(page.size, Image.Resampling.BILINEAR)
    ink = same = 0
    for want, got in zip(chart_rgb.get_flattened_data(), page.get_flattened_data(), strict=True):
        if min(want) < INK_BELOW:
            ink += 1
            same += max(abs(a - b) for a, b in zip(want, got, strict=True)) <= SAME_WITHIN
    return ink / (page.width * page.height), same / max(ink, 1)


def test_report_charts_render_in_the_markdown_view(served: int) -> None:
    port = served
    # Dagster asks a first visitor on 127.0.0.1 to join its community, in a dialog over the
    # page; its Skip button sends this mutation, so the page opens as it does once dismissed.
    graphql(port, "mutation { setNuxSeen }")
    with chromium_page(f"http://127.0.0.1:{port}/assets/report") as page:
        page.wait_for(f"!!({SHOW_MARKDOWN})", UI_TIMEOUT_S, "the report_markdown metadata")
        page.click(SHOW_MARKDOWN)
        # the dialog once its Markdown is rendered to HTML (headings are elements)
        page.wait_for(f"!!({MARKDOWN_DIALOG})?.querySelector('h2')", 60, "the Markdown dialog")
        page.wait_for(SETTLED, 60, "the dialog's opening animation to end")
        images = page.evaluate(DIALOG_IMAGES)
        text = page.evaluate(f"({MARKDOWN_DIALOG}).innerText")
        shown = [page.screenshot(page.evaluate(IMAGE_BOX.format(n=n))) for n in range(len(images))]
        exceptions = page.exceptions
    assert [image["alt"] for image in images] == CHARTS, f"charts not shown as images:\n{text}"
    for image in images:
        assert image["src"].startswith("data:image/png;base64,"), image["src"][:80]
        assert image["decoded"] and image["width"] > 0 and image["height"] > 0, image["alt"]
        assert min(image["shown"]) > 0 and image["onTop"], image
    assert "## " not in text and "Model quality" in text  # Markdown rendered, not shown raw
    assert not exceptions, exceptions

    # They are the PNGs the report task wrote, decoded at their own size and painted: the
    # chart's lines, labels and bars are on the screen where the image is.
    entries = graphql(port, LATEST_MARKDOWN)["assetOrError"]["assetMaterializations"][0]
    markdown = next(
        e["mdStr"] for e in entries["metadataEntries"] if e["label"] == "report_markdown"
    )
    written = re.findall(r"!\[[^\]]*\]\((data:image/png;base64,[A-Za-z0-9+/=]+)\)", markdown)
    assert [image["src"] for image in images] == written
    assert [(image["width"], image["height"]) for image in images] == [
        _png_size(uri) for uri in written
    ]
    for image, screenshot in zip(images, shown, strict=True):
        ink, on_screen = _ink_shown(image["src"], screenshot)
        assert ink > 0.01, f"{image['alt']}: a blank chart ({ink:.2%} ink)"
        assert on_screen > 0.9, f"{image['alt']}: {on_screen:.0%} of its ink on the screen"
