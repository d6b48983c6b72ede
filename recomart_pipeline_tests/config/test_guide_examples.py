"""Every YAML example of the user guide loads and has the effect its guide section describes.

The examples are kept verbatim under fixtures/guide/ (the guide is
/work/shared/spec/recomart-config-guide.md). Dagster resolves Definitions lazily, so each
example is loaded for real: ``Definitions.validate_loadable``, the repository, the job, its
execution plan, the schedules and the sensors. Then every effect in the table ``CASES`` is
checked on what Dagster and our runtime actually use (the asset's RetryPolicy and metadata,
the plan's steps, the schedule, the sensors' default status, the executor, the task limits).

Examples that show one section are loaded the way a user would use them: as an overlay over
the project's default config (``project``). Several of them set a value the default config
already has, so each is also loaded over ``contrast``: the default config with every
setting those examples write changed to something else. The example's effect must show
over both bases.
"""

from __future__ import annotations

import importlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from dagster import (
    AssetKey,
    Backoff,
    DagsterEventType,
    DagsterInstance,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    Definitions,
    Failure,
    JobDefinition,
    RepositoryDefinition,
    RetryRequested,
)
from dagster._core.definitions.dependency import NodeHandle
from dagster._core.execution.api import create_execution_plan

from recomart_pipeline import ConfigError, PipelineConfig, TaskDependencyGraph
from recomart_pipeline.contract.errors import TaskTimeoutError
from recomart_pipeline.notify import RunNotice
from recomart_pipeline.orchestration import build_definitions
from recomart_pipeline.orchestration.assets import FAIL_FAST_MESSAGE, run_deadline
from recomart_pipeline.orchestration.factory import JOB_NAME
from recomart_pipeline.orchestration.retries import failure_to_dagster
from recomart_pipeline.orchestration.source_assets import OBSERVE_STEP
from recomart_pipeline.runtime.retry import decide_retry, wait_before_retry
from recomart_pipeline.runtime.runner import TaskFailure, check_disk, limits_for
from recomart_pipeline_tests.conftest import FIXTURES, REPO_ROOT, SAMPLE
from recomart_pipeline_tests.helpers import DEFAULT_TASKS

GUIDE = FIXTURES / "guide"
PROJECT = REPO_ROOT / "pipeline_config.yaml"
SCHEDULE = f"{JOB_NAME}_schedule"
ALL_TASKS = DEFAULT_TASKS
CHAIN = ["ingestion", "validation", "preparation", "features", "training"]
GIB = 1024**3

# The project's defaults with everything the section examples set changed to another value.
CONTRAST = """
execution: {mode: parallel, timeout_seconds: 60, continue_on_error: true}
scheduling:
  enabled: false
  cron: "*/5 * * * *"
  timezone: Europe/Berlin
  run_on_startup: true
notifications:
  enabled: false
  email:
    enabled: false
    smtp_server: mail.internal
    smtp_port: 2525
    sender: other@example.com
    recipients: [other@example.com]
    notify_success: false
    notify_failure: false
  slack:
    enabled: false
    webhook_url: https://hooks.example/contrast
    channel: "#elsewhere"
    notify_success: true
    notify_failure: false
monitoring: {performance: {slow_task_threshold_seconds: 1}}
retry_policy:
  use_exponential_backoff: false
  backoff_base: 3
  max_backoff: 1
  jitter: 0
  retry_on_errors: [crashed]
  no_retry_on: [unexpected_error]
logging: {level: ERROR}
resources: {max_memory_gb: 1, max_cpu_cores: 1, max_disk_gb: 1}
tasks:
  training: {timeout_seconds: 60}
"""


def _alternative(text: str) -> str:
    """The example with its commented ``# or:`` alternative chosen instead of the first value."""
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip() == "# or:")
    chosen = [line.replace("# ", "", 1) for line in lines[at + 1 :] if line.strip()]
    return "\n".join([*lines[: at - 1], *chosen]) + "\n"


def _base(tmp_path: Path, base: str) -> PipelineConfig | None:
    if base == "alone":
        return None
    return PipelineConfig(tmp_path / "contrast.yaml" if base == "contrast" else PROJECT)


