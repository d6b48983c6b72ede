"""The pipeline's connections as Dagster resources: storage, SMTP, Slack, MLflow, the registry.

Why: Dagster users look for a location's connections in the UI's Resources panel, with the
environment variables it needs; the project's YAML stays their single source. Each resource
is built from ``pipeline_config.yaml`` (``resources_for``): its fields are the YAML's values,
and a value the YAML takes whole from the environment (``password: ${SMTP_PASSWORD}``) is
``EnvVar("SMTP_PASSWORD")``, so Dagster shows the variable's name and never its value. A
secret written into the file itself (or only part of a value, like a token inside a URL) is
left out (None) rather than shown; the run still uses it from the YAML.

The resources are thin adapters: the runtime stays free of Dagster and keeps taking the
plain objects it takes today (``PipelineConfig`` and its settings models). ``apply`` hands
back the config with the resource's values in it, ``settings`` its section model. Every
field is optional and None means "as in the YAML", so a run config that sets one field of a
resource in the launchpad (``resources: {smtp: {config: {smtp_port: 2525}}}``) changes that
field only: ``resource_overrides`` turns those values into run-config overrides of the YAML
keys, validated by exactly the rules of the file, for the tasks and the run's alerts alike.

Those rules are checked before a run exists, not when its first task starts: a resource
built from the YAML has a config type (``RuleCheckedShape``) whose ``post_process`` hook,
which Dagster runs when the code location processes a run config, applies the launchpad's
values to the YAML and validates the result, as the task settings' types do
(orchestration.run_config). A bad value (``smtp_port: 70000``, ``security: tls``, Slack
enabled without a webhook) refuses the launch with the YAML's message for that key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from dagster import ConfigurableResource, EnvVar, Shape
from dagster import Field as DagsterField
from dagster._config.errors import PostProcessingError
from dagster._core.definitions.definition_config_schema import DefinitionConfigSchema
from pydantic import BaseModel, Field, PrivateAttr, SecretStr

from recomart_pipeline.config import ConfigError, PipelineConfig
from recomart_pipeline.config.schema import EmailSettings, MlflowSettings, SlackSettings
from recomart_pipeline.tracking.mlflow_tracking import TRACKED_ARTIFACTS

if TYPE_CHECKING:
    from recomart_pipeline.deployment.registry import ModelRegistry
    from recomart_pipeline.runtime.object_store import ObjectStore

KeyPath = tuple[str, ...]
AS_IN_YAML = " Unset (null): as in pipeline_config.yaml."
# Dagster's mark of a secret field: the UI masks a value set in code (an EnvVar shows its name).
SECRET: dict[str, Any] = {"dagster__is_secret": True}
DEPLOY_REFERENCE = "builtin:deploy"
MASKED = "***"


def _setting_at(settings: Any, path: KeyPath) -> Any:
    for key in path:
        settings = settings[key] if isinstance(settings, dict) else getattr(settings, key)
    return settings


def _overrides(
    config: PipelineConfig, paths: Mapping[str, KeyPath], values: Mapping[str, Any]
) -> list[str]:
    found = []
    for name, path in paths.items():
        value = values.get(name)
        if isinstance(value, EnvVar):  # not resolved yet (outside a run): name it
            if config.env_sources.get(path) == value.env_var_name:
                continue
            value = f"${{{value.env_var_name}}}"
        if value is None:
            continue
        current = _setting_at(config.settings, path)
        if isinstance(current, SecretStr):
            current = current.get_secret_value()
        if value != current:
            found.append(f"{'.'.join(path)}={json.dumps(value)}")
    return found


class RuleCheckedShape(Shape):
    """A run config section checked by the pipeline's own rules when Dagster processes a
    run config (in the code location, before it creates the run), not only when a task
    starts: ``overrides_of`` turns the section's values into YAML overrides, and the config
    with them is validated as ``--set`` would be.

    ``masked`` names fields whose values come from the environment: Dagster quotes the
    processed value (environment variables resolved) in a refusal, so they are masked in it
    first.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> RuleCheckedShape:
        # Shape.__new__ returns a process-wide cached plain Shape per key; this type carries
        # the config it checks against, so every instance is its own.
        instance = object.__new__(cls)
        instance._initialized = False
        return instance

    def __init__(
        self,
        config: PipelineConfig,
        fields: Mapping[str, DagsterField],
        description: str,
        overrides_of: Callable[[dict[str, Any]], list[str]],
        masked: frozenset[str] = frozenset(),
    ) -> None:
        # The key (a hash of the description and fields) must differ per config: Dagster
        # caches run config types by key, and a cached one would check an older config.
        fingerprint = hashlib.sha256(f"{config.path}\0{config.config_hash}".encode()).hexdigest()
        super().__init__(dict(fields), description=f"{description} (config {fingerprint[:12]})")
        self._config = config
        self._overrides_of = overrides_of
        self._masked = masked

    def post_process(self, value: Any) -> Any:
        overrides = self._overrides_of(value)
        if not overrides:
            return value
        try:
            self._config.with_run_config([*self._config.run_config_overrides, *overrides])
        except ConfigError as exc:
            message = exc.render(context=False)
            for key in self._masked:
                secret = value.get(key)
                if isinstance(secret, str) and secret:
                    message = message.replace(secret, MASKED)
                    value[key] = MASKED  # the very dict Dagster quotes in its error
            raise PostProcessingError(message) from None
        return value


