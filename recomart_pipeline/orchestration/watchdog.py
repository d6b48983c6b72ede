"""Watchdog for run workers that died: mark their runs failed and kill orphaned tasks.

Written by hand because Dagster only monitors runs it launched through the daemon's run
launcher; a ``dagster job execute`` or CLI run whose process is killed stays STARTED
forever. Our runtime's heartbeats (runtime/heartbeat.py) tell a dead worker from a slow one.
"""

import os
import signal
from dataclasses import dataclass

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from recomart_pipeline.config import PipelineConfig
from recomart_pipeline.runtime.heartbeat import read_beats, run_is_dead


@dataclass(frozen=True)
class DeadRun:
    run_id: str
    killed_children: list[int]


def _kill(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def fail_dead_runs(config: PipelineConfig, instance: DagsterInstance) -> list[DeadRun]:
    """Find STARTED runs whose workers stopped beating and died; fail them, kill orphans."""
    found = []
    for run in instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED])):
        beats = read_beats(config.storage_root, run.run_id)
        if not run_is_dead(beats):
            continue
        killed = [pid for beat in beats for pid in beat.children if _kill(pid)]
        instance.report_run_failed(
            run,
            message=(
                "run worker died (no heartbeat, process gone); marked failed by the RecoMart "
                f"watchdog, killed {len(killed)} orphaned task process(es). Resume with "
                f"`python -m recomart_pipeline run --resume {run.run_id}`."
            ),
        )
        found.append(DeadRun(run.run_id, killed))
    return found


def watchdog_sensor(config: PipelineConfig) -> SensorDefinition:
    @sensor(
        name="run_watchdog_sensor",
        minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING,
        description="Fails runs whose worker process died and kills their orphaned tasks.",
    )
    def run_watchdog(context: SensorEvaluationContext) -> SkipReason:
        dead = fail_dead_runs(config, context.instance)
        if dead:
            return SkipReason(f"marked {len(dead)} dead run(s) failed: {[d.run_id for d in dead]}")
        return SkipReason("no dead runs")

    return run_watchdog
