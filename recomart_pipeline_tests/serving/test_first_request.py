"""The first request after ``/ready`` does no work the next ones do not (issue 17: no warm-up
on the request path).

What makes a first request slower than the next ones is either first-time work (a lazy
initialisation, a cache or a dict key built on first use, an import) or memory it is the
first to touch (pages of the memory-mapped arrays faulted in). Both are observable without a
clock: the functions the server runs for a request (``threading.setprofile`` on a real
uvicorn server on 127.0.0.1) and the pages of the arrays that are resident
(``/proc/self/smaps``). Wall-clock comparisons are left to ``benchmarks/serving.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import numpy as np
import pytest
import uvicorn

from recomart_pipeline.deployment.registry import ModelRegistry
from recomart_pipeline.serving.app import SPREAD_USERS, create_app, spread_users
from recomart_pipeline.serving.state import REQUEST_ARRAYS, load_state
from recomart_pipeline_tests.helpers import free_port, wait_until
from recomart_pipeline_tests.serving.conftest import served_registry

LATER = 8  # requests of each kind after its first one
ASYNCIO = str(Path(asyncio.__file__).parent)


class CallRecorder:
    """The functions (Python code objects and builtins) the server's threads run while a
    bucket is open, per bucket. Left out: what runs on a timer rather than for a request
    (uvicorn's root task with its 0.1 s tick, the asyncio machinery that wakes it, the
    champion watcher), and finalizers and weak-reference callbacks, which run in whatever
    code frees their object (an earlier test's objects too)."""

    def __init__(self) -> None:
        self.bucket: str | None = None
        self.calls: dict[str, set[str]] = {}
        self.root_task: asyncio.Task[None] | None = None
        self.client = threading.get_ident()

    def __call__(self, frame: FrameType, event: str, arg: object) -> None:
        bucket = self.bucket
        if bucket is None or threading.get_ident() == self.client:
            return
        if threading.current_thread().name == "champion-watcher":
            return
        if self.root_task is not None and _current_task() is self.root_task:
            return
        if frame.f_code.co_filename.startswith(ASYNCIO):
            return  # the loop's scheduling, which timers run too (the tick's sleep wakes)
        if event == "call":
            code = frame.f_code
            if code.co_name == "__del__" or code.co_filename == weakref.__file__:
                return  # run wherever an object happens to be freed (earlier tests' too)
            name = f"{code.co_filename}:{code.co_firstlineno}:{code.co_qualname}"
        elif event == "c_call":
            name = f"builtin {getattr(arg, '__module__', '')}.{getattr(arg, '__qualname__', arg)}"
        else:
            return
        self.calls.setdefault(bucket, set()).add(name)


def _current_task() -> asyncio.Task[object] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # a thread without a running loop (the thread pool's workers)
        return None


@contextmanager
def profiled_server(registry: ModelRegistry, recorder: CallRecorder) -> Iterator[str]:
    """The service on 127.0.0.1 under uvicorn (its default loop and HTTP parser) in a
    thread of this process, every server thread profiled by ``recorder``; its base URL."""
    config = uvicorn.Config(
        create_app(registry),
        host="127.0.0.1",
        port=free_port(),
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)

    async def serve() -> None:
        recorder.root_task = asyncio.current_task()
        await server.serve()

    def run() -> None:
        with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
            runner.run(serve())

    threading.setprofile(recorder)  # threads started from now on: the server's and its pool
    thread = threading.Thread(target=run, name="server", daemon=True)
    try:
        thread.start()
        wait_until(lambda: server.started or not thread.is_alive(), 60, "the server to start")
        assert server.started, "the server did not start"
        yield f"http://127.0.0.1:{config.port}"
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
        server.should_exit = True
        thread.join(60)


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=30) as response:  # a new connection each
        return response.status, response.read()


def _metrics(base: str) -> dict[str, float]:
    lines = _get(f"{base}/metrics")[1].decode().splitlines()
    return {
        name: float(value)
        for name, _, value in (line.rpartition(" ") for line in lines if not line.startswith("#"))
    }


