"""Run alerts: one message per finished run, whoever started it.

Two senders can see a run end. The process orchestrating the run (the CLI, ``dagster job
execute``, ``execute_pipeline_programmatically``, or the run worker the daemon and the UI
launch) sends as soon as the run's outcome is known, through an executor wrapper
(``with_run_alerts``); the daemon's run-status sensors send for runs whose orchestrator
could not (killed worker, a run that failed before its executor started). Both first claim
the run in the Dagster instance with one atomic insert (``claim_alert``), so exactly one of
them sends, with or without a daemon. Retries inside a run do not end the run, so a task
that fails three times produces one "failed after 3 attempts" message; the sensor's cursor
moves on even when a notifier is down, so old alerts are never replayed. Whoever sends uses
the run's own config (``run_alert_config``), so the ``smtp`` and ``slack`` resources as the
run's launchpad set them decide where the message goes.
"""

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from dagster import (
    DagsterEvent,
    DagsterEventType,
    DagsterExecutionInterruptedError,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    Executor,
    ExecutorDefinition,
    IntMetadataValue,
    JobDefinition,
    RunFailureSensorContext,
    RunStatusSensorContext,
    SensorDefinition,
    TextMetadataValue,
    run_failure_sensor,
    run_status_sensor,
)
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition
from dagster._core.storage.runs.schema import KeyValueStoreTable
from dagster._core.storage.runs.sql_run_storage import SqlRunStorage
from sqlalchemy import exc as db_exc

from recomart_pipeline.config import ConfigError, PipelineConfig
from recomart_pipeline.notify import RunNotice, TaskLine, dispatch
from recomart_pipeline.orchestration.run_config import config_for_run

if TYPE_CHECKING:
    from dagster._core.execution.context.system import PlanOrchestrationContext
    from dagster._core.execution.plan.plan import ExecutionPlan
    from dagster._core.execution.retries import RetryMode
    from dagster._core.execution.step_dependency_config import StepDependencyConfig

log = logging.getLogger("recomart.notify")
LOG_TAIL_LINES = 10


def _log_tail(config: PipelineConfig, task: str, run_id: str) -> list[str]:
    path = config.resolve_path(config.settings.logging.dir) / f"{task}.log"
    if not path.exists():
        return []
    lines = []
    for raw in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(raw)
        except json.JSONDecodeError:
            lines.append(raw)  # text format logs
            continue
        if record.get("run_id") == run_id:
            lines.append(
                f"{record.get('ts', '')} {record.get('level', '')} {record.get('message', '')}"
            )
    return lines[-LOG_TAIL_LINES:]


def build_notice(
    config: PipelineConfig,
    instance: DagsterInstance,
    run: DagsterRun,
    status: DagsterRunStatus | None = None,
) -> RunNotice:
    """Collect the facts of a finished run from the Dagster instance and our task logs.

    ``status`` is the outcome when the caller knows it before Dagster records it (the
    orchestrating process, right after its executor finished); the run's duration then ends
    now.
    """
    status = status or run.status
    stats = instance.get_run_step_stats(run.run_id)
    tasks = [
        TaskLine(
            s.step_key,
            s.status.value if s.status else "UNKNOWN",
            (s.end_time - s.start_time) if s.end_time and s.start_time else None,
            max(1, len(s.attempts_list or [])),
        )
        for s in stats
    ]
    failed_task = error_class = error_message = None
    attempts = 0
    failures = instance.get_records_for_run(
        run.run_id, of_type=DagsterEventType.STEP_FAILURE
    ).records
    event = failures[0].event_log_entry.dagster_event if failures else None
    if event is not None:
        failed_task = event.step_key
        data = event.step_failure_data
        user_data = data.user_failure_data
        if user_data is not None:
            error_message = user_data.description
            klass = user_data.metadata.get("error_class")
            # retries.py records them as MetadataValue.text and MetadataValue.int
            error_class = klass.value if isinstance(klass, TextMetadataValue) else None
            count = user_data.metadata.get("attempts")
            attempts = (
                count.value
                if isinstance(count, IntMetadataValue) and count.value is not None
                else 1
            )
        elif data.error is not None:
            error_message = data.error.message.strip().splitlines()[0]
    record = instance.get_run_record_by_id(run.run_id)
    start = record.start_time if record else None
    end = (record.end_time if record else None) or time.time()
    duration = end - start if start else None
    base_url = config.settings.notifications.ui_base_url.rstrip("/")
    return RunNotice(
        pipeline=config.name,
        environment=config.settings.pipeline.environment,
        run_id=run.run_id,
        status="SUCCESS" if status == DagsterRunStatus.SUCCESS else "FAILURE",
        run_url=f"{base_url}/runs/{run.run_id}",
        tasks=tasks,
        failed_task=failed_task,
        error_class=error_class,
        error_message=error_message,
        failed_attempts=attempts,
        last_log_lines=_log_tail(config, failed_task, run.run_id) if failed_task else [],
        duration_s=duration,
    )