def load(tmp_path: Path, example: str, base: str) -> PipelineConfig:
    """``example`` (``name`` or ``name:or``) alone, or as an overlay over ``base``."""
    name, _, variant = example.partition(":")
    text = (GUIDE / f"{name}.yaml").read_text()
    if variant:
        text = _alternative(text)
    if base == "alone" and not variant:
        return PipelineConfig(GUIDE / f"{name}.yaml")
    parent = PROJECT
    if base == "contrast":
        contrast = tmp_path / "contrast.yaml"
        contrast.write_text(f"extends: {parent}\n{CONTRAST}")
        parent = contrast
    path = tmp_path / f"{name}{'_or' if variant else ''}.yaml"
    path.write_text(f"extends: {parent}\n{text}" if base != "alone" else text)
    return PipelineConfig(path)


@dataclass
class Loaded:
    config: PipelineConfig
    repo: RepositoryDefinition
    job: JobDefinition
    steps: set[str]
    monkeypatch: pytest.MonkeyPatch
    base_config: PipelineConfig | None  # what the example was merged over


def load_for_real(config: PipelineConfig) -> tuple[RepositoryDefinition, JobDefinition, set[str]]:
    """What ``dagster dev`` and the daemon load: fails if any definition is broken."""
    defs = build_definitions(config)
    Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    job = repo.get_job(JOB_NAME)
    plan = create_execution_plan(job)
    steps = {step.key for step in plan.get_steps_to_execute_in_topo_order()}
    # the run first observes the data files its tasks read (orchestration.source_assets)
    reads_files = any(key.path[0] == "sources" for key in repo.asset_graph.get_all_asset_keys())
    assert (OBSERVE_STEP in steps) == reads_files
    steps.discard(OBSERVE_STEP)
    assert {s.name for s in repo.schedule_defs} == {SCHEDULE, "housekeeping_schedule"}
    assert repo.get_schedule_def(SCHEDULE).job_name == JOB_NAME
    assert {s.name for s in repo.sensor_defs} == {
        "notify_on_success",
        "notify_on_failure",
        "data_arrival_sensor",
        "run_on_startup_sensor",
        "run_watchdog_sensor",
    }
    for sensor in repo.sensor_defs:  # resolving a sensor's targets fails on a missing job
        assert all(target.job_name in repo.job_names for target in sensor.targets)
    return repo, job, steps


# ---------------------------------------------------------------------------------------
# One checker per kind of effect; each asserts on what Dagster / the runtime really uses.


def _assets(loaded: Loaded, expected: list[str]) -> None:
    graph = loaded.repo.asset_graph
    keys = {key.to_user_string() for key in graph.materializable_asset_keys}
    assert keys == set(expected)
    assert loaded.steps == set(expected)  # the plan runs exactly these tasks
    assert TaskDependencyGraph(loaded.config).get_execution_order() == expected


def _deps(loaded: Loaded, expected: dict[str, list[str]]) -> None:
    for asset, parents in expected.items():
        graph = loaded.repo.asset_graph
        node = graph.get(AssetKey(asset))
        tasks = {k.to_user_string() for k in node.parent_keys if graph.get(k).is_materializable}
        assert tasks == set(parents), asset  # the observed sources aside


def _skipped(loaded: Loaded, expected: dict[str, str]) -> None:
    assert TaskDependencyGraph(loaded.config).get_skipped_tasks() == expected


def _retries(loaded: Loaded, expected: dict[str, tuple[int, float] | None]) -> None:
    for task, want in expected.items():
        policy = loaded.job.get_retry_policy_for_handle(NodeHandle(task, None))
        metadata = loaded.repo.asset_graph.get(AssetKey(task)).metadata
        if want is None:
            assert policy is None and metadata["retry_count"] == 0, task
            continue
        assert policy is not None, task
        assert (policy.max_retries, policy.delay) == want, task
        exponential = loaded.config.settings.retry_policy.use_exponential_backoff
        assert policy.backoff == (Backoff.EXPONENTIAL if exponential else None)
        assert metadata["retry_count"] == want[0]


