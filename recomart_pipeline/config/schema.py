"""The pydantic models of ``pipeline_config.yaml``: one source of truth for keys and defaults.

Field descriptions double as the README's config reference and the editor JSON Schema.
Every model forbids unknown keys so a typo is an error with a "did you mean", not a silent
default.
"""

import re
from datetime import date
from pathlib import PurePath
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from recomart_pipeline.config.cron import validate_cron
from recomart_pipeline.contract.catalog import (
    ALLOWED_PACKAGES_ENV,
    PROJECT_TASK_PACKAGES,
    is_standard_library,
)
from recomart_pipeline.contract.errors import ErrorClass
from recomart_pipeline.contract.paths import OptionalWritePath, WritePath
from recomart_pipeline.contract.spark_master import is_local_master

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
Engine = Literal["pandas", "local", "spark"]


def _task_package(package: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", package):
        raise ValueError(f"'{package}' is not a package name like my_tasks or a.b")
    if is_standard_library(package):
        raise ValueError(f"'{package}' is part of Python's standard library and cannot hold tasks")
    return package


# A package whose functions a config may name in ``callable:`` (checked entry by entry).
TaskPackage = Annotated[str, AfterValidator(_task_package)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class PipelineSection(Section):
    name: str = Field(
        "recomart_pipeline",
        pattern=NAME_PATTERN,
        description="Pipeline name; the Dagster asset group of every task.",
    )
    enabled: bool = Field(True, description="When false every task is skipped.")
    description: str = Field("", description="Free text shown in the Dagster UI.")
    environment: str = Field(
        "default", description="Environment name (dev, test, prod…) shown in the UI and run tags."
    )
    version: str | None = Field(None, description="Optional version label of this pipeline.")
    allowed_task_packages: list[TaskPackage] = Field(
        default_factory=list,
        description="Packages whose functions tasks may name in `callable:` (e.g. [my_tasks]), "
        f"besides the project's own ({', '.join(PROJECT_TASK_PACKAGES)}) and those in "
        f"${ALLOWED_PACKAGES_ENV}; any other module is refused without being imported.",
    )


class SparkSettings(Section):
    """How the ``spark`` engine gets its session (pyspark is imported only when it runs)."""

    master: str = Field(
        "local[*]",
        min_length=1,
        description="Spark master URL: local[*] (this machine, all cores), local[2], "
        "spark://host:7077, yarn, k8s://https://host:443.",
    )
    app_name: str = Field(
        "recomart_pipeline", min_length=1, description="The Spark application name."
    )
    # str before SecretStr: a plain value stays plain (only secret-named keys become secrets)
    conf: dict[str, str | int | float | bool | SecretStr] = Field(
        default_factory=dict,
        description="Spark settings, e.g. {spark.executor.memory: 4g}; the session time zone "
        "is always UTC. An already active session (notebook, test) is reused as it is. "
        "Values of keys naming a secret, password, token or key (fs.s3a.secret.key) are "
        "secrets: masked in plans and manifests.",
    )

    scratch: str | None = Field(
        None,
        description="Where the engine's scratch files go (the ordered results Spark writes "
        "for the driver, the inputs and training cells Spark reads): a folder the driver and "
        "every executor can read and write, as an absolute path (a shared mount, the same path "
        "on every machine) or a URI (hdfs://, s3a://, gs://, abfs[s]://, file://). Each run "
        "gets its own sub-folder, removed afterwards. null = a private local temporary folder, "
        "which only local[*] masters can use: a cluster master (spark://, yarn, k8s://) needs "
        "this set. Credentials go in conf, never in the URI.",
    )

    @field_validator("scratch")
    @classmethod
    def _scratch_location(cls, scratch: str | None) -> str | None:
        return None if scratch is None else check_scratch(scratch)

    @model_validator(mode="after")
    def _cluster_needs_shared_scratch(self) -> Self:
        master = self.effective_master()
        if self.scratch is None and not is_local_master(master):
            raise ValueError(
                f"master '{master}' runs executors on other machines, which cannot read or "
                "write the driver's private temporary folder: set execution.spark.scratch to "
                "a folder the driver and every executor can read and write (a shared mount's "
                "absolute path, or an hdfs://, s3a://, gs:// or abfss:// URI); "
                "docs/spark_cluster.md"
            )
        return self

    def effective_master(self) -> str:
        """The master Spark will use: ``conf``'s ``spark.master`` wins over ``master`` (the
        session builder applies ``conf`` last)."""
        return str(self.conf.get("spark.master", self.master))

    @field_validator("conf")
    @classmethod
    def _secret_values(
        cls, conf: dict[str, str | int | float | bool | SecretStr]
    ) -> dict[str, str | int | float | bool | SecretStr]:
        return {
            key: SecretStr(str(value))
            if _SECRET_KEY.search(key) and not isinstance(value, SecretStr)
            else value
            for key, value in conf.items()
        }

    def session_options(self) -> dict[str, Any]:
        """Plain values (secrets revealed) for the engine that starts the session."""
        return {
            "master": self.master,
            "app_name": self.app_name,
            "scratch": self.scratch,
            "conf": {
                key: value.get_secret_value() if isinstance(value, SecretStr) else value
                for key, value in self.conf.items()
            },
        }


# URI schemes a scratch folder may use: what Spark's Hadoop layer and fsspec (the driver's
# side) both read. Anything else (http://, a typo) is refused when the config loads.
SCRATCH_SCHEMES = ("file", "hdfs", "s3a", "gs", "abfs", "abfss")


def check_scratch(value: str) -> str:
    """``execution.spark.scratch`` as given, or a ValueError saying what to write instead.

    The value becomes a path that Spark, Hadoop and the driver all open and that each run
    removes a sub-folder of, so it must mean one folder everywhere: absolute (executors do
    not share the driver's working directory), no ``.``/``..`` segments, no credentials,
    query or fragment in a URI (they would show in Spark's logs and UI, which mask nothing;
    credentials go in ``conf``, where plans and manifests mask them)."""
    if not value.strip() or value != value.strip() or any(ord(c) < 32 for c in value):
        raise ValueError(
            f"scratch {value!r} has blank or control characters: write a folder such as "
            "/mnt/shared/recomart-scratch or s3a://bucket/scratch"
        )
    if "://" in value:
        scheme, _, rest = value.partition("://")
        if scheme.lower() not in SCRATCH_SCHEMES:
            raise ValueError(
                f"scratch '{value}': the scheme '{scheme}' is not one of "
                f"{', '.join(SCRATCH_SCHEMES)}"
            )
        authority, _, path = rest.partition("/")
        # user:password@ (abfss' container@account has no password: it stays)
        if ":" in authority.rpartition("@")[0]:
            raise ValueError(
                f"scratch '{scheme}://…@…' carries credentials in the URI, where Spark's logs "
                "and UI would show them: remove them and set them in execution.spark.conf "
                "(e.g. spark.hadoop.fs.s3a.secret.key: ${AWS_SECRET_ACCESS_KEY}) or the "
                "environment"
            )
        if "?" in value or "#" in value:
            raise ValueError(
                f"scratch '{value}' has a query or fragment: write the folder only; "
                "settings go in execution.spark.conf"
            )
        if scheme.lower() == "file" and authority:
            raise ValueError(f"scratch '{value}': write a local file URI as file:///path")
        if scheme.lower() not in ("file", "hdfs") and not authority:  # hdfs:///: the default
            raise ValueError(f"scratch '{value}' names no bucket or host after '{scheme}://'")
        segments = path.split("/")
    else:
        if not PurePath(value).is_absolute():
            raise ValueError(
                f"scratch '{value}' is a relative path, which each executor would resolve "
                "against its own working directory: write an absolute path of a shared mount "
                "(/mnt/shared/recomart-scratch) or a URI"
            )
        segments = value.split("/")
    if any(segment in (".", "..") for segment in segments):
        raise ValueError(
            f"scratch '{value}' has '.' or '..' segments: write the folder's plain path"
        )
    return value


_SECRET_KEY = re.compile(r"secret|password|token|credential|[._]key$", re.IGNORECASE)


class ExecutionSection(Section):
    mode: Literal["sequential", "parallel"] = Field(
        "sequential",
        description="sequential: one task at a time in one process (fastest for small data); "
        "parallel: independent tasks run at once in separate processes.",
    )
    timeout_seconds: float | None = Field(
        None, gt=0, description="Upper bound on the whole run in seconds; null = unbounded."
    )
    max_retries: int = Field(
        0, ge=0, description="Default retry_count of tasks that do not set their own."
    )
    executor: Literal["auto", "in_process", "multiprocess", "dask", "celery", "k8s"] = Field(
        "auto",
        description="auto: in_process for sequential mode, multiprocess for parallel mode; "
        "dask/celery/k8s: Dagster's distributed executors (install their extra; settings in "
        "executor_config).",
    )
    executor_config: dict[str, Any] = Field(
        default_factory=dict,
        description="Passed to the chosen distributed executor, e.g. "
        "{cluster: {local: {n_workers: 2}}} for dask or {broker: redis://…} for celery.",
    )
    engine: Engine = Field(
        "local",
        description="What runs the data tasks' row rules: local (DuckDB: embedded, "
        "multi-threaded, out of core), pandas (the reference) or spark (Spark SQL, settings in "
        "execution.spark; needs the spark extra and Java 17+); identical outputs. Ingestion "
        "(after the read), validation, preparation and features so far (training and "
        "inference: pandas or spark); "
        "docs/engines.md.",
    )
    spark: SparkSettings = Field(
        default_factory=SparkSettings,
        description="The Spark session of engine: spark (master, app_name, conf, scratch).",
    )
    continue_on_error: bool = Field(
        False,
        description="false: stop at the first failed task; true: independent branches finish, "
        "dependents of the failed task are skipped.",
    )
    only_stale: bool = Field(
        False,
        description="true: `run` executes only the tasks whose config, implementation, input "
        "data or source files changed since their last successful materialization (and their "
        "dependents), as `run --only-stale` does; the others are reported SKIPPED (up to "
        "date). `run --all-tasks` runs everything anyway.",
    )


class ObjectStoreSettings(Section):
    endpoint_url: str | None = Field(
        None,
        description="S3-compatible endpoint (MinIO, Ceph, a test server); null = AWS or "
        "$AWS_ENDPOINT_URL.",
    )
    region: str | None = Field(None, description="Region; null = the SDK's default chain.")
    access_key_id: SecretStr | None = Field(
        None,
        description="Access key (a secret): write ${AWS_ACCESS_KEY_ID}; null = the SDK's "
        "default chain (environment, profile, instance role).",
    )
    secret_access_key: SecretStr | None = Field(
        None, description="Secret key (a secret): write ${AWS_SECRET_ACCESS_KEY}."
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra keyword arguments for the fsspec filesystem (any protocol).",
    )

    def fsspec_options(self, url: str) -> dict[str, Any]:
        """Keyword arguments for ``fsspec.url_to_fs``: the named S3 settings plus ``options``."""
        options = dict(self.options)
        if url.startswith(("s3://", "s3a://")):
            if self.endpoint_url:
                options.setdefault("endpoint_url", self.endpoint_url)
            if self.region:
                client_kwargs = dict(options.get("client_kwargs") or {})
                client_kwargs.setdefault("region_name", self.region)
                options["client_kwargs"] = client_kwargs
            if self.access_key_id is not None:
                options.setdefault("key", self.access_key_id.get_secret_value())
            if self.secret_access_key is not None:
                options.setdefault("secret", self.secret_access_key.get_secret_value())
        return options


class StorageSection(Section):
    base_dir: WritePath = Field(
        "storage",
        description="Root of artifacts, checkpoints, run manifests and the model registry: a "
        "folder, or an object store URL such as s3://bucket/prefix (any fsspec protocol).",
    )
    cache_dir: WritePath = Field(
        ".storage_cache",
        description="Local working copy of an object-store base_dir (tasks read and write "
        "local files; outputs are uploaded, inputs downloaded and hash-checked).",
    )
    object_store: ObjectStoreSettings = Field(
        default_factory=ObjectStoreSettings,
        description="Connection settings when base_dir is an object store URL.",
    )
    dagster_home: WritePath = Field(
        ".dagster_home", description="Dagster instance directory used by the project CLI."
    )
    allowed_roots: list[str] = Field(
        default_factory=list,
        description="Absolute folders outside the project folder the pipeline may write to "
        "(a shared volume for storage, a central log folder). Every path it writes (storage, "
        "logs, metrics, reports, registry, Dagster home, trace file) must resolve inside the "
        "project folder or one of these.",
    )

    @field_validator("allowed_roots")
    @classmethod
    def _absolute_roots(cls, roots: list[str]) -> list[str]:
        for root in roots:
            path = PurePath(root)
            if not path.is_absolute():
                raise ValueError(f"'{root}' must be an absolute folder such as /mnt/shared")
            if path == PurePath(path.anchor):
                raise ValueError(f"'{root}' is the whole file system; name a folder in it")
        return roots

    @property
    def is_object_store(self) -> bool:
        return "://" in self.base_dir


class TaskSettings(Section):
    enabled: bool = Field(True, description="Disabled tasks and their dependents are skipped.")
    depends_on: list[str] = Field(
        default_factory=list, description="Tasks that must succeed before this one starts."
    )
    timeout_seconds: float | None = Field(
        None, gt=0, description="Per-attempt time limit in seconds; null = no limit."
    )
    retry_count: int | None = Field(
        None, ge=0, description="Retries after a failed attempt; null = execution.max_retries."
    )
    retry_delay: float = Field(
        2.0,
        ge=0,
        description="Seconds before the first retry; retry n waits "
        "min(max_backoff, retry_delay × backoff_base^(n-1)).",
    )
    builtin: str | None = Field(
        None, description="Built-in task implementing this entry; defaults to the task's name."
    )
    callable: str | None = Field(
        None, description="User task function as 'package.module:function' instead of a built-in."
    )
    description: str = Field("", description="Shown on the asset in the Dagster UI.")
    engine: Engine | None = Field(
        None,
        description="This task's engine instead of execution.engine (docs/engines.md); "
        "refused for a task whose rules do not run on it (ingestion, validation, "
        "preparation and features run on local and spark; training and inference on spark).",
    )
    owner: str | None = Field(None, description="Owner team or person (e.g. data_eng, ml_eng).")
    # A mapping in the file; once the config is loaded, the task's validated config model
    # (PipelineConfig.task_config), so there is one copy of it.
    config: Any = Field(
        default_factory=dict,
        description="The task's own settings, validated by its schema.",
        json_schema_extra={"type": "object"},
    )

    @field_validator("config", mode="before")
    @classmethod
    def _mapping(cls, value: Any) -> Any:
        if not isinstance(value, dict | BaseModel):
            raise ValueError(f"must be a mapping of the task's settings (got {value!r})")
        return value

    @model_validator(mode="after")
    def _one_implementation(self) -> Self:
        if self.builtin and self.callable:
            raise ValueError("set either 'builtin' or 'callable', not both")
        return self


class LoggingSection(Section):
    level: LogLevel = Field("INFO", description="Minimum level written to the logs.")
    format: Literal["json", "text"] = Field(
        "json", description="json: one JSON object per line; text: human-readable lines."
    )
    dir: WritePath = Field("logs", description="Directory of the per-task logs ({task}.log).")
    file: OptionalWritePath = Field(
        "logs/pipeline.log", description="Combined log of all tasks; null disables it."
    )

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class DataArrivalSettings(Section):
    enabled: bool = Field(
        False, description="Start a run when the watched sources get new or changed data."
    )
    interval_seconds: int = Field(60, ge=5, description="How often the sensor looks.")


class PartitionSettings(Section):
    enabled: bool = Field(
        False,
        description="Daily partitions: each run processes one day (ingestion keeps that "
        "day's events); backfills run many days.",
    )
    start_date: str = Field("2026-01-01", description="First partition (YYYY-MM-DD).")

    @field_validator("start_date")
    @classmethod
    def _iso_date(cls, value: str) -> str:
        try:
            date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"start_date must be a date like 2026-01-31 (got {value!r})") from None
        return value


class SchedulingSection(Section):
    enabled: bool = Field(False, description="Run the job on the cron schedule (needs the daemon).")
    cron: str = Field("0 2 * * *", description="Cron expression (5 fields or @daily etc.).")
    timezone: str = Field("UTC", description="IANA time zone of the cron expression.")
    run_on_startup: bool = Field(
        False, description="Launch one run when the daemon first loads a new config version."
    )
    pause_after_failures: int = Field(
        3,
        ge=0,
        description="Consecutive failed scheduled runs after which the schedule pauses itself "
        "(and notifies) until a run succeeds or `schedule-resume`; 0 = never pause.",
    )
    data_arrival: DataArrivalSettings = Field(default_factory=DataArrivalSettings)
    partitions: PartitionSettings = Field(default_factory=PartitionSettings)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        validate_cron(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone '{value}' (use an IANA name such as Europe/Berlin)"
            ) from None
        return value


class EmailSettings(Section):
    enabled: bool = Field(False, description="Send email notifications.")
    smtp_server: str = Field("localhost", description="SMTP host.")
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP port.")
    security: Literal["plain", "starttls", "ssl"] = Field(
        "starttls", description="Connection security."
    )
    ca_file: str | None = Field(
        None,
        description="CA certificate(s) to trust for STARTTLS/SSL (an internal CA); null = system CAs.",
    )
    username: str | None = Field(None, description="SMTP login user; null = no login.")
    password: SecretStr | None = Field(
        None, description="SMTP password; write ${SMTP_PASSWORD} to take it from the environment."
    )
    sender: str = Field("pipeline@example.com", description="From address.")
    recipients: list[str] = Field(default_factory=list, description="To addresses.")
    notify_success: bool = Field(True, description="Send a message when a run succeeds.")
    notify_failure: bool = Field(True, description="Send a message when a run fails.")

    @model_validator(mode="after")
    def _recipients(self) -> Self:
        if self.enabled and not self.recipients:
            raise ValueError("email is enabled but 'recipients' is empty")
        return self


class SlackSettings(Section):
    enabled: bool = Field(False, description="Post to a Slack incoming webhook.")
    webhook_url: SecretStr | None = Field(
        None, description="Incoming-webhook URL (a secret): write ${SLACK_WEBHOOK_URL}."
    )
    channel: str | None = Field(None, description="Channel name shown in the message.")
    notify_success: bool = Field(False, description="Post when a run succeeds.")
    notify_failure: bool = Field(True, description="Post when a run fails.")

    @model_validator(mode="after")
    def _webhook(self) -> Self:
        if self.enabled and (self.webhook_url is None or not self.webhook_url.get_secret_value()):
            raise ValueError(
                "slack is enabled but 'webhook_url' is empty (set it, e.g. ${SLACK_WEBHOOK_URL})"
            )
        return self


class NotificationsSection(Section):
    enabled: bool = Field(False, description="Master switch for all notifications.")
    ui_base_url: str = Field(
        "http://localhost:3000", description="Dagster web UI address used in run links."
    )
    email: EmailSettings = Field(default_factory=EmailSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    owners: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Owner (tasks.<name>.owner) → extra email recipients, so a failure also "
        "reaches the team that owns the failed task.",
    )


class PerformanceSettings(Section):
    slow_task_threshold_seconds: float = Field(
        300, gt=0, description="A task slower than this logs a warning and is flagged."
    )
    notify_slow_tasks: bool = Field(
        False, description="Also send a slow-task alert through the failure notification channels."
    )


MIN_FRESHNESS_HOURS = 1 / 60  # Dagster's shortest freshness window is one minute


class FreshnessSettings(Section):
    max_age_hours: float | Literal["auto"] | None = Field(
        "auto",
        description="How old the pipeline's last assets (those no task depends on) may get "
        "before Dagster shows them failing their freshness policy. auto: the longest gap "
        "between two ticks of scheduling.cron plus grace_hours, when the schedule is enabled "
        "(no policy otherwise); a number of hours: that, scheduled or not; null: no policy.",
    )
    grace_hours: float = Field(
        1.0,
        ge=0,
        description="With max_age_hours: auto, how late a scheduled run may finish before its "
        "assets fail freshness (they show a warning from the missed tick on).",
    )

    @field_validator("max_age_hours")
    @classmethod
    def _at_least_a_minute(cls, value: float | str | None) -> float | str | None:
        if isinstance(value, float | int) and value < MIN_FRESHNESS_HOURS:
            raise ValueError(
                f"max_age_hours must be at least one minute ({MIN_FRESHNESS_HOURS:.4f}), "
                "or auto, or null for no freshness policy"
            )
        return value


class MonitoringSection(Section):
    performance: PerformanceSettings = Field(default_factory=PerformanceSettings)
    freshness: FreshnessSettings = Field(
        default_factory=FreshnessSettings,
        description="The freshness policy Dagster checks the pipeline's last assets against.",
    )
    metrics_dir: WritePath = Field(
        "metrics", description="Per-task metrics CSVs ({task}.csv), one row per attempt."
    )


def _default_retry_on() -> list[ErrorClass]:
    return ["timeout", "connection_error", "memory_error", "crashed", "unexpected_error"]


def _default_no_retry_on() -> list[ErrorClass]:
    return ["file_not_found", "schema_error", "validation_error"]


class RetryPolicySection(Section):
    use_exponential_backoff: bool = Field(
        True, description="Wait retry_delay × backoff_base^(n-1) before retry n."
    )
    backoff_base: float = Field(2.0, ge=1, description="Growth factor of the wait.")
    max_backoff: float = Field(300.0, gt=0, description="Upper bound on one wait, in seconds.")
    jitter: float = Field(
        0.1, ge=0, le=1, description="Random ± fraction added to each wait (0 = none)."
    )
    retry_on_errors: list[ErrorClass] = Field(
        default_factory=_default_retry_on,
        description="Error classes that are retried.",
    )
    no_retry_on: list[ErrorClass] = Field(
        default_factory=_default_no_retry_on,
        description="Error classes that fail at once.",
    )

    @model_validator(mode="after")
    def _disjoint(self) -> Self:
        both = sorted(set(self.retry_on_errors) & set(self.no_retry_on))
        if both:
            raise ValueError(f"error classes in both retry_on_errors and no_retry_on: {both}")
        return self

    def wait_seconds(self, retry_delay: float, retry_number: int) -> float:
        """Nominal wait before retry ``retry_number`` (1-based), before jitter."""
        if not self.use_exponential_backoff:
            return min(self.max_backoff, retry_delay)
        return min(self.max_backoff, retry_delay * self.backoff_base ** (retry_number - 1))

    def is_retryable(self, error_class: str) -> bool:
        if error_class in self.no_retry_on:
            return False
        return error_class in self.retry_on_errors


class ResourcesSection(Section):
    max_memory_gb: float | None = Field(None, gt=0, description="Memory limit per task process.")
    max_cpu_cores: int | None = Field(
        None, ge=1, description="Caps concurrent tasks in parallel mode and numeric thread pools."
    )
    max_disk_gb: float | None = Field(None, gt=0, description="Free disk space a run needs.")


def _default_retention_days() -> dict[str, float]:
    return {
        "ingestion": 7,
        "validation": 7,
        "preparation": 14,
        "features": 14,
        "training": 30,
        "evaluation": 30,
        "inference": 30,
        "report": 90,
    }


class RetentionSection(Section):
    enabled: bool = Field(True, description="Run the housekeeping job on its schedule.")
    cron: str = Field("0 3 * * *", description="When the housekeeping job runs.")
    default_days: float = Field(
        30, gt=0, description="Days a task's per-run outputs are kept when by_task does not say."
    )
    by_task: dict[str, float] = Field(
        default_factory=_default_retention_days,
        description="Days to keep each task's per-run outputs (raw 7, clean 14, "
        "scores/models 30, reports 90). The latest outputs, the champion model and anything "
        "a kept run still uses are never deleted.",
    )

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        validate_cron(value)
        return value

    def days_for(self, task: str) -> float:
        return self.by_task.get(task, self.default_days)


class OpenTelemetrySettings(Section):
    enabled: bool = Field(False, description="Export one span per task attempt.")
    exporter: Literal["otlp", "file"] = Field(
        "otlp", description="otlp: OTLP over HTTP to `endpoint`; file: JSON lines to `file`."
    )
    endpoint: str = Field(
        "http://127.0.0.1:4318/v1/traces", description="OTLP/HTTP traces endpoint."
    )
    file: WritePath = Field("logs/traces.jsonl", description="Span file for the `file` exporter.")
    service_name: str | None = Field(
        None, description="service.name of the spans; defaults to the pipeline name."
    )


class MlflowSettings(Section):
    enabled: bool = Field(
        False, description="Log training, evaluation, report and model to MLflow."
    )
    tracking_uri: str = Field(
        "http://127.0.0.1:5000", description="MLflow tracking server (or a file:/sqlite: URI)."
    )
    experiment_name: str = Field("recomart", description="MLflow experiment of the runs.")
    registered_model_name: str | None = Field(
        None,
        description="Registered model that follows our champion; defaults to the pipeline name.",
    )
    fail_on_error: bool = Field(
        False,
        description="false: a tracking server that is down is a warning; true: the task fails.",
    )


class TrackingSection(Section):
    opentelemetry: OpenTelemetrySettings = Field(default_factory=OpenTelemetrySettings)
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)


