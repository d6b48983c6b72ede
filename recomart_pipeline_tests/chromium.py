"""Headless Chromium driven over the DevTools protocol, for tests that click in the web UI.

``chromium --dump-dom`` renders a page but cannot interact with it, and the Dagster UI shows
some things only after a click (a Markdown metadata entry opens in a dialog). Chromium
speaks the Chrome DevTools Protocol over a pipe (``--remote-debugging-pipe``: commands on
its fd 3, replies and events on its fd 4, each message JSON ended by a NUL byte), so the
standard library drives it: no driver package, no chromedriver that must match the
browser's version, no debugging port another process could reach. Clicks are real input
events at the element's position (``Input.dispatchMouseEvent``), not ``element.click()``,
so an element hidden under another or outside the window cannot be clicked.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from recomart_pipeline_tests.helpers import wait_until

CHROMIUM = (
    shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
)
NO_CHROMIUM = (
    "Chromium is not installed (no chromium, chromium-browser or google-chrome on PATH; "
    "apt-get install chromium), so the web UI is not checked in a real browser"
)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)

# Flags shared by the --dump-dom test and the driven browser.
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
]
REPLY_TIMEOUT_S = 120  # a hung browser, not a slow one: it answers in milliseconds when healthy


class ChromiumError(AssertionError):
    """The browser refused a command or stopped answering."""


class Page:
    """One browser tab: protocol commands, script evaluation and clicks."""

    def __init__(self, commands: int, replies: int, log: Path) -> None:
        self._commands = commands
        self._replies = replies
        self._log = log
        self._buffer = b""
        self._next_id = 0
        self._session: str | None = None
        # Uncaught exceptions in the page, for failure messages.
        self.exceptions: list[str] = []

    def _send(self, method: str, params: dict[str, Any]) -> int:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self._session:
            message["sessionId"] = self._session
        data = json.dumps(message).encode() + b"\0"
        while data:  # a pipe takes a long message in parts
            data = data[os.write(self._commands, data) :]
        return self._next_id

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            readable, _, _ = select.select([self._replies], [], [], max(left, 0))
            if not readable:
                raise ChromiumError(f"Chromium stopped answering; its log:\n{self._tail()}")
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise ChromiumError(f"Chromium exited; its log:\n{self._tail()}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _tail(self) -> str:
        return self._log.read_text(errors="replace")[-2000:]

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result (events read meanwhile are noted)."""
        sent = self._send(method, params)
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while True:
            message = self._receive(deadline)
            if message.get("method") == "Runtime.exceptionThrown":
                details = message["params"]["exceptionDetails"]
                self.exceptions.append(
                    details.get("exception", {}).get("description") or details.get("text", "")
                )
            if message.get("id") == sent:
                if "error" in message:
                    raise ChromiumError(f"{method}: {message['error']}")
                return message["result"]

    def attach(self, target_id: str) -> None:
        """Send what follows to the tab ``target_id`` (one flat session over the pipe)."""
        self._session = None
        attached = self.call("Target.attachToTarget", targetId=target_id, flatten=True)
        self._session = attached["sessionId"]
        self.call("Runtime.enable")
        self.call("Page.enable")

    def goto(self, url: str) -> None:
        navigated = self.call("Page.navigate", url=url)
        if navigated.get("errorText"):
            raise ChromiumError(f"{url}: {navigated['errorText']}")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise ChromiumError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float, what: str) -> Any:
        """Re-evaluate ``expression`` until it is truthy; its value."""
        found: dict[str, Any] = {}

        def truthy() -> bool:
            found["value"] = self.evaluate(expression)
            return bool(found["value"])

        wait_until(truthy, timeout, what)
        return found["value"]

    def click(self, element: str) -> None:
        """Click, with the mouse, the middle of the element the expression ``element`` gives."""
        box = self.evaluate(
            f"(() => {{ const e = {element}; e.scrollIntoView({{block: 'center'}});"
            " const r = e.getBoundingClientRect();"
            " return {x: r.x + r.width / 2, y: r.y + r.height / 2}; })()"
        )
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                type=kind,
                x=box["x"],
                y=box["y"],
                button="left" if kind != "mouseMoved" else "none",
                clickCount=1 if kind != "mouseMoved" else 0,
            )

    def screenshot(self, clip: dict[str, float] | None = None) -> bytes:
        """PNG bytes of what the page shows: the window, or the region ``clip`` (``x``, ``y``,
        ``width``, ``height`` in CSS pixels from the document's top left)."""
        region = {"clip": {**clip, "scale": 1}} if clip else {}
        return base64.b64decode(self.call("Page.captureScreenshot", format="png", **region)["data"])


@contextmanager
def chromium_page(url: str = "about:blank") -> Iterator[Page]:
    """A headless Chromium with one tab on ``url``; stopped (and its profile removed) after."""
    assert CHROMIUM is not None, NO_CHROMIUM
    with ExitStack() as stack:
        profile = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        log = profile.parent / f"{profile.name}.log"
        stack.callback(log.unlink, missing_ok=True)
        to_browser, commands = os.pipe()
        replies, from_browser = os.pipe()

        def protocol_fds() -> None:
            # In the child, before exec: the pipe ends as fds 3 and 4, copied out of the way
            # first in case either pipe end already is fd 3 or 4.
            reads = fcntl.fcntl(to_browser, fcntl.F_DUPFD_CLOEXEC, 10)
            writes = fcntl.fcntl(from_browser, fcntl.F_DUPFD_CLOEXEC, 10)
            os.dup2(reads, 3)
            os.dup2(writes, 4)

        with log.open("wb") as log_file:
            process = subprocess.Popen(
                [
                    CHROMIUM,
                    *CHROMIUM_FLAGS,
                    f"--user-data-dir={profile}",
                    "--remote-debugging-pipe",
                    "about:blank",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                close_fds=False,  # only inheritable fds pass: 0-2 and the dup2'ed 3 and 4
                preexec_fn=protocol_fds,  # only fcntl and dup2 between fork and exec
                start_new_session=True,
            )
        os.close(to_browser)
        os.close(from_browser)
        stack.callback(os.close, commands)
        stack.callback(os.close, replies)
        stack.callback(_stop, process)
        page = Page(commands, replies, log)
        target = page.call("Target.createTarget", url="about:blank")["targetId"]
        page.attach(target)
        if url != "about:blank":
            page.goto(url)
        yield page


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Close the browser and the renderer, GPU and zygote processes it started."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        process.wait()
