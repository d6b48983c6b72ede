"""JSON Schema of ``pipeline_config.yaml`` for editors (yaml-language-server, VS Code).

Pydantic gives the sections; each built-in task's own ``config:`` schema is attached under
its task name so its keys autocomplete and typos are underlined while typing.
"""

from __future__ import annotations

import copy
from typing import Any

from recomart_pipeline.config.schema import PipelineSettings
from recomart_pipeline.contract.catalog import TaskLookupError, builtin_names, builtin_spec


def config_json_schema() -> dict[str, Any]:
    schema = PipelineSettings.model_json_schema()
    defs = schema.setdefault("$defs", {})
    task_properties: dict[str, Any] = {}
    for name in builtin_names():
        try:
            spec = builtin_spec(name)
        except TaskLookupError:
            continue
        task_schema = spec.config.model_json_schema(ref_template="#/$defs/{model}")
        for key, value in task_schema.pop("$defs", {}).items():
            defs.setdefault(key, value)
        config_def = f"{name}_task_config"
        defs[config_def] = task_schema
        task_def = copy.deepcopy(defs["TaskSettings"])
        task_def["properties"]["config"] = {"$ref": f"#/$defs/{config_def}"}
        defs[f"{name}_task"] = task_def
        task_properties[name] = {"$ref": f"#/$defs/{name}_task"}
    schema["properties"]["tasks"]["properties"] = task_properties
    schema["properties"]["extends"] = {
        "type": "string",
        "description": "Base config file this file is deep-merged over (environment overlays).",
    }
    schema["title"] = "RecoMart pipeline_config.yaml"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
