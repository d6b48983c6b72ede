"""The only package that imports dagster: turns a PipelineConfig into Definitions."""

from recomart_pipeline.orchestration.factory import build_definitions

__all__ = ["build_definitions"]
