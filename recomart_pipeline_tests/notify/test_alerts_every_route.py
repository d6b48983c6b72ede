"""Run alerts for every way of starting a run, counted at real SMTP and webhook servers.

Exactly one message per failed run (a task retried three times included), none for a
succeeded run unless ``notify_success``, whether the run came from the project CLI,
``dagster job execute``, Python, or the UI with the daemon's sensors watching too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus
from dagster._core.scheduler.instigation import InstigatorType, TickStatus

from recomart_pipeline.orchestration.notifications import alert_sender
from recomart_pipeline_tests.conftest import SAMPLE
from recomart_pipeline_tests.helpers import (
    JOB_EXECUTE,
    dagster_dev,
    job_params,
    launch_and_wait,
    project_env,
    run_in_project,
    wait_until,
)

pytestmark = pytest.mark.slow
CLI_RUN = [sys.executable, "-m", "recomart_pipeline", "run"]
FAILED_BODY = "Task 'fetch' failed after 3 attempts (connection_error)"


def _project(write_config, smtp_port: int, webhook: str, *, fail: bool, success: bool) -> Path:
    fetch = "unreachable" if fail else "make_numbers"
    return write_config(
        f"""
        pipeline: {{name: shop, environment: staging}}
        retry_policy: {{max_backoff: 0.01, jitter: 0}}
        tasks:
          fetch: {{callable: "{SAMPLE}:{fetch}", retry_count: 2, retry_delay: 0.01}}
        notifications:
          enabled: true
          email:
            enabled: true
            smtp_server: 127.0.0.1
            smtp_port: {smtp_port}
            security: plain
            recipients: [ops@example.com]
            notify_success: {str(success).lower()}
          slack:
            enabled: true
            webhook_url: "{webhook}/hook"
            notify_success: {str(success).lower()}
        """
    )


def _runs(project: Path) -> list:
    with DagsterInstance.from_config(str(project / "dagster_home")) as instance:
        return list(instance.get_runs())


def _assert_one_failure_alert(inbox, posts, run_id: str) -> None:
    assert [m["Subject"] for m in inbox.messages] == [
        f"[shop/staging] run {run_id[:8]} FAILED at task 'fetch'"
    ]
    assert FAILED_BODY in inbox.messages[0].get_payload(decode=True).decode()
    assert len(posts) == 1 and run_id[:8] in posts[0]["json"]["text"]


@pytest.mark.parametrize("command", [CLI_RUN, JOB_EXECUTE], ids=["cli-run", "dagster-job-execute"])
def test_a_failed_run_sends_one_message_per_channel(
    write_config, smtp_server, webhook_server, command
):
    port, inbox = smtp_server
    base, posts = webhook_server
    project = _project(write_config, port, base, fail=True, success=False).parent
    run_in_project(command, project)
    [run] = _runs(project)
    assert run.status == DagsterRunStatus.FAILURE
    _assert_one_failure_alert(inbox, posts, run.run_id)


@pytest.mark.parametrize("notify_success", [False, True])
def test_a_succeeded_cli_run_sends_only_when_notify_success(
    write_config, smtp_server, webhook_server, notify_success
):
    port, inbox = smtp_server
    base, posts = webhook_server
    project = _project(write_config, port, base, fail=False, success=notify_success).parent
    done = run_in_project(CLI_RUN, project)
    assert done.returncode == 0, done.stdout + done.stderr
    [run] = _runs(project)
    expected = [f"[shop/staging] run {run.run_id[:8]} succeeded"] if notify_success else []
    assert [m["Subject"] for m in inbox.messages] == expected
    assert len(posts) == len(expected)


def test_a_failed_programmatic_run_has_sent_its_message_when_the_call_returns(
    write_config, smtp_server, webhook_server, monkeypatch
):
    from recomart_pipeline.orchestration.execution import execute_pipeline_programmatically

    port, inbox = smtp_server
    base, posts = webhook_server
    path = _project(write_config, port, base, fail=True, success=False)
    monkeypatch.setenv("DAGSTER_HOME", str(path.parent / "dagster_home"))
    assert execute_pipeline_programmatically(path) is False
    [run] = _runs(path.parent)
    _assert_one_failure_alert(inbox, posts, run.run_id)


def _sensor_ticked_after(instance: DagsterInstance, name: str, timestamp: float) -> bool:
    """A finished evaluation of sensor ``name`` that began after ``timestamp``: it has seen
    every run that ended before then."""
    states = instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
    state = next((s for s in states if s.name == name), None)
    if state is None:
        return False
    ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, after=timestamp)
    return any(t.status != TickStatus.STARTED and t.timestamp > timestamp for t in ticks)


def test_with_the_daemon_watching_ui_and_cli_runs_still_send_one_message_each(
    write_config, smtp_server, webhook_server
):
    """``dagster dev`` runs the daemon, whose failure sensor sees the UI's run as well as the
    run's own process: the claim in the instance lets only one of them send."""
    port, inbox = smtp_server
    base, posts = webhook_server
    project = _project(write_config, port, base, fail=True, success=False).parent
    env = project_env(project)
    with (
        dagster_dev(project, env) as web_port,
        DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance,
    ):
        # the sensor's first evaluation only sets its cursor: runs must end after it
        wait_until(
            lambda: _sensor_ticked_after(instance, "notify_on_failure", 0.0),
            180,
            "the daemon's failure sensor to start watching",
        )
        ui_run = launch_and_wait(web_port, job_params(web_port))
        assert run_in_project(CLI_RUN, project).returncode != 0
        runs = instance.get_run_records()
        assert len(runs) == 2
        assert {r.dagster_run.status for r in runs} == {DagsterRunStatus.FAILURE}
        ended = max(r.end_time or 0.0 for r in runs)
        wait_until(
            lambda: _sensor_ticked_after(instance, "notify_on_failure", ended),
            180,
            "the daemon's failure sensor to evaluate after both runs ended",
        )
        senders = {r.dagster_run.run_id: alert_sender(instance, r.dagster_run.run_id) for r in runs}
        # a run worker sends from a background thread that may outlive its run's end; stopping
        # `dagster dev` before it is done would cut the message off
        wait_until(lambda: len(inbox.messages) >= 2 and len(posts) >= 2, 120, "both runs' alerts")
    cli_run = next(run_id for run_id in senders if run_id != ui_run)
    assert sorted(m["Subject"] for m in inbox.messages) == sorted(
        f"[shop/staging] run {run_id[:8]} FAILED at task 'fetch'" for run_id in senders
    )
    assert len(posts) == 2
    assert all(FAILED_BODY in m.get_payload(decode=True).decode() for m in inbox.messages)
    assert senders[cli_run] and senders[ui_run]  # each claimed once, by whoever came first
