"""The pipeline as a Dagster Component, for teams that already have a ``dg`` project.

``dg scaffold defs recomart_pipeline.orchestration.component.RecomartPipelineComponent
shop_recs`` (or a hand-written ``defs.yaml``) declares one pipeline; its ``attributes:`` are
exactly a ``pipeline_config.yaml`` (sections, tasks, ``extends:``, ``${VAR}``), so nothing new is
learnt and the same file runs from the project CLI (``python -m recomart_pipeline run
path/to/defs.yaml``: the config loader reads a component file as its attributes).

The attributes' JSON Schema is the config's own (``pipeline_config.schema.json``), so
``dg check yaml`` and editors check a component file with file:line errors before anything
loads. Dagster's own validation of the attributes is left permissive on purpose: the
pipeline's loader runs next and is the stricter one (``${VAR}`` values, overlays, cross-task
rules), with its messages naming the component file's lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import (
    Component,
    ComponentLoadContext,
    Definitions,
    Scaffolder,
    ScaffoldRequest,
    scaffold_component,
    scaffold_with,
)
from pydantic import BaseModel, ConfigDict

from recomart_pipeline.config import PipelineConfig
from recomart_pipeline.config.json_schema import config_json_schema
from recomart_pipeline.config.overlay import SHIPPED_CONFIG_DIR
from recomart_pipeline.orchestration.factory import build_definitions

COMPONENT_FILES = ("defs.yaml", "defs.yml", "component.yaml")
SHIPPED_CONFIG = SHIPPED_CONFIG_DIR / "pipeline_config.yaml"
STARTER_HEADER = """\
# The attributes are a pipeline_config.yaml (the RecoMart configuration guide), starting as
# the shipped default pipeline. Relative paths (data sources, storage) are relative to this
# folder. Check: dg check yaml; python -m recomart_pipeline validate <this file>
"""


class RecomartPipelineAttributes(BaseModel):
    """A ``pipeline_config.yaml`` (checked by the pipeline's loader when the component loads)."""

    model_config = ConfigDict(extra="allow")

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return config_json_schema()


class RecomartPipelineScaffolder(Scaffolder[BaseModel]):
    """``dg scaffold defs``: the shipped pipeline_config.yaml, comments and all, as the new
    component's attributes (a checkout or editable install has it), to edit in place; the
    data paths are relative to the component's folder."""

    def scaffold(self, request: ScaffoldRequest[BaseModel]) -> None:
        if request.scaffold_format != "yaml" or request.append or not SHIPPED_CONFIG.is_file():
            scaffold_component(request, {"pipeline": {"name": request.target_path.name}})
            return
        lines = SHIPPED_CONFIG.read_text(encoding="utf-8").splitlines(keepends=True)
        while lines and (lines[0].startswith("#") or not lines[0].strip()):
            lines.pop(0)  # the shipped file's header speaks of its own folder
        body = "".join(f"  {line}" if line.strip() else line for line in lines)
        (request.target_path / "defs.yaml").write_text(
            f"type: {request.type_name}\n\n{STARTER_HEADER}attributes:\n{body}",
            encoding="utf-8",
        )


@scaffold_with(RecomartPipelineScaffolder)
class RecomartPipelineComponent(Component):
    """A RecoMart recommender pipeline: its tasks as assets, with checks, the job, schedules
    and sensors. The attributes are a pipeline_config.yaml."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path

    @classmethod
    def get_model_cls(cls) -> type[BaseModel]:
        return RecomartPipelineAttributes

    @classmethod
    def load(
        cls, attributes: BaseModel | None, context: ComponentLoadContext
    ) -> RecomartPipelineComponent:
        folder = context.path if context.path.is_dir() else context.path.parent
        found = [folder / name for name in COMPONENT_FILES if (folder / name).is_file()]
        if not found:
            raise FileNotFoundError(f"no {' or '.join(COMPONENT_FILES)} in {folder}")
        return cls(found[0])

    def build_defs(self, context: ComponentLoadContext) -> Definitions:
        return build_definitions(PipelineConfig(self.config_path))
