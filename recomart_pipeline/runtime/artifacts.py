"""Artifact storage: atomic writes, content hashes and per-run checkpoints.

Layout under ``storage.base_dir``::

    runs/{run_id}/{task}/...          outputs of one task in one run (written atomically)
    runs/{run_id}/{task}/_result.json the checkpoint: output paths, sha256, metrics
    latest/{task}.json                 pointer to the newest successful checkpoint
    latest/{task}.blocked.json         the newest checkpoint whose blocking checks failed, when
                                       it is newer than latest (kept for inspection only)
    latest/partitions/{key}/{task}.json  the same, per partition (daily backfills)

A task writes into a private staging directory; only when it succeeded is the directory
renamed into place and the checkpoint written, so a killed task never leaves half a result
and the previous checkpoint stays valid.

Which checkpoint a task reads is an ``InputPolicy``: a run reads its own checkpoints (and those
of the runs it resumes), ``latest`` only for upstream tasks the run did not select, and never
an output whose blocking (ERROR) checks failed unless the user allowed that task by name.

With an object store (``storage.base_dir: s3://…``) the same layout lives there and the local
folder is its cache (see runtime.object_store): checkpoints are uploaded before their
``latest`` pointer, and inputs missing or different locally are downloaded and re-hashed.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from recomart_pipeline.contract.errors import UpstreamArtifactError
from recomart_pipeline.contract.files import sha256_file, verify_artifact, write_json_atomic

if TYPE_CHECKING:
    from recomart_pipeline.runtime.object_store import ObjectStore

RESULT_FILE = "_result.json"


@dataclass(frozen=True)
class ArtifactRecord:
    """One output file of a task, as recorded in its checkpoint."""

    name: str
    path: Path
    sha256: str
    size_bytes: int

    def verify(self) -> None:
        verify_artifact(self.name, self.path, self.sha256)


@dataclass(frozen=True)
class Checkpoint:
    """What a successful task left behind: its outputs with hashes, and its metrics."""

    task: str
    run_id: str
    artifacts: dict[str, ArtifactRecord]
    metrics: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    blocked: tuple[str, ...] = ()  # the blocking checks that failed: not an input by default

    def path(self, name: str) -> Path:
        try:
            return self.artifacts[name].path
        except KeyError:
            known = ", ".join(sorted(self.artifacts)) or "none"
            raise UpstreamArtifactError(
                f"task '{self.task}' has no output named '{name}' (it has: {known})"
            ) from None

    def verify(self) -> None:
        for record in self.artifacts.values():
            record.verify()

    def to_json(self, root: Path) -> dict[str, Any]:
        return {
            "task": self.task,
            "run_id": self.run_id,
            "artifacts": {
                name: {
                    "path": os.path.relpath(rec.path, root),
                    "sha256": rec.sha256,
                    "size_bytes": rec.size_bytes,
                }
                for name, rec in sorted(self.artifacts.items())
            },
            "metrics": self.metrics,
            "metadata": self.metadata,
            **({"blocked": list(self.blocked)} if self.blocked else {}),
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any], root: Path) -> Checkpoint:
        return cls(
            task=payload["task"],
            run_id=payload["run_id"],
            artifacts={
                name: ArtifactRecord(name, root / rec["path"], rec["sha256"], rec["size_bytes"])
                for name, rec in payload["artifacts"].items()
            },
            metrics=payload.get("metrics", {}),
            metadata=payload.get("metadata", {}),
            blocked=tuple(payload.get("blocked", ())),
        )


@dataclass(frozen=True)
class InputPolicy:
    """Where a task's upstream checkpoints may come from, so runs never mix silently.

    ``runs``: this run first, then the runs it resumes (newest first). ``pinned``: upstream
    task -> the run whose output the resumed run read, so a resume reads the same files.
    ``latest``: upstream tasks that may fall back to the ``latest`` pointer (``None``: all, as
    for ``task`` and direct calls; a Dagster run allows only tasks it did not select).
    ``allow_failed_checks``: upstream tasks whose blocked output the user chose to read.
    ``absent``: upstream tasks that will not run in this run because a blocking check
    stopped them; a task that explains failures (the report) runs without their outputs.
    """

    runs: tuple[str, ...]
    latest: frozenset[str] | None = None
    pinned: dict[str, str] = field(default_factory=dict)
    allow_failed_checks: frozenset[str] = frozenset()
    absent: frozenset[str] = frozenset()

    def may_use_latest(self, task: str) -> bool:
        return self.latest is None or task in self.latest


def _flag(task: str) -> str:
    return f"--allow-failed-checks {task}"


class ArtifactStore:
    """The storage root of one pipeline: staging, publishing and finding checkpoints."""

    def __init__(self, root: Path, remote: ObjectStore | None = None) -> None:
        self.root = root
        self.remote = remote

    def _key(self, path: Path) -> PurePosixPath:
        return PurePosixPath(path.relative_to(self.root).as_posix())

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    def task_dir(self, run_id: str, task: str) -> Path:
        return self.run_dir(run_id) / task

    def new_staging_dir(self, run_id: str, task: str) -> Path:
        staging = self.run_dir(run_id) / ".staging" / f"{task}-{uuid.uuid4().hex[:8]}"
        staging.mkdir(parents=True)
        return staging

    def latest_pointer(self, task: str, partition_key: str | None = None) -> Path:
        if partition_key is None:
            return self.root / "latest" / f"{task}.json"
        return self.root / "latest" / "partitions" / partition_key / f"{task}.json"

    def blocked_pointer(self, task: str, partition_key: str | None = None) -> Path:
        return self.latest_pointer(task, partition_key).with_name(f"{task}.blocked.json")

    def publish(
        self,
        run_id: str,
        task: str,
        staging: Path,
        outputs: dict[str, Path],
        metrics: dict[str, Any],
        metadata: dict[str, Any],
        partition_key: str | None = None,
        blocked: tuple[str, ...] = (),
    ) -> Checkpoint:
        """Move a finished staging dir into place, hash it and record the checkpoint.

        A checkpoint with failed blocking checks is kept in its run folder for inspection
        but never becomes ``latest``: it is pointed at by ``latest/{task}.blocked.json``.
        """
        final = self.task_dir(run_id, task)
        records: dict[str, ArtifactRecord] = {}
        for name, path in outputs.items():
            path = Path(path)
            try:
                relative = path.resolve().relative_to(staging.resolve())
            except ValueError:
                raise UpstreamArtifactError(
                    f"task '{task}' returned output '{name}' outside its output dir: {path}",
                    hint="write outputs with ctx.output_path(...)",
                ) from None
            if not path.exists():
                raise UpstreamArtifactError(
                    f"task '{task}' returned output '{name}' = {path}, but no such file was written"
                )
            records[name] = ArtifactRecord(
                name, final / relative, sha256_file(path), path.stat().st_size
            )
        checkpoint = Checkpoint(task, run_id, records, metrics, metadata, tuple(blocked))
        write_json_atomic(staging / RESULT_FILE, checkpoint.to_json(self.root))
        # Replace an earlier attempt's directory of the same run in two renames, so at every
        # moment either the old or the new complete directory is in place.
        if final.exists():
            retired = final.with_name(f".{task}-retired-{uuid.uuid4().hex[:8]}")
            os.replace(final, retired)
            os.replace(staging, final)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging, final)
        pointer = self.latest_pointer(task, partition_key)
        blocked_pointer = self.blocked_pointer(task, partition_key)
        if blocked:
            pointer = blocked_pointer
        if self.remote is not None:  # files first, pointer last: readers never see half
            self.remote.upload_tree(final, self._key(final))
            self.remote.write_json(self._key(pointer), checkpoint.to_json(self.root))
        write_json_atomic(pointer, checkpoint.to_json(self.root))
        if not blocked:  # the newest output is good again: no blocked one is newer
            blocked_pointer.unlink(missing_ok=True)
            if self.remote is not None:
                self.remote.delete(self._key(blocked_pointer))
        return checkpoint

    def discard(self, staging: Path) -> None:
        shutil.rmtree(staging, ignore_errors=True)

    def find_checkpoint(
        self, task: str, run_id: str | None = None, partition_key: str | None = None
    ) -> Checkpoint | None:
        """This run's checkpoint of ``task`` if it has one, else the latest successful one
        (of the same partition, for partitioned runs)."""
        if run_id is not None:
            own = self.run_checkpoint(task, run_id)
            if own is not None:
                return own
        payload = self._read_record(self.latest_pointer(task, partition_key))
        return Checkpoint.from_json(payload, self.root) if payload is not None else None

    def run_checkpoint(self, task: str, run_id: str) -> Checkpoint | None:
        payload = self._read_record(self.task_dir(run_id, task) / RESULT_FILE)
        return Checkpoint.from_json(payload, self.root) if payload is not None else None

    def _read_record(self, path: Path) -> dict[str, Any] | None:
        """A checkpoint record; with an object store its copy there is the truth (another
        machine may have published since), except for a run's own immutable records."""
        if path.exists() and (self.remote is None or path.name == RESULT_FILE):
            record: dict[str, Any] = json.loads(path.read_text())
            return record
        if self.remote is None:
            return None
        payload = self.remote.read_json(self._key(path))
        if payload is not None:
            write_json_atomic(path, payload)
        return payload

    def previous_checkpoint(self, task: str, partition_key: str | None = None) -> Checkpoint | None:
        """The task's latest successful checkpoint, its files made local when they can be
        (a missing earlier output only means there is nothing to compare with)."""
        checkpoint = self.find_checkpoint(task, None, partition_key)
        if checkpoint is None or self.remote is None:
            return checkpoint
        try:
            self.fetch(checkpoint)
        except UpstreamArtifactError:
            return None
        return checkpoint

    def fetch(self, checkpoint: Checkpoint, reads: Callable[[str], bool] | None = None) -> None:
        """Make the checkpoint's files (those whose name ``reads`` accepts, if given) present
        locally with their recorded hashes."""
        for record in checkpoint.artifacts.values():
            if reads is not None and not reads(record.name):
                continue
            try:
                record.verify()
                continue
            except UpstreamArtifactError:
                if self.remote is None:
                    raise
            if not self.remote.download(self._key(record.path), record.path):
                raise UpstreamArtifactError(
                    f"artifact '{record.name}' of task '{checkpoint.task}' is missing in "
                    f"{self.remote.url_of(self._key(record.path))}",
                    hint=f"re-materialize '{checkpoint.task}'",
                )
            record.verify()

    def load_upstream(
        self,
        task: str,
        policy: InputPolicy | str | None,
        partition_key: str | None = None,
        warn: Callable[[str], None] | None = None,
        reads: Callable[[str], bool] | None = None,
    ) -> Checkpoint:
        """The checkpoint of upstream ``task`` that ``policy`` allows, its files verified:
        all of them, or those whose artifact name ``reads`` accepts (the files the reading
        task can open: the others are neither hashed nor downloaded, which at 20M events was
        ~1.5 GB of hashing for the report alone, the models and serving arrays it never reads).

        A run id (or None) as ``policy`` means that run's own checkpoint, else ``latest``.
        """
        if not isinstance(policy, InputPolicy):
            policy = InputPolicy(runs=(policy,) if policy else ())
        checkpoint = self._choose(task, policy, partition_key, warn)
        if checkpoint.blocked and task not in policy.allow_failed_checks:
            raise UpstreamArtifactError(
                f"the output of upstream task '{task}' in run {checkpoint.run_id} failed its "
                f"blocking check(s) {', '.join(checkpoint.blocked)}; it is kept for inspection "
                "but is not used as an input",
                hint=f"fix the cause and re-run '{task}', or pass {_flag(task)} to use it "
                "anyway (recorded in the run manifest)",
            )
        self.fetch(checkpoint, reads)
        return checkpoint

    def _choose(
        self,
        task: str,
        policy: InputPolicy,
        partition_key: str | None,
        warn: Callable[[str], None] | None,
    ) -> Checkpoint:
        pinned = policy.pinned.get(task)
        for run_id in (*policy.runs, *((pinned,) if pinned else ())):
            checkpoint = self.run_checkpoint(task, run_id)
            if checkpoint is not None:
                return checkpoint
        if policy.may_use_latest(task):
            if task in policy.allow_failed_checks:
                blocked = self._read_record(self.blocked_pointer(task, partition_key))
                if blocked is not None:
                    return Checkpoint.from_json(blocked, self.root)
            payload = self._read_record(self.latest_pointer(task, partition_key))
            if payload is not None:
                blocked = self._read_record(self.blocked_pointer(task, partition_key))
                if blocked is not None and warn is not None:
                    warn(
                        f"the newest output of '{task}' (run {blocked['run_id']}) failed its "
                        f"blocking checks; reading the last good one, run {payload['run_id']} "
                        f"({_flag(task)} reads the newest)"
                    )
                return Checkpoint.from_json(payload, self.root)
            blocked = self._read_record(self.blocked_pointer(task, partition_key))
            if blocked is not None:  # only a failed output exists: load_upstream says so
                return Checkpoint.from_json(blocked, self.root)
        where = self.remote.url if self.remote else self.root
        if len(policy.runs) > 1 or pinned:
            resumed = ", ".join([*policy.runs[1:], *((pinned,) if pinned else ())])
            raise UpstreamArtifactError(
                f"upstream task '{task}' has no checkpoint in run {policy.runs[0]} nor in the "
                f"run(s) it resumes ({resumed}) under {where}; a resume never reads another "
                "run's outputs",
                hint=f"run the pipeline again without --resume, or re-materialize '{task}' "
                "in this run (run --select with it)",
            )
        raise UpstreamArtifactError(
            f"upstream task '{task}' has no checkpoint under {where}"
            + (
                f" for run {policy.runs[0]}"
                if policy.runs and not policy.may_use_latest(task)
                else ""
            ),
            hint=f"materialize '{task}' first (or run the whole job)",
        )
