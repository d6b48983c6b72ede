"""``depends_on`` checked against what the tasks declare they read and write.

Each declared input of a task must be made by exactly one of its dependencies (or by every
one of them for a fan-in input); a dependency that makes nothing the task reads is an edge
that only orders, which hides a mistake more often than it states an intent, so it is an
error too. Checked when the config is loaded, so a wrong graph never starts running;
disabled tasks are checked once they are enabled.
"""

from __future__ import annotations

from typing import Any

from recomart_pipeline.config.errors import ConfigIssue
from recomart_pipeline.config.yaml_source import SourceMap
from recomart_pipeline.contract.task import Input, TaskSpec


def _producers(name: str, deps: list[str], specs: dict[str, TaskSpec]) -> list[str]:
    return [dep for dep in deps if dep in specs and specs[dep].produces(name) is not None]


def _makers(name: str, specs: dict[str, TaskSpec]) -> list[str]:
    return [task for task, spec in specs.items() if spec.produces(name) is not None]


def _input_issue(
    task: str, declared: Input[Any], deps: list[str], specs: dict[str, TaskSpec], smap: SourceMap
) -> ConfigIssue | None:
    producers = _producers(declared.name, deps, specs)
    where = ("tasks", task, "depends_on")
    if not producers and not declared.optional:
        makers = [m for m in _makers(declared.name, specs) if m != task]
        hint = (
            f"add {' or '.join(repr(m) for m in makers)} to tasks.{task}.depends_on"
            if makers
            else "no task in this config makes it; add the task that does (if this file only "
            "changes another config, start it with 'extends: THAT_FILE.yaml')"
        )
        return smap.issue(
            f"task '{task}' reads '{declared.name}', which none of its dependencies "
            f"({', '.join(deps) or 'none'}) makes",
            where,
            hint,
        )
    if len(producers) > 1 and not declared.many:
        return smap.issue(
            f"task '{task}' reads one '{declared.name}', but {' and '.join(producers)} both "
            "make it",
            where,
            f"keep only one of {', '.join(producers)} in tasks.{task}.depends_on",
        )
    return None


def check_edges(
    raw_tasks: dict[str, Any], specs: dict[str, TaskSpec], smap: SourceMap
) -> list[ConfigIssue]:
    """Every issue between the tasks' ``depends_on`` and their declared inputs/outputs."""
    issues: list[ConfigIssue] = []
    for task, settings in raw_tasks.items():
        spec = specs.get(task)
        if spec is None or not isinstance(settings, dict) or settings.get("enabled") is False:
            continue  # a disabled task never runs; its edges are checked once it is enabled
        deps = settings.get("depends_on", [])
        if not isinstance(deps, list):
            continue  # the schema check reports it
        deps = [d for d in deps if isinstance(d, str)]
        for declared in spec.inputs:
            issue = _input_issue(task, declared, deps, specs, smap)
            if issue is not None:
                issues.append(issue)
        read = {i.name for i in spec.inputs}
        for index, dep in enumerate(deps):
            upstream = specs.get(dep)
            if upstream is None or any(upstream.produces(name) for name in read):
                continue
            makes = ", ".join(o.name for o in upstream.outputs) or "nothing it declares"
            issues.append(
                smap.issue(
                    f"task '{task}' depends on '{dep}' but reads none of its outputs ({makes})",
                    ("tasks", task, "depends_on", index),
                    f"remove '{dep}' from tasks.{task}.depends_on, or declare the input "
                    f"'{task}' reads from it (TaskSpec inputs / @pipeline_task(inputs=...))",
                )
            )
    return issues