def _timeouts(loaded: Loaded, expected: dict[str, float]) -> None:
    for task, seconds in expected.items():
        metadata = loaded.repo.asset_graph.get(AssetKey(task)).metadata
        assert metadata["timeout_seconds"] == seconds, task
        assert limits_for(loaded.config, task).timeout_seconds == seconds, task


def _schedule(loaded: Loaded, expected: tuple[str, str, DefaultScheduleStatus]) -> None:
    schedule = loaded.repo.get_schedule_def(SCHEDULE)
    got = (schedule.cron_schedule, schedule.execution_timezone, schedule.default_status)
    assert got == expected


def _run_on_startup(loaded: Loaded, expected: DefaultSensorStatus) -> None:
    assert loaded.repo.get_sensor_def("run_on_startup_sensor").default_status == expected


def _notify(loaded: Loaded, expected: DefaultSensorStatus) -> None:
    for name in ("notify_on_success", "notify_on_failure"):
        sensor = loaded.repo.get_sensor_def(name)
        assert sensor.default_status == expected, name


def _channels(loaded: Loaded, expected: dict[str, dict[str, Any]]) -> None:
    """Which channels a finished run is sent to, and with which settings (nothing is sent)."""
    dispatch_module = importlib.import_module("recomart_pipeline.notify.dispatch")
    sent: dict[str, Any] = {}

    def send_email(settings: Any, _notice: RunNotice) -> None:
        sent["email"] = (settings.smtp_server, settings.smtp_port, settings.sender)
        sent["email"] += (settings.recipients,)

    def send_slack(settings: Any, _notice: RunNotice) -> None:
        sent["slack"] = settings.channel

    loaded.monkeypatch.setattr(dispatch_module, "send_email", send_email)
    loaded.monkeypatch.setattr(dispatch_module, "send_slack", send_slack)
    for status, want in expected.items():
        sent.clear()
        notice = RunNotice("p", "e", "run-1", status, "http://ui/runs/run-1")
        flags = dispatch_module.dispatch(loaded.config, notice)
        assert sent == want, status
        assert flags == dict.fromkeys(want, True), status


def _executor(loaded: Loaded, expected: tuple[str, int | None]) -> None:
    name, max_concurrent = expected
    executor = loaded.job.executor_def
    assert executor.name == name
    if max_concurrent is not None:
        config = executor.apply_config_mapping({}).value["config"]
        assert config["max_concurrent"] == max_concurrent


def _limits(loaded: Loaded, expected: tuple[float, int]) -> None:
    memory_gb, threads = expected
    for task in loaded.steps:
        limits = limits_for(loaded.config, task)
        assert (limits.memory_bytes, limits.threads) == (int(memory_gb * GIB), threads), task


def _disk(loaded: Loaded, expected_gb: float) -> None:
    """A task refuses to start with less free disk than ``max_disk_gb``, starts with more."""
    from recomart_pipeline.runtime import runner

    def free(gb: float) -> None:
        usage = SimpleNamespace(total=10**15, used=0, free=int(gb * GIB))
        loaded.monkeypatch.setattr(runner.shutil, "disk_usage", lambda _path: usage)

    root = loaded.config.storage_root
    free(expected_gb * 0.99)
    with pytest.raises(Exception, match=re.escape("resources.max_disk_gb")):
        check_disk(loaded.config, root)
    free(expected_gb * 1.01)
    check_disk(loaded.config, root)


def _run_timeout(loaded: Loaded, expected: float) -> None:
    """The run's deadline is its recorded start plus ``execution.timeout_seconds``; a task
    gets only what is left of it, and none once it is over."""

    def deadline(started: float) -> float | None:
        context = SimpleNamespace(
            run=SimpleNamespace(run_id="r"),
            instance=SimpleNamespace(
                get_run_record_by_id=lambda _id: SimpleNamespace(start_time=started)
            ),
        )
        return run_deadline(loaded.config, context)

    assert deadline(1_000.0) == 1_000.0 + expected
    almost_over = deadline(time.time() - expected + 5)
    assert 0 < limits_for(loaded.config, "ingestion", run_deadline=almost_over).timeout_seconds <= 5
    with pytest.raises(TaskTimeoutError, match=re.escape("execution.timeout_seconds")):
        limits_for(loaded.config, "ingestion", run_deadline=deadline(time.time() - expected - 1))


