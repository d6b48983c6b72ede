"""Small, real task functions used by the foundation's tests (the ``callable:`` path)."""

from __future__ import annotations

import json
import os
import signal
import time

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from recomart_pipeline.contract import (
    CheckOutcome,
    CheckSpec,
    Input,
    Output,
    TaskContext,
    TaskResult,
    pipeline_task,
)
from recomart_pipeline.contract.documents import ReportSummary
from recomart_pipeline.contract.errors import SchemaError


class NumbersConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int = Field(5, ge=0)
    minimum_sum: int = 0


def _numbers_checks(config: NumbersConfig) -> list[CheckSpec]:
    return [CheckSpec("sum_large_enough", "sum of numbers >= minimum_sum", "ERROR")]


NUMBERS_OUT = Output("numbers", "json")
NUMBERS = Input("numbers", "json")
SQUARES = Input("squares", "json", many=True)
ONE_SQUARES = Input("squares", "json")
ATTEMPT = Output("attempt", "text")


@pipeline_task(config=NumbersConfig, checks=_numbers_checks, outputs=[NUMBERS_OUT])
def make_numbers(ctx: TaskContext) -> TaskResult:
    """Writes 0..count-1 as JSON."""
    numbers = list(range(ctx.config.count))
    path = ctx.output_path("numbers.json")
    path.write_text(json.dumps(numbers))
    ctx.logger.info("wrote numbers", extra={"fields": {"rows": len(numbers)}})
    total = sum(numbers)
    return TaskResult(
        outputs={"numbers": path},
        metrics={"rows": len(numbers), "sum": total},
        checks=[CheckOutcome("sum_large_enough", total >= ctx.config.minimum_sum, "ERROR")],
    )


@pipeline_task(outputs=[NUMBERS_OUT, Output("notes", "text")])
def numbers_with_notes(ctx: TaskContext) -> TaskResult:
    """Writes 0..2 as JSON and a note beside them that no sample task reads."""
    numbers = ctx.output_path("numbers.json")
    numbers.write_text(json.dumps([0, 1, 2]))
    notes = ctx.output_path("notes.txt")
    notes.write_text("made by numbers_with_notes")
    return TaskResult(outputs={"numbers": numbers, "notes": notes})


@pipeline_task(inputs=[NUMBERS], outputs=[Output("squares", "json")])
def square(ctx: TaskContext) -> TaskResult:
    """Squares the numbers of its dependency."""
    numbers = json.loads(ctx.input(NUMBERS).read_text())
    path = ctx.output_path("squares.json")
    path.write_text(json.dumps([n * n for n in numbers]))
    return TaskResult(outputs={"squares": path}, metrics={"rows": len(numbers)})


@pipeline_task(inputs=[SQUARES], outputs=[Output("total", "json")])
def total(ctx: TaskContext) -> dict:
    """Sums the squares of every dependency (returns a plain dict, which is allowed)."""
    values = []
    for path in ctx.inputs(SQUARES).values():
        values.extend(json.loads(path.read_text()))
    path = ctx.output_path("total.json")
    path.write_text(json.dumps(sum(values)))
    return {"outputs": {"total": path}, "metrics": {"total": sum(values)}}


ANY_NUMBERS = Input("numbers", "json", many=True, optional=True)


@pipeline_task(inputs=[ANY_NUMBERS], outputs=[NUMBERS_OUT])
def merge_numbers(ctx: TaskContext) -> TaskResult:
    """Concatenates the numbers of every dependency (any number of them, none included)."""
    numbers = [n for path in ctx.inputs(ANY_NUMBERS).values() for n in json.loads(path.read_text())]
    path = ctx.output_path("numbers.json")
    path.write_text(json.dumps(numbers))
    return TaskResult(outputs={"numbers": path}, metrics={"rows": len(numbers)})


@pipeline_task(outputs=[ATTEMPT])
def flaky(ctx: TaskContext) -> TaskResult:
    """Fails with a connection error until its third attempt."""
    if ctx.attempt < 3:
        raise ConnectionError(f"source unreachable on attempt {ctx.attempt}")
    path = ctx.output_path("attempt.txt")
    path.write_text(str(ctx.attempt))
    return TaskResult(outputs={"attempt": path}, metrics={"attempt": ctx.attempt})


