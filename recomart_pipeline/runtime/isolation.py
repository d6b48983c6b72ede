"""Run a task attempt in a child process with a hard time limit and a memory limit.

Python cannot interrupt a thread stuck in C code or one that ignores signals, so a real
timeout needs a process: at the deadline the child gets SIGTERM, then SIGKILL after a short
grace period. The deadline is wall-clock from the attempt's start (``Limits.deadline``),
whatever the child is doing: a cold forkserver still importing its preloads, the child
unpickling the task, or the task itself. Starting a child blocks until the forkserver has
forked it, which on a cold start takes seconds, so the start runs in a thread the deadline
does not wait for; a child that appears after its deadline stops itself at once. The memory limit is ``RLIMIT_AS`` in the child — the address space the child
started with plus ``max_memory_gb`` for the task itself — so exceeding it raises MemoryError
there (a ``memory_error``) instead of taking the machine down. Log records and
the result travel back over a multiprocessing queue; the parent writes and forwards the logs.

Children come from a forkserver: forking the (multi-threaded) Dagster process directly can
deadlock, and spawning a fresh interpreter per task costs a second of imports. They do not
run the parent's main script again as multiprocessing would (``forkserver_preload.py``):
under ``dagster job execute`` that was Dagster's CLI, imported anew by every task.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.spawn
import os
import pickle
import queue
import resource
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from recomart_pipeline.contract.catalog import builtin_names, builtin_spec
from recomart_pipeline.contract.errors import (
    TaskCrashedError,
    TaskError,
    TaskTimeoutError,
    classify_exception,
)
from recomart_pipeline.runtime.heartbeat import register_child, unregister_child

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from recomart_pipeline.config import PipelineConfig
    from recomart_pipeline.contract.task import TaskResult
    from recomart_pipeline.runtime.attempt import AttemptRequest

# SIGTERM to SIGKILL: short, so a task deaf to SIGTERM is still gone within 1 s of its limit.
TERMINATE_GRACE_SECONDS = 0.5
# Imported once by the forkserver, so each task's child starts with them: importing a built-in
# task's module (pandas, pyarrow, scipy, numba, scikit-learn, matplotlib) in its child cost
# ~1 s per task before they were here.
PRELOAD = ["recomart_pipeline.runtime.attempt", "numpy", "pandas", "pyarrow.parquet"]
# Imported by the forkserver before the preloads: keeps the parent's main script out of the
# children (see the module), told it by this variable, set only while the server starts.
_SERVER_SETUP = "recomart_pipeline.runtime.forkserver_preload"
MAIN_SCRIPT_VARIABLE = "RECOMART_FORKSERVER_MAIN_SCRIPT"
_context: multiprocessing.context.ForkServerContext | None = None


def _builtin_modules() -> list[str]:
    """The implementation modules of the built-in tasks (their specs name them)."""
    specs = [builtin_spec(name) for name in builtin_names()]
    return [spec.run.partition(":")[0] for spec in specs if isinstance(spec.run, str)]


@dataclass(frozen=True)
class Limits:
    """What an attempt may use. ``timeout_seconds`` counts from the attempt's start and ends at
    ``deadline`` (``time.monotonic()``, the same clock in every process of the machine);
    ``limit`` is the setting that sets it and ``limit_seconds`` that setting's value."""

    timeout_seconds: float | None
    memory_bytes: int | None
    threads: int | None = None
    deadline: float | None = None
    limit: str | None = None
    limit_seconds: float | None = None

    def timeout_error(self, task: str, phase: str) -> TaskTimeoutError:
        """The error of an attempt stopped at its deadline, naming the limit that fired."""
        if self.limit == "execution.timeout_seconds":
            return TaskTimeoutError(
                f"the run exceeded execution.timeout_seconds ({self.limit_seconds:g}s); "
                f"task '{task}' was stopped {phase}",
                hint="raise execution.timeout_seconds or make the tasks faster",
            )
        return TaskTimeoutError(
            f"task '{task}' exceeded its timeout of {self.limit_seconds:g}s "
            f"(tasks.{task}.timeout_seconds) and was stopped {phase}",
            hint=f"raise tasks.{task}.timeout_seconds or make the task faster",
        )

    @property
    def isolated(self) -> bool:
        return self.timeout_seconds is not None or self.memory_bytes is not None