def _logging(loaded: Loaded, expected: str) -> None:
    assert loaded.config.settings.logging.level == expected


def _slow_threshold(loaded: Loaded, expected: float) -> None:
    assert loaded.config.settings.monitoring.performance.slow_task_threshold_seconds == expected


def _continue_on_error(loaded: Loaded, expected: bool) -> None:
    # the run-time effect is test_continue_on_error_example_decides_what_runs_after_a_failure
    assert loaded.config.settings.execution.continue_on_error is expected


def _backoff(loaded: Loaded, expected: dict[str, Any]) -> None:
    """The waits before each retry of ``task`` and which error classes are retried at all."""
    config, task = loaded.config, expected["task"]
    policy = config.settings.retry_policy
    delay = config.settings.tasks[task].retry_delay
    assert [policy.wait_seconds(delay, n) for n in range(1, 5)] == expected["waits"]
    assert policy.max_backoff == expected["cap"]
    assert policy.wait_seconds(delay, 20) == expected["cap"]
    assert wait_before_retry(config, task, 20) <= expected["cap"]
    retries = config.settings.retry_count(task)

    def decided(error_class: str, attempt: int) -> Exception:
        retry = decide_retry(config, task, error_class, attempt)
        return failure_to_dagster(config, TaskFailure(task, error_class, "x", attempt, 0.1, retry))

    for attempt in range(1, retries + 1):
        raised = decided("timeout", attempt)
        assert isinstance(raised, RetryRequested), attempt
        nominal = expected["waits"][attempt - 1]
        assert raised.seconds_to_wait == pytest.approx(nominal, rel=policy.jitter + 1e-9)
    last = decided("timeout", retries + 1)
    assert isinstance(last, Failure) and f"failed after {retries + 1} attempts" in str(last)
    for error_class in expected["retried"]:
        raised = decided(error_class, 1)
        assert isinstance(raised, RetryRequested), error_class
    for error_class in expected["not_retried"]:
        raised = decided(error_class, 1)
        assert isinstance(raised, Failure) and "is not retried" in str(raised), error_class


def _training(loaded: Loaded, expected: dict[str, Any]) -> None:
    training = loaded.config.task_config("training")
    got = {key: getattr(training, key) for key in expected if key != "svd"}
    got["svd"] = {key: getattr(training.svd, key) for key in expected["svd"]}
    assert got == expected
    # the launchpad shows the example's values as the ones the YAML sets
    shape = loaded.repo.assets_defs_by_key[AssetKey("training")].op.config_field.config_type
    svd = shape.fields["svd"].config_type.fields
    for key, value in expected["svd"].items():
        assert f"In the YAML: {value}." in svd[key].description, key


def _same_as_base(loaded: Loaded, expected: bool) -> None:
    assert loaded.base_config is not None
    assert (loaded.config.to_dict() == loaded.base_config.to_dict()) is expected
    assert (loaded.config.config_hash == loaded.base_config.config_hash) is expected


def _pipeline_name(loaded: Loaded, expected: str) -> None:
    assert loaded.job.tags["pipeline"] == expected
    groups = {loaded.repo.asset_graph.get(AssetKey(s)).group_name for s in loaded.steps}
    assert groups == {expected}


def _settings(loaded: Loaded, expected: dict[str, Any]) -> None:
    """Values read straight from the loaded config (as the pipeline's code reads them)."""
    data = loaded.config.to_dict()
    for dotted, want in expected.items():
        value: Any = data
        for part in dotted.split("."):
            value = value[part]
        assert value == want, dotted