@pipeline_task(outputs=[ATTEMPT])
def unreachable(ctx: TaskContext) -> TaskResult:
    """Always fails with a (retryable) connection error."""
    raise ConnectionError(f"source unreachable on attempt {ctx.attempt}")


@pipeline_task(
    inputs=[Input("numbers", "json", optional=True)], outputs=[Output("squares", "json")]
)
def bad_schema(ctx: TaskContext) -> None:
    """Always fails with a non-retryable schema error."""
    raise SchemaError("column 'rating' missing", hint="map it with column_mapping")


def leaks_secret(ctx: TaskContext) -> None:
    """Logs and fails with the value of a secret from the environment."""
    secret = os.environ["SAMPLE_SECRET"]
    ctx.logger.info(f"connecting with {secret}")
    raise ConnectionError(f"login refused for {secret}")


class SleepConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = 60
    ignore_sigterm: bool = False


@pipeline_task(config=SleepConfig, outputs=[Output("numbers", "json", optional=True)])
def hang(ctx: TaskContext) -> None:
    """Blocks far longer than its timeout, optionally deaf to SIGTERM (a task may read the
    numbers it would have written, so it can have dependents)."""
    if ctx.config.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ctx.logger.info("about to hang")
    time.sleep(ctx.config.seconds)


def hog_memory(ctx: TaskContext) -> None:
    """Allocates ~2 GiB at once."""
    block = bytearray(2 * 1024**3)
    ctx.logger.info(f"allocated {len(block)} bytes")


def crash(ctx: TaskContext) -> None:
    """Writes half an output, then is killed (as by the OOM killer or an operator)."""
    ctx.output_path("numbers.json").write_text("[1, 2")
    os.kill(os.getpid(), signal.SIGKILL)


class CopyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = "input.txt"


@pipeline_task(
    config=CopyConfig, sources=lambda config: [config.path], outputs=[Output("copy", "text")]
)
def copy_file(ctx: TaskContext) -> TaskResult:
    """Copies a file of the project (an external input whose content may change)."""
    out = ctx.output_path("copy.txt")
    out.write_bytes(ctx.resolve_project_path(ctx.config.path).read_bytes())
    return TaskResult(outputs={"copy": out})


@pipeline_task(
    config=CopyConfig,
    inputs=[ONE_SQUARES],
    outputs=[Output("result", "json")],
)
def needs_file(ctx: TaskContext) -> TaskResult:
    """Fails (not retryable) until its input file exists; reads its dependency's squares."""
    numbers = json.loads(ctx.input(ONE_SQUARES).read_text())
    source = ctx.resolve_project_path(ctx.config.path)
    if not source.exists():
        raise SchemaError(f"{source} is missing")
    out = ctx.output_path("result.json")
    out.write_text(json.dumps({"squares": numbers, "extra": source.read_text()}))
    return TaskResult(outputs={"result": out})


@pipeline_task(config=SleepConfig, outputs=[ATTEMPT])
def hang_once(ctx: TaskContext) -> TaskResult:
    """Hangs on its first attempt (to be killed by its timeout), succeeds on the next."""
    if ctx.attempt == 1:
        time.sleep(ctx.config.seconds)
    out = ctx.output_path("attempt.txt")
    out.write_text(str(ctx.attempt))
    return TaskResult(outputs={"attempt": out}, metrics={"attempt": ctx.attempt})


@pipeline_task(outputs=[NUMBERS_OUT])
def slow_numbers(ctx: TaskContext) -> TaskResult:
    """Writes numbers slowly in pieces, so two concurrent runs interleave their writes."""
    path = ctx.output_path("numbers.json")
    with path.open("w") as handle:
        handle.write("[")
        for index in range(20):
            handle.write(f"{index}{', ' if index < 19 else ''}")
            handle.flush()
            time.sleep(0.01)  # stretches the write so the other run overlaps with it
        handle.write("]")
    return TaskResult(outputs={"numbers": path}, metrics={"run": ctx.run_id})


