"""The web UI in a real browser: the asset graph page shows the pipeline's assets.

Headless Chromium renders ``/asset-groups`` (the global asset lineage) and dumps the DOM
after the page's scripts ran; the asset names must be in the graph's nodes (the SVG
``foreignObject`` boxes the UI draws), and the tasks the config skips must not be there.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from recomart_pipeline_tests.conftest import REPO_ROOT
from recomart_pipeline_tests.helpers import (
    DEFAULT_TASKS,
    dagster_dev,
    graphql,
    project_env,
    wait_until,
)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"
    ),
]

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,900",
    "--virtual-time-budget=15000",  # let the page's scripts and GraphQL calls finish first
    "--enable-logging=stderr",
    "--v=0",
]
# The default pipeline with `deploy` disabled: `deploy` and `monitoring` (which depends on it)
# are skipped, so they must not be drawn.
SHOWN = DEFAULT_TASKS[:-2]
NOT_SHOWN = ["deploy", "monitoring"]
PAGE = "/asset-groups"


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
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    parser = _GraphNodeText()
    parser.feed(done.stdout)
    return parser, done.stderr


def test_asset_graph_page_shows_the_pipeline_assets(tmp_path: Path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "pipeline_config.yaml").write_text(
        f"extends: {REPO_ROOT / 'pipeline_config.yaml'}\ntasks:\n  deploy:\n    enabled: false\n"
    )
    with dagster_dev(project, project_env(project)) as port:
        query = "{ assetNodes { assetKey { path } } }"
        wait_until(lambda: graphql(port, query)["assetNodes"], 120, "the code location")
        nodes = graphql(port, query)["assetNodes"]
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