CHECKS: dict[str, Callable[[Loaded, Any], None]] = {
    "assets": _assets,
    "deps": _deps,
    "skipped": _skipped,
    "retries": _retries,
    "timeouts": _timeouts,
    "schedule": _schedule,
    "run_on_startup": _run_on_startup,
    "notify": _notify,
    "channels": _channels,
    "executor": _executor,
    "limits": _limits,
    "disk_gb": _disk,
    "run_timeout": _run_timeout,
    "logging": _logging,
    "slow_threshold": _slow_threshold,
    "continue_on_error": _continue_on_error,
    "backoff": _backoff,
    "training": _training,
    "same_as_base": _same_as_base,
    "pipeline_name": _pipeline_name,
    "settings": _settings,
}

RUNNING, STOPPED = DefaultScheduleStatus.RUNNING, DefaultScheduleStatus.STOPPED
SENSOR_RUNNING, SENSOR_STOPPED = DefaultSensorStatus.RUNNING, DefaultSensorStatus.STOPPED
BOTH = ("project", "contrast")
DOWNSTREAM_OF_VALIDATION = {
    "validation": "disabled in config",
    "preparation": "depends on skipped task 'validation'",
    "features": "depends on skipped task 'preparation'",
    "training": "depends on skipped task 'features'",
    "evaluation": "depends on skipped task 'training'",
    "inference": "depends on skipped task 'evaluation'",
    "report": "depends on skipped task 'validation'",
    "deploy": "depends on skipped task 'evaluation'",
    "monitoring": "depends on skipped task 'preparation'",
}
TRAINING = {
    "model_type": "collaborative_filtering_svd",
    "svd": {"n_factors": 50, "n_epochs": 20, "learning_rate": 0.005, "regularization": 0.02},
    "train_test_split": 0.8,
    "save_model": True,
    "model_format": "pickle",
    "model_name": "collaborative_filtering",
}
RETRY_POLICY = {
    "task": "ingestion",  # retry_delay 2 in the project's config, as the guide's "2, 4, 8, 16"
    "waits": [2, 4, 8, 16],
    "cap": 300,
    "retried": ["timeout", "connection_error", "memory_error"],
    "not_retried": ["file_not_found", "schema_error", "validation_error"],
}

