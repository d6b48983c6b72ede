"""Config layer (pure, no dagster): load YAML safely, overlay, interpolate, validate."""

from recomart_pipeline.config.errors import ConfigError, ConfigIssue
from recomart_pipeline.config.pipeline_config import (
    CONFIG_ENV_VAR,
    DEFAULT_CONFIG_FILE,
    PipelineConfig,
    environment_config_path,
    resolve_config_path,
)
from recomart_pipeline.config.schema import PipelineSettings

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_CONFIG_FILE",
    "ConfigError",
    "ConfigIssue",
    "PipelineConfig",
    "PipelineSettings",
    "environment_config_path",
    "resolve_config_path",
]