class RemoteTaskError(TaskError):
    """An error raised in the child, re-raised in the parent with its class preserved."""

    def __init__(self, error_class: str, message: str, remote_traceback: str) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.remote_traceback = remote_traceback


def _forkserver() -> multiprocessing.context.ForkServerContext:
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload([_SERVER_SETUP, *PRELOAD, *_builtin_modules()])
    return _context


_server_lock = threading.Lock()


def _ensure_server() -> None:
    """Start the forkserver (if it is not running) knowing the parent's main script, so its
    children do not run that script again (``forkserver_preload``). The server inherits the
    environment it starts with; the variable is set only for that moment."""
    preparation = multiprocessing.spawn.get_preparation_data("recomart-forkserver")
    script = preparation.get("init_main_from_path")
    with _server_lock:
        os.environ.pop(MAIN_SCRIPT_VARIABLE, None)  # only ours reaches the server
        if script:
            os.environ[MAIN_SCRIPT_VARIABLE] = script
        try:
            multiprocessing.forkserver.ensure_running()
        finally:
            os.environ.pop(MAIN_SCRIPT_VARIABLE, None)


class _QueueLogHandler(logging.Handler):
    def __init__(self, channel: Any) -> None:
        super().__init__()
        self.channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "fields", None)
        self.channel.put(("log", record.levelno, record.getMessage(), fields))


def _cap_threads(threads: int) -> Any:
    """``resources.max_cpu_cores`` for numeric thread pools (BLAS/OpenMP and numba)."""
    from threadpoolctl import threadpool_limits

    for variable in (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "NUMBA_NUM_THREADS",
    ):
        os.environ[variable] = str(threads)  # for libraries the task loads later
    import numba  # preloaded by the forkserver: its thread count is fixed, only masked here

    # First, because it starts numba's threading layer (an OpenMP runtime) on first use...
    # NUMBA_NUM_THREADS is set on numba.config at import time; numba's stubs do not declare it.
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    return threadpool_limits(limits=threads)  # ...which this then caps with the loaded BLAS