# (example, bases it is loaded over, the effects the guide section describes)
CASES: list[tuple[str, tuple[str, ...], dict[str, Any]]] = [
    ("00_sections_overview", BOTH, {"same_as_base": True, "assets": ALL_TASKS}),
    (
        "01_dependencies",
        ("alone",),
        {
            "assets": CHAIN,
            "deps": {t: CHAIN[i - 1 : i] for i, t in enumerate(CHAIN)},
            "skipped": {},
        },
    ),
    (  # in a full config the disabled task's dependents are skipped with it
        "02_enable_disable",
        ("project",),
        {"assets": ["ingestion"], "skipped": DOWNSTREAM_OF_VALIDATION},
    ),
    ("03_timeouts", BOTH, {"timeouts": {"ingestion": 300, "training": 900}}),
    (  # the project's training keeps its retry_delay; the example only sets retry_count
        "04_retries",
        BOTH,
        {"retries": {"ingestion": (2, 30), "training": (1, 2), "validation": None}},
    ),
    ("05_training_config", BOTH, {"training": TRAINING}),
    (
        "06_scheduling",
        BOTH,
        {"schedule": ("0 2 * * *", "UTC", RUNNING), "run_on_startup": SENSOR_STOPPED},
    ),
    ("07_monitoring", BOTH, {"slow_threshold": 300}),
    ("08_retry_policy", BOTH, {"backoff": RETRY_POLICY}),
    ("09_continue_on_error", BOTH, {"continue_on_error": False}),
    ("09_continue_on_error:or", BOTH, {"continue_on_error": True}),
    (
        "10_dev_overlay",
        BOTH,
        {"logging": "DEBUG", "timeouts": {"training": 300, "ingestion": 300}},
    ),
    (
        "11_prod_overlay",
        BOTH,
        {"logging": "WARNING", "timeouts": {"training": 3600, "ingestion": 300}},
    ),
    (
        "12_email",
        BOTH,
        {
            "notify": SENSOR_RUNNING,
            "channels": {
                "SUCCESS": {
                    "email": ("smtp.gmail.com", 587, "pipeline@example.com", ["admin@example.com"])
                },
                "FAILURE": {
                    "email": ("smtp.gmail.com", 587, "pipeline@example.com", ["admin@example.com"])
                },
            },
        },
    ),
    (
        "13_slack",
        BOTH,
        {
            "notify": SENSOR_RUNNING,
            "channels": {"SUCCESS": {}, "FAILURE": {"slack": "#pipeline-alerts"}},
        },
    ),
    ("14_execution_mode", BOTH, {"executor": ("in_process", None)}),
    ("14_execution_mode:or", ("project",), {"executor": ("parallel_executor", 2)}),
    ("14_execution_mode:or", ("contrast",), {"executor": ("parallel_executor", 1)}),
    ("15_resources", BOTH, {"limits": (4, 2), "disk_gb": 10}),
    ("16_execution_timeout", BOTH, {"run_timeout": 3600}),
    (
        "17_custom_pipeline",
        ("alone",),
        {
            "pipeline_name": "quick_data_check",
            "assets": ["ingestion", "validation"],
            "deps": {"validation": ["ingestion"]},
            "skipped": {t: "disabled in config" for t in ("preparation", "features", "training")},
            "timeouts": {"ingestion": 300, "validation": 600},
            "schedule": ("0 1 * * *", "UTC", RUNNING),
        },
    ),
    (  # pasted into a config: the example's cron and tasks, that config's timezone
        "17_custom_pipeline",
        ("contrast",),
        {
            "pipeline_name": "quick_data_check",
            "assets": ["ingestion", "validation"],
            "schedule": ("0 1 * * *", "Europe/Berlin", RUNNING),
        },
    ),
    (
        "18_production",
        ("alone",),
        {
            "pipeline_name": "production_pipeline",
            "assets": CHAIN,
            "deps": {t: CHAIN[i - 1 : i] for i, t in enumerate(CHAIN)},
            "executor": ("in_process", None),
            "run_timeout": 7200,
            "continue_on_error": False,
            "timeouts": {
                "ingestion": 600,
                "validation": 1200,
                "preparation": 1200,
                "features": 1200,
                "training": 1800,
            },
            "retries": {
                "ingestion": (3, 2),
                "validation": (2, 2),
                "preparation": (2, 2),
                "features": (1, 2),
                "training": (1, 2),
            },
            "logging": "WARNING",
            "schedule": ("0 2 * * *", "UTC", RUNNING),
            "notify": SENSOR_RUNNING,
            "channels": {"SUCCESS": {}, "FAILURE": {"slack": None}},  # no channel: the webhook's
            "limits": (8, 4),
            "settings": {
                "execution.max_retries": 3,
                "logging.file": "logs/production.log",
                "notifications.slack.webhook_url": "**********",  # masked when shown
            },
        },
    ),
]


def _params() -> list[Any]:
    return [
        pytest.param(example, base, effects, id=f"{example}@{base}")
        for example, bases, effects in CASES
        for base in bases
    ]


def test_every_guide_example_has_a_case():
    examples = {p.stem for p in GUIDE.glob("*.yaml")}
    assert examples == {example.partition(":")[0] for example, _, _ in CASES}


@pytest.mark.parametrize(("example", "base", "effects"), _params())
def test_guide_example_has_the_effect_its_section_describes(
    tmp_path, monkeypatch, example, base, effects
):
    config = load(tmp_path, example, base)
    repo, job, steps = load_for_real(config)
    loaded = Loaded(config, repo, job, steps, monkeypatch, _base(tmp_path, base))
    for effect, expected in effects.items():
        CHECKS[effect](loaded, expected)


STANDALONE = ["01_dependencies", "17_custom_pipeline", "18_production"]
# Section snippets with a training task and nothing it reads from: used as written they are
# overlays (as the guide means them); on their own the config refuses them, naming the fix.
FRAGMENTS = ["02_enable_disable", "03_timeouts", "04_retries", "05_training_config"]
OVERLAYS = sorted(p.stem for p in GUIDE.glob("*.yaml") if p.stem not in STANDALONE)


