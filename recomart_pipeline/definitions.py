"""Dagster entry point: ``dagster dev`` / ``dagster job execute -m recomart_pipeline.definitions``.

The config comes from ``$PIPELINE_CONFIG`` or ``./pipeline_config.yaml``; a config error is
raised with every problem listed, which Dagster shows as the code location's load error.

``automated_pipeline_job`` is the guide's name for the pipeline's job, importable as the guide
imports it (``from recomart_pipeline.definitions import automated_pipeline_job``). It is the
reconstructable form of the job in ``defs``, so ``dagster.execute_job(automated_pipeline_job,
instance=...)`` runs it as the guide's "Option 4" shows; its ``get_definition()`` is the
``JobDefinition``. Dagster loads this module through ``defs`` alone.
"""

from recomart_pipeline.config import PipelineConfig
from recomart_pipeline.orchestration import build_definitions
from recomart_pipeline.orchestration.execution import automated_pipeline_job_for

_config = PipelineConfig()
defs = build_definitions(_config)
automated_pipeline_job = automated_pipeline_job_for(_config)