class PipelineResource(ConfigurableResource):
    """A resource whose fields mirror keys of pipeline_config.yaml (``yaml_paths``)."""

    section: ClassVar[KeyPath] = ()
    # Set by from_config: the launchpad's values are checked against this config's rules.
    _pipeline_config: PipelineConfig | None = PrivateAttr(default=None)
    _checked_schema: DefinitionConfigSchema | None = PrivateAttr(default=None)

    @classmethod
    def yaml_paths(cls, config: PipelineConfig) -> dict[str, KeyPath]:
        """Field name → the YAML key it mirrors (default: the same name in ``section``)."""
        return {name: (*cls.section, name) for name in cls.model_fields}

    @classmethod
    def from_config(cls, config: PipelineConfig) -> PipelineResource:
        """The resource holding the YAML's values: secrets as ``EnvVar`` or left out."""
        values: dict[str, Any] = {}
        for name, path in cls.yaml_paths(config).items():
            value = _setting_at(config.settings, path)
            if path in config.env_sources and isinstance(value, str | SecretStr):
                values[name] = EnvVar(config.env_sources[path])
            elif isinstance(value, SecretStr) or (
                isinstance(value, str) and config.redact(value) != value
            ):
                values[name] = None  # a secret written in the file: never shown
            else:
                values[name] = value
        resource = cls(**values)
        resource._pipeline_config = config
        return resource

    @property
    def _config_schema(self) -> DefinitionConfigSchema:
        """Dagster's schema for this resource (its fields, the YAML's values as defaults),
        its values checked by the YAML's rules when a run config is processed."""
        plain: DefinitionConfigSchema = super()._config_schema
        config = self._pipeline_config
        if config is None:
            return plain
        if self._checked_schema is None:
            field = plain.as_field()
            paths = self.yaml_paths(config)
            masked = frozenset(
                name
                for name, path in paths.items()
                if path in config.env_sources
                or type(self).model_fields[name].json_schema_extra == SECRET
            )
            shape = RuleCheckedShape(
                config,
                field.config_type.fields,  # type: ignore[attr-defined]
                field.config_type.description or "",
                lambda values: _overrides(config, paths, values),
                masked,
            )
            self._checked_schema = DefinitionConfigSchema(
                DagsterField(
                    shape,
                    default_value=field.default_value,
                    is_required=False,
                    description=field.description,
                )
            )
        return self._checked_schema

    def overrides(self, config: PipelineConfig) -> list[str]:
        """``key=value`` overrides of the YAML for the fields that differ from it."""
        return _overrides(config, self.yaml_paths(config), self.model_dump())

    def apply(self, config: PipelineConfig) -> PipelineConfig:
        """``config`` with this resource's values, checked as the YAML is."""
        changes = self.overrides(config)
        if not changes:
            return config
        return config.with_run_config([*config.run_config_overrides, *changes])

    def settings(self, config: PipelineConfig) -> Any:
        """The section of the effective config this resource describes."""
        return _setting_at(self.apply(config).settings, self.section)