@pytest.mark.parametrize("name", STANDALONE)
def test_standalone_examples_load_and_build_definitions(name):
    config = PipelineConfig(GUIDE / f"{name}.yaml")
    _, _, steps = load_for_real(config)
    assert steps == set(TaskDependencyGraph(config).get_execution_order())


@pytest.mark.parametrize("name", OVERLAYS)
def test_section_examples_load_as_overlays(tmp_path, name):
    config = load(tmp_path, name, "project")
    _, _, steps = load_for_real(config)
    assert steps == set(TaskDependencyGraph(config).get_execution_order())


def test_dependencies_run_in_the_documented_order():
    graph = TaskDependencyGraph(PipelineConfig(GUIDE / "01_dependencies.yaml"))
    assert graph.get_execution_order() == CHAIN
    assert graph.get_parallel_groups() == [[t] for t in CHAIN]


CONTINUE_TASKS = f"""
tasks:
  a_broken: {{callable: "{SAMPLE}:bad_schema"}}
  b_independent: {{callable: "{SAMPLE}:make_numbers"}}
  c_downstream: {{callable: "{SAMPLE}:total", depends_on: [a_broken]}}
"""


@pytest.mark.parametrize(
    ("example", "independent_runs"),
    [("09_continue_on_error", False), ("09_continue_on_error:or", True)],
)
def test_continue_on_error_example_decides_what_runs_after_a_failure(
    tmp_path, example, independent_runs
):
    """``false``: stop at the first failed task; ``true``: skip it and continue (the guide)."""
    text = (GUIDE / "09_continue_on_error.yaml").read_text()
    if example.endswith(":or"):
        text = _alternative(text)
    path = tmp_path / "pipeline_config.yaml"
    path.write_text(text + CONTINUE_TASKS)
    config = PipelineConfig(path)
    assert config.settings.execution.continue_on_error is independent_runs
    job = build_definitions(config).resolve_job_def(JOB_NAME)
    instance = DagsterInstance.ephemeral()
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    events = result.all_events
    done = {e.step_key for e in events if e.event_type == DagsterEventType.STEP_SUCCESS}
    failed = {e.step_key: e for e in events if e.event_type == DagsterEventType.STEP_FAILURE}
    order = [e.step_key for e in events if e.event_type == DagsterEventType.STEP_START]
    assert "a_broken" in failed and "c_downstream" not in order  # its dependency failed
    assert order.index("a_broken") < order.index("b_independent")  # it starts after the failure
    if independent_runs:
        assert done == {"b_independent"}
    else:
        assert done == set()
        message = failed["b_independent"].event_specific_data.error.message
        assert FAIL_FAST_MESSAGE in message


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict) or not data:
        return {prefix: data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else key))
    return flat


@pytest.mark.parametrize(
    "overlay",
    [
        GUIDE / "10_dev_overlay.yaml",
        GUIDE / "11_prod_overlay.yaml",
        REPO_ROOT / "pipeline_config.dev.yaml",
        REPO_ROOT / "pipeline_config.test.yaml",
        REPO_ROOT / "pipeline_config.prod.yaml",
    ],
    ids=lambda p: p.name,
)
def test_overlays_change_exactly_what_they_set(tmp_path, monkeypatch, overlay):
    """The guide: an environment file is merged over the base; what it sets wins, the rest
    stays. Every value the overlay writes is in the merged config, and nothing else differs."""
    import yaml

    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.example/T/B/secret")
    monkeypatch.delenv("RECOMART_ENV", raising=False)
    if overlay.parent == GUIDE:
        path = tmp_path / overlay.name
        path.write_text(f"extends: {REPO_ROOT / 'pipeline_config.yaml'}\n{overlay.read_text()}")
    else:
        path = overlay
    written = _flatten(
        {k: v for k, v in yaml.safe_load(overlay.read_text()).items() if k != "extends"}
    )
    base = _flatten(PipelineConfig(REPO_ROOT / "pipeline_config.yaml").to_dict())
    config = PipelineConfig(path)
    merged = _flatten(config.to_dict())
    for key, value in written.items():
        if isinstance(value, str) and "${" in value:
            assert merged[key] != value, key  # interpolated (and masked if secret)
        else:
            assert merged[key] == value, key
    changed = {k for k in merged if merged.get(k) != base.get(k)}
    assert changed <= set(written), changed - set(written)
    repo, _, steps = load_for_real(config)
    assert steps == set(TaskDependencyGraph(config).get_execution_order()) == set(ALL_TASKS)
    for key, value in written.items():
        if key.startswith("tasks.") and key.endswith(".timeout_seconds"):
            task = key.split(".")[1]
            assert repo.asset_graph.get(AssetKey(task)).metadata["timeout_seconds"] == value