def _address_space_bytes() -> int:
    """This process's current virtual size (Linux ``/proc``; 0 where it is unavailable)."""
    try:
        pages = int(open("/proc/self/statm").read().split()[0])  # noqa: SIM115
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def _child_main(payload: bytes, sys_path: list[str], limits: Limits, channel: Any) -> None:
    """Entry point of the child: apply limits, run the attempt, report result or error."""
    if limits.deadline is not None and time.monotonic() >= limits.deadline:
        return  # started after its deadline (cold forkserver): the parent has given up
    for entry in reversed(sys_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    memory_bytes = limits.memory_bytes
    from recomart_pipeline.runtime.attempt import execute_attempt

    try:
        if memory_bytes is not None:
            # The preloaded libraries already map a lot of (mostly virtual) memory; the budget
            # is what the task may add to that, not a cap the runtime itself would break.
            limit = _address_space_bytes() + memory_bytes
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        _limiter = _cap_threads(limits.threads) if limits.threads else None  # kept for the call
        config, request = pickle.loads(payload)
        logger = logging.getLogger(f"recomart.child.{request.task}")
        logger.handlers = [_QueueLogHandler(channel)]
        logger.setLevel(config.settings.logging.level)
        logger.propagate = False
        result = execute_attempt(config, request, logger)
        # The task process's own high-water mark: what a task really needs (benchmarks, limits).
        result.metrics.setdefault(
            "peak_rss_mib", round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        )
        channel.put(("result", pickle.dumps(result)))
    except BaseException as exc:  # everything must reach the parent, classified
        message = (
            str(exc)
            if not isinstance(exc, MemoryError)
            else (
                f"out of memory: the task exceeded resources.max_memory_gb ({memory_bytes} bytes)"
            )
        )
        channel.put(("error", classify_exception(exc), message, traceback.format_exc()))


_daemon_flag = threading.Lock()


def _start(process: BaseProcess) -> None:
    """Start the child even from a daemonic process (dask and celery workers are daemonic).

    multiprocessing refuses children of daemonic processes because it would not clean them
    up; we clean up ourselves (``_stop`` in ``run_isolated``'s finally, and the watchdog kills
    the children recorded in heartbeats if our process dies), so lift the flag for the call.
    """
    current = multiprocessing.current_process()
    with _daemon_flag:  # starts run in threads: restore the flag this process really had
        was_daemon = current._config.get("daemon", False)  # type: ignore[attr-defined]
        current._config["daemon"] = False  # type: ignore[attr-defined]
        try:
            _ensure_server()
            process.start()
        finally:
            current._config["daemon"] = was_daemon  # type: ignore[attr-defined]


def _stop(process: BaseProcess) -> None:
    process.terminate()
    process.join(TERMINATE_GRACE_SECONDS)
    if process.is_alive():
        process.kill()
        process.join()


class _Launch:
    """Starts the child in a thread, so waiting for a cold forkserver cannot outlast the
    deadline; if the attempt gave up first, the child is killed as soon as it exists."""

    def __init__(self, process: BaseProcess) -> None:
        self.process = process
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.abandoned = False
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"{process.name}-start", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            _start(self.process)
        except BaseException as exc:  # re-raised in the attempt's thread
            self.error = exc
        with self.lock:
            self.done.set()
            abandoned = self.abandoned
        if abandoned and self.error is None:
            self.process.kill()
            self.process.join()

    @property
    def started(self) -> bool:
        with self.lock:
            return self.done.is_set() and not self.abandoned and self.error is None

    def wait(self, deadline: float | None) -> bool:
        """True once the child started; False if ``deadline`` came first (then abandoned)."""
        self.done.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        with self.lock:
            if not self.done.is_set():
                self.abandoned = True
                return False
        if self.error is not None:
            raise self.error
        return True


def run_isolated(
    config: PipelineConfig, request: AttemptRequest, limits: Limits, logger: logging.Logger
) -> TaskResult:
    """Run ``request`` in a child; raise TaskTimeoutError, RemoteTaskError or TaskCrashedError.

    The timeout is ``limits.deadline`` (the attempt's start + its limit), checked before and
    after every message from the child, so neither a slow start nor a chatty task delays it.
    """
    ctx = _forkserver()
    channel = ctx.Queue()
    payload = pickle.dumps((config, request))
    process = ctx.Process(
        target=_child_main,
        args=(payload, [str(config.project_root), *sys.path], limits, channel),
        name=f"recomart-task-{request.task}",
        daemon=True,
    )
    deadline = limits.deadline
    if deadline is None and limits.timeout_seconds is not None:
        deadline = time.monotonic() + limits.timeout_seconds
    launch = _Launch(process)
    try:
        if not launch.wait(deadline):
            raise limits.timeout_error(
                request.task, "while its worker process was still starting"
            ) from None
        if process.pid is not None:
            register_child(process.pid)
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                _stop(process)
                raise limits.timeout_error(request.task, "while running") from None
            wait = 0.5 if deadline is None else min(0.5, deadline - now)
            try:
                message = channel.get(timeout=wait)
            except queue.Empty:
                if process.is_alive() or not channel.empty():
                    continue
                process.join()
                if deadline is not None and time.monotonic() >= deadline:
                    continue  # it stopped itself at the deadline: a timeout, not a crash
                raise TaskCrashedError(
                    f"the process of task '{request.task}' died with exit code "
                    f"{process.exitcode} before reporting a result",
                    hint="a negative code is the signal that killed it (-9: SIGKILL, e.g. "
                    "the kernel's out-of-memory killer)",
                ) from None
            kind = message[0]
            if kind == "log":
                _, level, text, fields = message
                logger.log(level, text, extra={"fields": fields} if fields else None)
            elif kind == "result":
                process.join()
                result: TaskResult = pickle.loads(message[1])
                return result
            else:
                _, error_class, text, remote_tb = message
                process.join()
                logger.debug(f"child traceback:\n{remote_tb}")
                raise RemoteTaskError(error_class, text, remote_tb)
    finally:
        if launch.started:  # an abandoned start is cleaned up by its own thread
            if process.is_alive():
                _stop(process)
            if process.pid is not None:
                unregister_child(process.pid)
        channel.close()