ALERT_KEY_PREFIX = "recomart/alert/"
_pending: list[threading.Thread] = []


def claim_alert(instance: DagsterInstance, run_id: str, sender: str) -> bool:
    """True for exactly one caller per run: whoever first records itself as its sender.

    One insert into the instance's key-value table, whose key is unique: atomic across
    processes and machines sharing the instance (SQLite or Postgres). Storages that are not
    SQL fall back to check-then-set.
    """
    key = f"{ALERT_KEY_PREFIX}{run_id}"
    storage = instance.run_storage
    if isinstance(storage, SqlRunStorage):
        try:
            with storage.connect() as conn:
                conn.execute(KeyValueStoreTable.insert().values(key=key, value=sender))
        except db_exc.IntegrityError:
            return False
        return True
    if storage.get_cursor_values({key}):
        return False
    storage.set_cursor_values({key: sender})
    return True


def alert_sender(instance: DagsterInstance, run_id: str) -> str | None:
    """Who claimed the run's alert (None: nobody yet)."""
    key = f"{ALERT_KEY_PREFIX}{run_id}"
    return instance.run_storage.get_cursor_values({key}).get(key)


def _who(role: str) -> str:
    return f"{role} (pid {os.getpid()} on {socket.gethostname()})"


def run_alert_config(config: PipelineConfig, run: DagsterRun) -> PipelineConfig:
    """The config the run's alert goes out with: the run's own, so the ``smtp`` and
    ``slack`` resources as the run saw them (launchpad values included). A run config
    that is not valid (the run failed on it) alerts through the YAML's channels."""
    try:
        return config_for_run(config, run.run_config)
    except ConfigError as exc:
        log.warning(f"run {run.run_id}: alerting with the YAML's channels: {exc}")
        return config


def send_run_alert(
    config: PipelineConfig,
    instance: DagsterInstance,
    run: DagsterRun,
    role: str,
    status: DagsterRunStatus | None = None,
    *,
    background: bool = False,
) -> bool:
    """Claim the run's alert and send it; False when another sender already has it.

    ``background`` sends from a (non-daemon) thread, so a run's end is not held up by a slow
    notifier while the process still waits for the message before it exits.
    """
    if not claim_alert(instance, run.run_id, _who(role)):
        return False
    config = run_alert_config(config, run)
    notice = build_notice(config, instance, run, status)

    def send() -> None:
        log.info(f"run {run.run_id} alert sent by {role}: {dispatch(config, notice)}")

    if background:
        thread = threading.Thread(target=send, name=f"recomart-alert-{run.run_id[:8]}")
        _pending.append(thread)
        thread.start()
    else:
        send()
    return True


def wait_for_alerts() -> None:
    """Wait until the alerts this process is sending in the background have gone out."""
    while _pending:
        _pending.pop().join()


def alert_finished_run(config: PipelineConfig, instance: DagsterInstance, run_id: str) -> None:
    """The launching process's part, after its run ended: send unless someone else has.

    Covers what the executor wrapper cannot see (a run that failed before its executor
    started), and waits for the wrapper's message so the caller returns with it sent.
    """
    wait_for_alerts()
    run = instance.get_run_by_id(run_id)
    if (
        config.settings.notifications.enabled
        and run is not None
        and run.status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE)
    ):
        send_run_alert(config, instance, run, "launching process")