def report_threads(ctx: TaskContext) -> TaskResult:
    """Reports the BLAS/OpenMP thread limits it runs under."""
    from threadpoolctl import threadpool_info

    limits = sorted({pool["num_threads"] for pool in threadpool_info()})
    return TaskResult(metrics={"max_threads": max(limits) if limits else 0})


@pipeline_task(
    config=CopyConfig, sources=lambda config: [config.path], outputs=[Output("files", "json")]
)
def count_landed(ctx: TaskContext) -> TaskResult:
    """Counts the files in a landing directory (a data-arrival source)."""
    files = sorted(p.name for p in ctx.resolve_project_path(ctx.config.path).iterdir())
    out = ctx.output_path("files.json")
    out.write_text(json.dumps(files))
    return TaskResult(outputs={"files": out}, metrics={"files": len(files)})


@pipeline_task(outputs=[Output("out", "text")])
def leaks_secret_but_succeeds(ctx: TaskContext) -> TaskResult:
    """Logs a secret from the environment and puts it in metadata, then succeeds."""
    secret = os.environ["SAMPLE_SECRET"]
    ctx.logger.info(f"token is {secret}")
    out = ctx.output_path("out.txt")
    out.write_text("ok")
    return TaskResult(
        outputs={"out": out}, metrics={"note": f"used {secret}"}, metadata={"token": secret}
    )


def disk_full_midway(ctx: TaskContext) -> None:
    """Writes part of its output, then the disk fills up (as a real ENOSPC write error)."""
    import errno

    with ctx.output_path("numbers.json").open("w") as handle:
        handle.write("[1, 2, 3")
        raise OSError(errno.ENOSPC, "No space left on device")


class SecretConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    endpoint: str = "http://127.0.0.1:9"
    api_token: SecretStr = SecretStr("")


@pipeline_task(config=SecretConfig)
def uses_secret(ctx: TaskContext) -> TaskResult:
    """Has a secret in its config (which must stay out of the launchpad)."""
    return TaskResult(metrics={"has_token": bool(ctx.config.api_token.get_secret_value())})


class BreakConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    how: str = "undeclared_output"


CONTRACT_DOC = Output("summary", "json", document=ReportSummary)


@pipeline_task(config=BreakConfig, inputs=[NUMBERS], outputs=[CONTRACT_DOC])
def breaks_its_contract(ctx: TaskContext) -> TaskResult:
    """Breaks the task contract in the way ``how`` names (each must fail the attempt)."""
    out = ctx.output_path("summary.json")
    out.write_text(json.dumps({"run_id": ctx.run_id}))
    if ctx.config.how == "undeclared_output":
        return TaskResult(outputs={"summary": out, "extra": out})
    if ctx.config.how == "missing_output":
        return TaskResult()
    if ctx.config.how == "invalid_document":
        out.write_text(json.dumps({"run_id": ctx.run_id, "not_a_field": 1}))
        return TaskResult(outputs={"summary": out})
    if ctx.config.how == "undeclared_input":
        ctx.input(ONE_SQUARES)
    return TaskResult(outputs={"summary": out})


@pipeline_task()
def peek_manifest(ctx: TaskContext) -> TaskResult:
    """Reports the statuses its own run's manifest shows while it is running."""
    manifest = json.loads((ctx.storage_root / "runs" / ctx.run_id / "manifest.json").read_text())
    return TaskResult(
        metadata={"seen": {name: entry["status"] for name, entry in manifest["tasks"].items()}}
    )


@pipeline_task(config=NumbersConfig, outputs=[Output("table", "parquet")])
def make_table(ctx: TaskContext) -> TaskResult:
    """Writes a small Parquet table of ``count`` rows (id, score)."""
    import pandas as pd

    path = ctx.output_path("table.parquet")
    frame = pd.DataFrame({"id": range(ctx.config.count), "score": [0.5] * ctx.config.count})
    frame.to_parquet(path, index=False)
    return TaskResult(
        outputs={"table": path},
        metadata={"degraded": False, "note": None, "service_url": "http://127.0.0.1:8000"},
    )