class StorageResource(PipelineResource):
    """Where the pipeline keeps artifacts, checkpoints, run manifests and the registry: a
    folder or an object store (S3-compatible), from ``storage:`` in pipeline_config.yaml."""

    section: ClassVar[KeyPath] = ("storage",)
    _object_store_keys: ClassVar[tuple[str, ...]] = (
        "endpoint_url",
        "region",
        "access_key_id",
        "secret_access_key",
    )

    base_dir: str | None = Field(
        None, description="Folder or object store URL (s3://bucket/prefix)." + AS_IN_YAML
    )
    cache_dir: str | None = Field(
        None, description="Local working copy of an object-store base_dir." + AS_IN_YAML
    )
    endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (MinIO, Ceph)." + AS_IN_YAML
    )
    region: str | None = Field(None, description="Object store region." + AS_IN_YAML)
    access_key_id: str | None = Field(
        None,
        description="Access key: an environment variable (EnvVar)." + AS_IN_YAML,
        json_schema_extra=SECRET,
    )
    secret_access_key: str | None = Field(
        None,
        description="Secret key: an environment variable (EnvVar)." + AS_IN_YAML,
        json_schema_extra=SECRET,
    )

    @classmethod
    def yaml_paths(cls, config: PipelineConfig) -> dict[str, KeyPath]:
        return {
            name: ("storage", "object_store", name)
            if name in cls._object_store_keys
            else ("storage", name)
            for name in cls.model_fields
        }

    def object_store(self, config: PipelineConfig) -> ObjectStore | None:
        """The object store the runtime uses (None when storage is a local folder)."""
        from recomart_pipeline.runtime.object_store import object_store_for

        return object_store_for(self.apply(config))


class SmtpResource(PipelineResource):
    """Email alerts through an SMTP server, from ``notifications.email``."""

    section: ClassVar[KeyPath] = ("notifications", "email")

    enabled: bool | None = Field(None, description="Send email notifications." + AS_IN_YAML)
    smtp_server: str | None = Field(None, description="SMTP host." + AS_IN_YAML)
    smtp_port: int | None = Field(None, description="SMTP port." + AS_IN_YAML)
    security: str | None = Field(None, description="plain, starttls or ssl." + AS_IN_YAML)
    ca_file: str | None = Field(None, description="CA certificate(s) to trust." + AS_IN_YAML)
    username: str | None = Field(None, description="SMTP login user." + AS_IN_YAML)
    password: str | None = Field(
        None,
        description="SMTP password: an environment variable (EnvVar)." + AS_IN_YAML,
        json_schema_extra=SECRET,
    )
    sender: str | None = Field(None, description="From address." + AS_IN_YAML)
    recipients: list[str] | None = Field(None, description="To addresses." + AS_IN_YAML)
    notify_success: bool | None = Field(None, description="Mail successful runs." + AS_IN_YAML)
    notify_failure: bool | None = Field(None, description="Mail failed runs." + AS_IN_YAML)

    def settings(self, config: PipelineConfig) -> EmailSettings:
        found = super().settings(config)
        assert isinstance(found, EmailSettings)
        return found


class SlackResource(PipelineResource):
    """Alerts posted to a Slack (or compatible) incoming webhook, from ``notifications.slack``."""

    section: ClassVar[KeyPath] = ("notifications", "slack")

    enabled: bool | None = Field(None, description="Post to the webhook." + AS_IN_YAML)
    webhook_url: str | None = Field(
        None,
        description="Incoming-webhook URL: an environment variable (EnvVar)." + AS_IN_YAML,
        json_schema_extra=SECRET,
    )
    channel: str | None = Field(None, description="Channel shown in the message." + AS_IN_YAML)
    notify_success: bool | None = Field(None, description="Post successful runs." + AS_IN_YAML)
    notify_failure: bool | None = Field(None, description="Post failed runs." + AS_IN_YAML)

    def settings(self, config: PipelineConfig) -> SlackSettings:
        found = super().settings(config)
        assert isinstance(found, SlackSettings)
        return found


class MlflowResource(PipelineResource):
    """The MLflow tracking server the training, evaluation, report and deploy tasks log to,
    from ``tracking.mlflow``."""

    section: ClassVar[KeyPath] = ("tracking", "mlflow")

    enabled: bool | None = Field(None, description="Log to MLflow." + AS_IN_YAML)
    tracking_uri: str | None = Field(None, description="Tracking server or URI." + AS_IN_YAML)
    experiment_name: str | None = Field(None, description="MLflow experiment." + AS_IN_YAML)
    registered_model_name: str | None = Field(
        None, description="MLflow registered model following the champion." + AS_IN_YAML
    )
    fail_on_error: bool | None = Field(
        None, description="Fail the task when the server is down." + AS_IN_YAML
    )

    def settings(self, config: PipelineConfig) -> MlflowSettings:
        found = super().settings(config)
        assert isinstance(found, MlflowSettings)
        return found


