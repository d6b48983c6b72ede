"""A schedule that keeps failing pauses itself instead of failing every night.

After ``scheduling.pause_after_failures`` consecutive failed runs started by the schedule,
its ticks are skipped (with the reason in the UI) and one notification is sent. Any
successful run of the job (e.g. a manual run after a fix) or ``python -m recomart_pipeline
schedule-resume`` ends the pause. Written by hand: Dagster has no failure threshold for
schedules.
"""

import json
import time

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from recomart_pipeline.config import PipelineConfig
from recomart_pipeline.contract.files import write_json_atomic
from recomart_pipeline.notify import RunNotice, dispatch

SCHEDULE_TAG = "dagster/schedule_name"
FINISHED = (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE)


def _state_path(config: PipelineConfig):
    return config.storage_root / "schedule_circuit.json"


def _state(config: PipelineConfig) -> dict:
    path = _state_path(config)
    return json.loads(path.read_text()) if path.exists() else {}


def resume_schedule(config: PipelineConfig) -> None:
    """The operator's restart: failures before now no longer count."""
    write_json_atomic(_state_path(config), {**_state(config), "resumed_at": time.time()})


def consecutive_failures(
    config: PipelineConfig, instance: DagsterInstance, job_name: str, schedule_name: str
) -> list[str]:
    """Run ids of the failed scheduled runs since the last success or resume (newest first)."""
    resumed_at = _state(config).get("resumed_at", 0.0)
    failed: list[str] = []
    for record in instance.get_run_records(
        RunsFilter(job_name=job_name, statuses=list(FINISHED)), limit=200
    ):
        if record.create_timestamp.timestamp() < resumed_at:
            break
        run = record.dagster_run
        if run.status == DagsterRunStatus.SUCCESS:
            break
        if run.tags.get(SCHEDULE_TAG) == schedule_name:
            failed.append(run.run_id)
    return failed


def pause_reason(
    config: PipelineConfig, instance: DagsterInstance, job_name: str, schedule_name: str
) -> str | None:
    """Why the schedule is paused (notifying once per pause), or None to run."""
    limit = config.settings.scheduling.pause_after_failures
    if limit == 0:
        return None
    failed = consecutive_failures(config, instance, job_name, schedule_name)
    if len(failed) < limit:
        return None
    reason = (
        f"paused after {len(failed)} consecutive failed scheduled runs (last {failed[0]}); "
        "a successful run or `python -m recomart_pipeline schedule-resume` resumes it"
    )
    state = _state(config)
    if state.get("notified_for") != failed[0]:
        settings = config.settings
        dispatch(
            config,
            RunNotice(
                pipeline=config.name,
                environment=settings.pipeline.environment,
                run_id=failed[0],
                status="FAILURE",
                run_url=f"{settings.notifications.ui_base_url.rstrip('/')}/runs/{failed[0]}",
                headline=f"schedule paused after {len(failed)} consecutive failures",
            ),
        )
        write_json_atomic(_state_path(config), {**state, "notified_for": failed[0]})
    return reason
