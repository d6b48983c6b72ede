"""TaskDependencyGraph: execution order, parallel groups, skips and cycles (pure Python).

The same object answers the guide's helper calls and the CLI's ``plan``; the Dagster
factory uses it to decide which tasks become assets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recomart_pipeline.config.pipeline_config import PipelineConfig


def find_cycle(dependencies: Mapping[str, Sequence[str]]) -> list[str] | None:
    """Return one cycle as a path ``[a, b, …, a]`` (a depends on b …), or None.

    Iterative DFS so a 10,000-task chain cannot hit the recursion limit.
    """
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    for root in sorted(dependencies):
        if state.get(root):
            continue
        path: list[str] = [root]
        iterators = [iter(dependencies.get(root, ()))]
        state[root] = 1
        while iterators:
            child = next(iterators[-1], None)
            if child is None:
                state[path.pop()] = 2
                iterators.pop()
                continue
            if child not in dependencies:
                continue
            if state.get(child) == 1:
                return [*path[path.index(child) :], child]
            if not state.get(child):
                state[child] = 1
                path.append(child)
                iterators.append(iter(dependencies.get(child, ())))
    return None


@dataclass(frozen=True)
class TaskInfo:
    name: str
    dependencies: list[str]
    dependents: list[str]
    enabled: bool
    will_run: bool
    skip_reason: str | None
    timeout: float | None
    retry_count: int
    retry_delay: float


class TaskDependencyGraph:
    """Dependency graph of a validated PipelineConfig (its tasks, depends_on and switches)."""

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config
        settings = config.settings
        self._deps: dict[str, list[str]] = {
            name: list(task.depends_on) for name, task in settings.tasks.items()
        }
        self._dependents: dict[str, list[str]] = {name: [] for name in self._deps}
        for name, deps in self._deps.items():
            for dep in deps:
                self._dependents.setdefault(dep, []).append(name)
        cycle = find_cycle(self._deps)
        if cycle:
            raise ValueError(f"dependency cycle: {' -> '.join(cycle)}")
        self._order = self._topological_order()
        self._skip_reasons = self._compute_skips()

    def _topological_order(self) -> list[str]:
        """Kahn's algorithm; ties broken by declaration order so plans are stable."""
        position = {name: i for i, name in enumerate(self._deps)}
        indegree = {name: sum(d in self._deps for d in deps) for name, deps in self._deps.items()}
        ready = sorted((n for n, d in indegree.items() if d == 0), key=position.__getitem__)
        order: list[str] = []
        while ready:
            name = ready.pop(0)
            order.append(name)
            released = []
            for dependent in self._dependents.get(name, []):
                indegree[dependent] -= 1
                if indegree[dependent] == 0:
                    released.append(dependent)
            ready = sorted([*ready, *released], key=position.__getitem__)
        return order

    def _compute_skips(self) -> dict[str, str]:
        settings = self.config.settings
        reasons: dict[str, str] = {}
        for name in self._order:
            if not settings.pipeline.enabled:
                reasons[name] = "pipeline.enabled is false"
            elif not settings.tasks[name].enabled:
                reasons[name] = "disabled in config"
            else:
                skipped = [d for d in self._deps[name] if d in reasons]
                if skipped:
                    reasons[name] = f"depends on skipped task '{skipped[0]}'"
        return reasons

    def get_downstream(self, name: str) -> set[str]:
        """Every task that depends on ``name``, directly or through others."""
        downstream: set[str] = set()
        for task in self._order:  # dependencies come first: one pass reaches them all
            if any(dep == name or dep in downstream for dep in self._deps[task]):
                downstream.add(task)
        return downstream

    @property
    def dependencies(self) -> dict[str, list[str]]:
        return {name: list(deps) for name, deps in self._deps.items()}

    def get_execution_order(self) -> list[str]:
        """Tasks that will run, in an order that respects every dependency."""
        return [name for name in self._order if name not in self._skip_reasons]

    def get_parallel_groups(self) -> list[list[str]]:
        """Waves of tasks that can run at the same time (each wave after the previous)."""
        level: dict[str, int] = {}
        for name in self.get_execution_order():
            level[name] = 1 + max((level[d] for d in self._deps[name] if d in level), default=-1)
        groups: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
        for name in self.get_execution_order():
            groups[level[name]].append(name)
        return groups

    def get_skipped_tasks(self) -> dict[str, str]:
        """Tasks that will not run, with the reason."""
        return {
            name: self._skip_reasons[name] for name in self._order if name in self._skip_reasons
        }

    def get_task_info(self, name: str) -> dict[str, Any]:
        if name not in self._deps:
            raise KeyError(f"unknown task '{name}' (known: {', '.join(self._order)})")
        settings = self.config.settings
        task = settings.tasks[name]
        info = TaskInfo(
            name=name,
            dependencies=list(self._deps[name]),
            dependents=sorted(self._dependents.get(name, [])),
            enabled=task.enabled,
            will_run=name not in self._skip_reasons,
            skip_reason=self._skip_reasons.get(name),
            timeout=task.timeout_seconds,
            retry_count=settings.retry_count(name),
            retry_delay=task.retry_delay,
        )
        return info.__dict__.copy()