class PipelineSettings(Section):
    """The whole ``pipeline_config.yaml``."""

    pipeline: PipelineSection = Field(default_factory=PipelineSection)
    execution: ExecutionSection = Field(default_factory=ExecutionSection)
    storage: StorageSection = Field(default_factory=StorageSection)
    tasks: dict[str, TaskSettings] = Field(description="Tasks by name (the asset keys).")
    logging: LoggingSection = Field(default_factory=LoggingSection)
    scheduling: SchedulingSection = Field(default_factory=SchedulingSection)
    notifications: NotificationsSection = Field(default_factory=NotificationsSection)
    monitoring: MonitoringSection = Field(default_factory=MonitoringSection)
    retry_policy: RetryPolicySection = Field(default_factory=RetryPolicySection)
    resources: ResourcesSection = Field(default_factory=ResourcesSection)
    retention: RetentionSection = Field(default_factory=RetentionSection)
    tracking: TrackingSection = Field(default_factory=TrackingSection)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections_mean_defaults(cls, data: Any) -> Any:
        """``logging:`` with nothing under it is YAML null; treat it as "all defaults"."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None or k == "tasks"}
        return data

    @field_validator("tasks")
    @classmethod
    def _task_names(cls, tasks: dict[str, TaskSettings]) -> dict[str, TaskSettings]:
        if not tasks:
            raise ValueError("at least one task is needed")
        bad = [name for name in tasks if not re.match(NAME_PATTERN, str(name))]
        if bad:
            raise ValueError(
                f"task names must be letters, digits and underscores, not starting with a digit: {bad}"
            )
        return tasks

    def retry_count(self, task: str) -> int:
        value = self.tasks[task].retry_count
        return self.execution.max_retries if value is None else value