class _AlertingExecutor(Executor):
    """Runs the job's executor, then sends the run's alert from the orchestrating process.

    The outcome is Dagster's rule (a failed step or an executor error fails the run),
    decided here just before Dagster records it, so the claim is taken before the daemon's
    sensor can see the run end. An interrupted run is left to the other senders, which read
    its final status.
    """

    def __init__(self, inner: Executor, config: PipelineConfig) -> None:
        self.inner = inner
        self.config = config

    @property
    def retries(self) -> "RetryMode":
        return self.inner.retries

    @property
    def step_dependency_config(self) -> "StepDependencyConfig":
        return self.inner.step_dependency_config

    def execute(
        self, plan_context: "PlanOrchestrationContext", execution_plan: "ExecutionPlan"
    ) -> Iterator[DagsterEvent]:
        outcome: DagsterRunStatus | None = None
        failed = False
        try:
            for event in self.inner.execute(plan_context, execution_plan):
                failed = failed or event.is_step_failure
                yield event
            outcome = DagsterRunStatus.FAILURE if failed else DagsterRunStatus.SUCCESS
        except (KeyboardInterrupt, DagsterExecutionInterruptedError, GeneratorExit):
            raise
        except BaseException:
            outcome = DagsterRunStatus.FAILURE
            raise
        finally:
            if outcome is not None:
                self._alert(plan_context, outcome)

    def _alert(self, plan_context: "PlanOrchestrationContext", outcome: DagsterRunStatus) -> None:
        try:
            sent = send_run_alert(
                self.config,
                plan_context.instance,
                plan_context.dagster_run,
                "run worker",
                outcome,
                background=True,
            )
            if sent:
                plan_context.log.info("run alert: sending from this process")
        except Exception as exc:  # an alert must never change the run's outcome
            log.warning(f"run alert not sent by the run worker: {exc}")


def with_run_alerts(executor_def: ExecutorDefinition, config: PipelineConfig) -> ExecutorDefinition:
    """``executor_def`` whose executor sends the run's alert when the run ends.

    A copy with the same name, config schema (including ``configured`` values) and
    requirements, so launchpad config and run launchers see the same executor.
    """
    if not config.settings.notifications.enabled or executor_def.executor_creation_fn is None:
        return executor_def
    create = executor_def.executor_creation_fn
    return ExecutorDefinition(
        name=executor_def.name,
        # as Dagster's own copy_for_configured does: the schema object carries `configured` values
        config_schema=executor_def.config_schema,  # type: ignore[arg-type]
        executor_creation_fn=lambda init_context: _AlertingExecutor(create(init_context), config),
        description=executor_def.description,
        requirements=executor_def.get_requirements,
    )


def notification_sensors(
    config: PipelineConfig, job: JobDefinition | UnresolvedAssetJobDefinition
) -> list[SensorDefinition]:
    """The daemon's part: alerts for runs whose orchestrator did not send one (see above)."""
    settings = config.settings.notifications
    status = DefaultSensorStatus.RUNNING if settings.enabled else DefaultSensorStatus.STOPPED

    def notify(context: RunStatusSensorContext) -> None:
        run = context.dagster_run
        if send_run_alert(config, context.instance, run, "daemon sensor"):
            context.log.info(f"run {run.run_id}: alert sent")
        else:
            sender = alert_sender(context.instance, run.run_id)
            context.log.info(f"run {run.run_id}: alert already sent by {sender}")

    @run_status_sensor(
        name="notify_on_success",
        run_status=DagsterRunStatus.SUCCESS,
        monitored_jobs=[job],
        default_status=status,
        description="Email/Slack message when a run succeeds (notify_success), unless the "
        "run's own process sent it.",
    )
    def notify_on_success(context: RunStatusSensorContext) -> None:
        notify(context)

    @run_failure_sensor(
        name="notify_on_failure",
        monitored_jobs=[job],
        default_status=status,
        description="Email/Slack message when a run fails (notify_failure), unless the run's "
        "own process sent it.",
    )
    def notify_on_failure(context: RunFailureSensorContext) -> None:
        notify(context)

    return [notify_on_success, notify_on_failure]