@pytest.mark.parametrize("name", FRAGMENTS)
def test_training_fragments_alone_are_refused_with_the_missing_edge(name):
    with pytest.raises(ConfigError) as caught:
        PipelineConfig(GUIDE / f"{name}.yaml")
    messages = [issue.message for issue in caught.value.issues]
    assert (
        "task 'training' reads 'train_ratings', which none of its dependencies (none) makes"
        in messages
    )


def test_disabled_tasks_and_their_dependents_are_skipped(tmp_path):
    graph = TaskDependencyGraph(load(tmp_path, "02_enable_disable", "project"))
    assert graph.get_skipped_tasks() == DOWNSTREAM_OF_VALIDATION
    custom = TaskDependencyGraph(PipelineConfig(GUIDE / "17_custom_pipeline.yaml"))
    assert custom.get_execution_order() == ["ingestion", "validation"]
    assert set(custom.get_skipped_tasks()) == {"preparation", "features", "training"}


def test_timeouts_and_retries_are_taken_as_written(tmp_path):
    timeouts = TaskDependencyGraph(load(tmp_path, "03_timeouts", "project"))
    assert timeouts.get_task_info("training")["timeout"] == 900
    retries = TaskDependencyGraph(load(tmp_path, "04_retries", "project"))
    info = retries.get_task_info("ingestion")
    assert (info["retry_count"], info["retry_delay"]) == (2, 30)


def test_training_example_config_is_validated_by_the_training_schema(tmp_path):
    config = load(tmp_path, "05_training_config", "project")
    training = config.task_config("training")
    assert training.model_type == "collaborative_filtering_svd"
    assert training.svd.n_factors == 50


def test_retry_policy_example_waits_two_four_eight_sixteen(tmp_path):
    policy = load(tmp_path, "08_retry_policy", "project").settings.retry_policy
    assert [policy.wait_seconds(2, n) for n in range(1, 5)] == [2, 4, 8, 16]
    assert policy.is_retryable("timeout") and not policy.is_retryable("schema_error")


def test_scheduling_example_makes_a_running_schedule(tmp_path):
    repo, _, _ = load_for_real(load(tmp_path, "06_scheduling", "project"))
    schedule = repo.get_schedule_def(SCHEDULE)
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.default_status == DefaultScheduleStatus.RUNNING


def test_production_example_masks_its_webhook():
    config = PipelineConfig(GUIDE / "18_production.yaml")
    assert config.settings.execution.max_retries == 3
    assert config.to_dict()["notifications"]["slack"]["webhook_url"] == "**********"


def test_dev_and_prod_overlays_change_only_what_they_set(tmp_path):
    dev = load(tmp_path, "10_dev_overlay", "project")
    prod = load(tmp_path, "11_prod_overlay", "project")
    assert dev.settings.logging.level == "DEBUG" and prod.settings.logging.level == "WARNING"
    assert dev.settings.tasks["training"].timeout_seconds == 300
    assert prod.settings.tasks["training"].timeout_seconds == 3600
    assert dev.settings.tasks["training"].depends_on == ["features"]


@pytest.mark.parametrize("environment", ["dev", "test", "prod"])
def test_shipped_environment_overlays_load(environment, monkeypatch):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.example/T/B/secret")
    config = PipelineConfig(REPO_ROOT / f"pipeline_config.{environment}.yaml")
    assert config.settings.pipeline.environment == environment
    assert list(config.settings.tasks) == list(PipelineConfig(PROJECT).settings.tasks)
    _, job, steps = load_for_real(config)
    assert steps == set(ALL_TASKS)
    assert job.tags["environment"] == environment
