"""What a run notification says, independent of the channel that carries it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TaskLine:
    task: str
    status: str
    duration_s: float | None
    attempts: int = 1


@dataclass(frozen=True)
class RunNotice:
    """One run's outcome: the facts every channel renders."""

    pipeline: str
    environment: str
    run_id: str
    status: str  # SUCCESS or FAILURE
    run_url: str
    tasks: list[TaskLine] = field(default_factory=list)
    failed_task: str | None = None
    error_class: str | None = None
    error_message: str | None = None
    failed_attempts: int = 0
    last_log_lines: list[str] = field(default_factory=list)
    duration_s: float | None = None
    headline: str | None = None  # replaces the outcome words (e.g. a slow-task alert)

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCESS"

    @property
    def subject(self) -> str:
        if self.headline:
            return f"[{self.pipeline}/{self.environment}] run {self.run_id[:8]}: {self.headline}"
        outcome = "succeeded" if self.succeeded else "FAILED"
        where = f" at task '{self.failed_task}'" if self.failed_task else ""
        return f"[{self.pipeline}/{self.environment}] run {self.run_id[:8]} {outcome}{where}"

    def failure_sentence(self) -> str:
        if self.succeeded or not self.failed_task:
            return ""
        attempts = f" after {self.failed_attempts} attempts" if self.failed_attempts > 1 else ""
        klass = f" ({self.error_class})" if self.error_class else ""
        return (
            f"Task '{self.failed_task}' failed{attempts}{klass}: {self.error_message or ''}".strip()
        )

    def text(self) -> str:
        """Plain text body (email, logs)."""
        lines = [
            f"Pipeline:    {self.pipeline}",
            f"Environment: {self.environment}",
            f"Run:         {self.run_id}",
            f"Status:      {self.status}",
        ]
        if self.duration_s is not None:
            lines.append(f"Duration:    {self.duration_s:.1f}s")
        lines.append(f"Details:     {self.run_url}")
        if not self.succeeded:
            lines += ["", self.failure_sentence()]
        if self.tasks:
            lines += ["", "Tasks:"]
            for task in self.tasks:
                duration = f"{task.duration_s:.2f}s" if task.duration_s is not None else "-"
                retries = f" ({task.attempts} attempts)" if task.attempts > 1 else ""
                lines.append(f"  {task.task:<16} {task.status:<9} {duration:>9}{retries}")
        if self.last_log_lines:
            lines += ["", f"Last log lines of '{self.failed_task}':", *self.last_log_lines]
        return "\n".join(lines)
