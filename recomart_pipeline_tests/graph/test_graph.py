"""TaskDependencyGraph: order, parallel groups, skip propagation, cycles."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from recomart_pipeline import PipelineConfig, TaskDependencyGraph
from recomart_pipeline.config.schema import PipelineSettings
from recomart_pipeline.graph import find_cycle
from recomart_pipeline_tests.conftest import SAMPLE


def _graph(tasks: dict[str, dict]) -> TaskDependencyGraph:
    """A graph over plain settings (no task resolution needed for graph logic)."""
    settings_ = PipelineSettings.model_validate({"tasks": tasks})
    return TaskDependencyGraph(SimpleNamespace(settings=settings_))


def test_guide_helpers_on_a_diamond(sample_project):
    graph = TaskDependencyGraph(PipelineConfig(sample_project))
    assert graph.get_execution_order() == ["numbers", "square", "square_again", "total"]
    assert graph.get_parallel_groups() == [["numbers"], ["square", "square_again"], ["total"]]
    info = graph.get_task_info("square")
    assert info["name"] == "square"
    assert info["dependencies"] == ["numbers"]
    assert info["dependents"] == ["total"]
    assert info["enabled"] is True and info["skip_reason"] is None
    assert info["retry_count"] == 0 and info["timeout"] is None


def test_disabled_task_and_its_dependents_are_skipped():
    graph = _graph(
        {
            "ingestion": {},
            "validation": {"enabled": False, "depends_on": ["ingestion"]},
            "preparation": {"depends_on": ["validation"]},
            "report": {"depends_on": ["ingestion"]},
        }
    )
    assert graph.get_execution_order() == ["ingestion", "report"]
    assert graph.get_skipped_tasks() == {
        "validation": "disabled in config",
        "preparation": "depends on skipped task 'validation'",
    }
    assert graph.get_task_info("preparation")["will_run"] is False


def test_disabled_pipeline_skips_everything():
    settings_ = PipelineSettings.model_validate(
        {"pipeline": {"enabled": False}, "tasks": {"a": {}}}
    )
    graph = TaskDependencyGraph(SimpleNamespace(settings=settings_))
    assert graph.get_execution_order() == []
    assert graph.get_skipped_tasks() == {"a": "pipeline.enabled is false"}


def test_retry_count_falls_back_to_execution_max_retries(write_config):
    path = write_config(
        f"""
        execution: {{max_retries: 3}}
        tasks:
          a: {{callable: "{SAMPLE}:make_numbers"}}
          b: {{callable: "{SAMPLE}:make_numbers", retry_count: 1}}
        """
    )
    graph = TaskDependencyGraph(PipelineConfig(path))
    assert graph.get_task_info("a")["retry_count"] == 3
    assert graph.get_task_info("b")["retry_count"] == 1


def test_find_cycle_returns_the_path():
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b"], "b": []}) is None


def test_long_chain_does_not_hit_recursion_limit():
    deps = {f"t{i}": [f"t{i - 1}"] if i else [] for i in range(5000)}
    assert find_cycle(deps) is None
    deps["t0"] = ["t4999"]
    assert len(find_cycle(deps)) == 5001


@st.composite
def random_dags(draw):
    size = draw(st.integers(min_value=1, max_value=25))
    names = [f"t{i}" for i in range(size)]
    tasks = {}
    for index, name in enumerate(names):
        deps = draw(st.lists(st.sampled_from(names[:index]), unique=True)) if index else []
        enabled = draw(st.booleans()) if draw(st.integers(0, 4)) == 0 else True
        tasks[name] = {"depends_on": deps, "enabled": enabled}
    order = draw(st.permutations(names))
    return {name: tasks[name] for name in order}


@settings(max_examples=150, deadline=None)
@given(random_dags())
def test_order_groups_and_skips_are_consistent(tasks):
    graph = _graph(tasks)
    order = graph.get_execution_order()
    position = {name: i for i, name in enumerate(order)}
    skipped = graph.get_skipped_tasks()
    assert set(order) | set(skipped) == set(tasks)
    assert not set(order) & set(skipped)
    for name in order:
        for dep in tasks[name]["depends_on"]:
            assert dep in position and position[dep] < position[name]
    for name, reason in skipped.items():
        deps_skipped = any(d in skipped for d in tasks[name]["depends_on"])
        assert (not tasks[name]["enabled"]) or deps_skipped, reason
    groups = graph.get_parallel_groups()
    assert sorted(n for g in groups for n in g) == sorted(order)
    level = {n: i for i, g in enumerate(groups) for n in g}
    for name in order:
        for dep in tasks[name]["depends_on"]:
            assert level[dep] < level[name]


@settings(max_examples=100, deadline=None)
@given(random_dags(), st.data())
def test_adding_a_back_edge_is_always_detected(tasks, data):
    names = list(tasks)
    edges = [(n, d) for n in names for d in tasks[n]["depends_on"]]
    if not edges:
        return
    child, parent = data.draw(st.sampled_from(edges))
    deps = {n: list(t["depends_on"]) for n, t in tasks.items()}
    deps[parent].append(child)
    cycle = find_cycle(deps)
    assert cycle is not None and cycle[0] == cycle[-1]
    for a, b in itertools.pairwise(cycle):
        assert b in deps[a]


def test_downstream_is_every_direct_and_indirect_dependent():
    graph = _graph(
        {
            "a": {},
            "b": {"depends_on": ["a"]},
            "c": {"depends_on": ["b"]},
            "d": {"depends_on": ["a", "x"]},
            "x": {},
            "e": {},
        }
    )
    assert graph.get_downstream("a") == {"b", "c", "d"}
    assert graph.get_downstream("x") == {"d"}
    assert graph.get_downstream("c") == set()
