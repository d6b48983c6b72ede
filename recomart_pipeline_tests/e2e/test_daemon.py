"""The daemon for real: new data in a landing folder launches exactly one run, the same data
again launches none (``dagster dev`` = webserver + daemon, on 127.0.0.1)."""

from __future__ import annotations

import subprocess

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.scheduler.instigation import InstigatorType, TickStatus

from recomart_pipeline_tests.conftest import SAMPLE
from recomart_pipeline_tests.helpers import (
    DAGSTER,
    free_port,
    project_env,
    stop_process_group,
    wait_until,
    write_workspace,
)

pytestmark = pytest.mark.slow
TRIGGER = {"recomart/trigger": "data_arrival"}


def _sensor_state(instance: DagsterInstance):
    states = instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
    return next((s for s in states if s.name == "data_arrival_sensor"), None)


def _ticks(instance: DagsterInstance) -> int:
    """Finished evaluations only: a tick is recorded (STARTED) before the sensor has run."""
    state = _sensor_state(instance)
    if state is None:
        return 0
    ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1000)
    return sum(t.status != TickStatus.STARTED for t in ticks)


def _cursor(instance: DagsterInstance) -> str | None:
    state = _sensor_state(instance)
    return state.instigator_data.cursor if state and state.instigator_data else None


def test_data_arrival_sensor_launches_one_run_per_new_data(write_config):
    path = write_config(
        f"""
        scheduling: {{data_arrival: {{enabled: true, interval_seconds: 5}}}}
        tasks:
          landed: {{callable: "{SAMPLE}:count_landed", config: {{path: landing}}}}
        """
    )
    project = path.parent
    landing = project / "landing"
    landing.mkdir()
    (landing / "2026-01-01.csv").write_text("user_id,item_id\nu1,i1\n")
    env = project_env(project)
    # Create the instance's storage before dagster dev starts: two processes creating the
    # SQLite schema at once race ("table alembic_version already exists").
    instance = DagsterInstance.from_config(env["DAGSTER_HOME"])
    instance.get_runs(limit=1)
    process = subprocess.Popen(
        [
            DAGSTER,
            "dev",
            "-h",
            "127.0.0.1",
            "-p",
            str(free_port()),
            "-w",
            str(write_workspace(project)),
        ],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        # the baseline is stored once the first evaluation has finished; drop data only then
        wait_until(lambda: _cursor(instance), 300, "the sensor's first (baseline) evaluation")
        assert instance.get_runs(RunsFilter(tags=TRIGGER)) == []  # existing data: no run
        (landing / "2026-01-02.csv").write_text("user_id,item_id\nu2,i2\n")
        try:
            wait_until(lambda: instance.get_runs(RunsFilter(tags=TRIGGER)), 240, "a sensor run")
        except AssertionError:
            state = _sensor_state(instance)
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=5)
            raise AssertionError([(t.status, t.skip_reason, t.run_ids) for t in ticks]) from None
        run = instance.get_runs(RunsFilter(tags=TRIGGER))[0]
        wait_until(
            lambda: (
                instance.get_run_by_id(run.run_id).status
                in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE)
            ),
            180,
            "the sensor's run to finish",
        )
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.SUCCESS
        # the same file dropped again: same fingerprint, no new run
        (landing / "2026-01-02.csv").write_text("user_id,item_id\nu2,i2\n")
        seen = _ticks(instance)
        wait_until(lambda: _ticks(instance) >= seen + 2, 120, "two more sensor ticks")
        assert len(instance.get_runs(RunsFilter(tags=TRIGGER))) == 1
    finally:
        stop_process_group(process)
        instance.dispose()
