"""Dagster entry point: ``dagster dev`` / ``dagster job execute -m recomart_pipeline.definitions``.

The config comes from ``$PIPELINE_CONFIG`` or ``./pipeline_config.yaml``; a config error is
raised with every problem listed, which Dagster shows as the code location's load error.
"""

from recomart_pipeline.config import PipelineConfig
from recomart_pipeline.orchestration import build_definitions

defs = build_definitions(PipelineConfig())