@pytest.mark.skipif(not hasattr(threading, "setprofile"), reason="needs threading.setprofile")
def test_the_first_request_of_each_kind_after_ready_runs_nothing_the_later_ones_do_not(
    tmp_path: Path,
) -> None:
    registry = served_registry(tmp_path, ["als"])
    recorder = CallRecorder()
    with profiled_server(registry, recorder) as base:
        status, body = _get(f"{base}/ready")
        assert status == 200
        ready = json.loads(body)
        probe_user = ready["checks"]["probe"]["user_id"]
        # unknown, the probe user (precomputed and live), and known users spread over the ids
        assert ready["checks"]["request_path"]["requests"] == 3 + SPREAD_USERS
        assert ready["checks"]["request_path"]["users"] >= 1 + SPREAD_USERS  # distinct ones
        metrics = _metrics(base)
        # the probe's requests took every path and are not counted as traffic; every
        # traffic counter exists (at 0) before the first request
        for strategy in ("personalized/precomputed", "popular/precomputed", "personalized/live"):
            label = f'{{endpoint="recommendations",strategy="{strategy}"}}'
            assert metrics[f"recomart_serving_probe_requests_total{label}"] >= 2
            assert metrics[f"recomart_serving_requests_total{label}"] == 0

        users = [f"user-{i}" for i in range(1, 120, 7) if f"user-{i}" != probe_user]
        kinds = {
            "known": [f"/recommendations/{u}?k=5" for u in users],
            "unknown": [f"/recommendations/stranger-{i}?k=5" for i in range(len(users))],
            "live": [
                f"/recommendations/{u}?" + urllib.parse.urlencode({"k": 5, "exclude": "item-3"})
                for u in users
            ],
        }
        gc.collect()
        gc.disable()  # a collection would run finalizers inside whichever request it hits
        try:
            _get(f"{base}/ready")  # the readiness probe, right before the first requests
            for kind, paths in kinds.items():
                recorder.bucket = f"{kind} first"
                assert _get(base + paths[0])[0] == 200
            for kind, paths in kinds.items():
                for i, path in enumerate(paths[1 : 1 + LATER]):
                    recorder.bucket = f"{kind} later {i}"
                    assert _get(base + path)[0] == 200
            recorder.bucket = None
        finally:
            gc.enable()
        assert (
            _metrics(base)[
                'recomart_serving_requests_total{endpoint="recommendations",strategy="personalized/live"}'
            ]
            == 1 + LATER
        )

    for kind in kinds:
        first = recorder.calls[f"{kind} first"]
        later = set().union(*(recorder.calls[f"{kind} later {i}"] for i in range(LATER)))
        assert first - later == set(), f"the first {kind} request ran first-time work"


def _resident_bytes(path: Path) -> int:
    """This process's resident bytes of its mappings of ``path`` (``/proc/self/smaps``)."""
    resident, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split(None, 5)
        if fields and "-" in fields[0] and not fields[0].endswith(":"):  # a mapping's header
            inside = len(fields) > 5 and fields[5] == str(path)
        elif inside and fields[0] == "Rss:":
            resident += int(fields[1]) * 1024
    return resident


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads /proc (Linux)")
def test_the_pages_a_request_reads_are_mapped_in_before_it_and_the_model_is_not(
    tmp_path: Path,
) -> None:
    # enough users for the top-K arrays to span many pages, of which the load-time probe
    # reads only a few: an array left to be faulted in request by request shows here
    registry = served_registry(tmp_path, ["als"], k=50, n_users=20_000, n_items=300)
    version = registry.champion()
    assert version is not None
    state = load_state(registry, version)
    folder = registry.version_dir(version.version).resolve()
    for name in REQUEST_ARRAYS:
        array = getattr(state.arrays, name)
        assert _resident_bytes(folder / f"{name}.npy") >= array.nbytes, name
    # live scoring's inputs stay with the page cache until a request reads them
    model_file = folder / version.model_file
    assert _resident_bytes(model_file) < model_file.stat().st_size / 2
    seen = folder / "seen_indices.npy"
    assert _resident_bytes(seen) < seen.stat().st_size / 2


def test_the_probe_spreads_over_known_users_a_get_can_name(tmp_path: Path) -> None:
    registry = served_registry(tmp_path, ["als"])
    champion = registry.champion()
    assert champion is not None
    state = load_state(registry, champion)
    users = spread_users(state, SPREAD_USERS)
    ids = sorted(i.decode() for i in state.arrays.user_ids)
    assert len(set(users)) == SPREAD_USERS and set(users) <= set(ids)
    assert users[0] == ids[0]  # from the first id on, evenly spaced
    # ids no GET path can carry are left out rather than sent (or failing the probe)
    odd = np.array(sorted([b"", b"a/b", b"\xff\xfe", b"ok-1", b"ok-2"]), dtype="S8")
    unspeakable = dataclasses.replace(state, arrays=dataclasses.replace(state.arrays, user_ids=odd))
    assert spread_users(unspeakable, 16) == ["ok-1", "ok-2"]


def test_each_answer_says_what_it_cost_the_service(tmp_path: Path) -> None:
    """``Server-Timing: app;dur=<ms>`` on every answer of the request path (known, unknown,
    live, refused): the service's own time, within what the client waited."""
    registry = served_registry(tmp_path, ["als"])
    recorder = CallRecorder()  # never given a bucket: records nothing
    with profiled_server(registry, recorder) as base:
        assert _get(f"{base}/ready")[0] == 200
        for path in (
            "/recommendations/user-3?k=5",
            "/recommendations/stranger?k=5",
            "/recommendations/user-3?k=5&exclude=item-3",
            "/recommendations/user-3?k=0",
        ):
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(base + path, timeout=30) as response:
                    header = response.headers["Server-Timing"]
            except urllib.error.HTTPError as refused:  # k=0: 422, timed all the same
                header = refused.headers["Server-Timing"]
            waited_ms = (time.perf_counter() - started) * 1000
            match = re.fullmatch(r"app;dur=(\d+\.\d{3})", header or "")
            assert match, (path, header)
            assert 0 < float(match[1]) <= waited_ms, (path, header, waited_ms)