def deploy_task(config: PipelineConfig) -> str | None:
    """The pipeline's (first) built-in deploy task, which owns the model registry."""
    return next(
        (name for name, spec in config.specs.items() if spec.reference == DEPLOY_REFERENCE),
        None,
    )


class ModelRegistryResource(PipelineResource):
    """The model registry the deploy task promotes into and the service reads: the deploy
    task's ``registry_dir``, by default ``<storage.base_dir>/registry``."""

    registry_dir: str | None = Field(
        None,
        description="Registry folder (the deploy task's registry_dir); unset: "
        "<storage.base_dir>/registry, in the object store when storage is one.",
    )

    @classmethod
    def yaml_paths(cls, config: PipelineConfig) -> dict[str, KeyPath]:
        task = deploy_task(config)
        return {"registry_dir": ("tasks", task, "config", "registry_dir")} if task else {}

    def settings(self, config: PipelineConfig) -> BaseModel:
        """The deploy task's config (registry_dir, approval, the service)."""
        task = deploy_task(config)
        if task is None:
            raise LookupError("the pipeline has no deploy task, so no model registry")
        return self.apply(config).task_config(task)

    def registry(self, config: PipelineConfig) -> ModelRegistry:
        """The registry as the deploy task and the CLI open it, brought up to date."""
        from recomart_pipeline.deployment.registry import ModelRegistry
        from recomart_pipeline.runtime.object_store import object_store_for

        effective = self.apply(config)
        configured = getattr(self.settings(config), "registry_dir", None)
        if configured:
            return ModelRegistry(effective.resolve_path(configured))
        remote = object_store_for(effective)
        registry = ModelRegistry(
            effective.storage_root / "registry", remote.child("registry") if remote else None
        )
        registry.refresh()
        return registry


RESOURCE_TYPES: dict[str, type[PipelineResource]] = {
    "storage": StorageResource,
    "smtp": SmtpResource,
    "slack": SlackResource,
    "mlflow": MlflowResource,
    "model_registry": ModelRegistryResource,
}
# Every task alerts through these when it is slow (monitoring.performance.notify_slow_tasks)
# and reads and writes storage.
EVERY_TASK_USES = ("storage", "smtp", "slack")


def resources_for(config: PipelineConfig) -> dict[str, PipelineResource]:
    """The pipeline's resources by key, holding the YAML's values (the registry only when
    the pipeline has a deploy task)."""
    return {
        key: kind.from_config(config)
        for key, kind in RESOURCE_TYPES.items()
        if kind.yaml_paths(config)
    }


def resource_keys_for(config: PipelineConfig, task: str) -> set[str]:
    """The resources ``task``'s asset requires: storage and the alert channels always,
    MLflow when it publishes what MLflow tracks, the registry for the deploy task."""
    spec = config.specs[task]
    keys = set(EVERY_TASK_USES)
    if any(output.name in TRACKED_ARTIFACTS for output in spec.outputs):
        keys.add("mlflow")
    if spec.reference == DEPLOY_REFERENCE and task == deploy_task(config):
        keys.add("model_registry")
    return keys


def _launch_value(value: Any) -> Any:
    """A launchpad value as YAML text would say it: ``{env: VAR}`` is ``${VAR}``."""
    if isinstance(value, Mapping) and set(value) == {"env"}:
        return f"${{{value['env']}}}"
    return value


def resource_overrides(config: PipelineConfig, run_config: Mapping[str, Any]) -> list[str]:
    """The YAML overrides a run config's ``resources:`` values amount to (fields it sets
    that differ from the YAML), so a run's tasks and alerts see what its resources say."""
    section = run_config.get("resources") or {}
    overrides: list[str] = []
    for key, kind in RESOURCE_TYPES.items():
        given = (section.get(key) or {}).get("config") or {}
        values = {name: _launch_value(value) for name, value in given.items()}
        overrides.extend(_overrides(config, kind.yaml_paths(config), values))
    return overrides
