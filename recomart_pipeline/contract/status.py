"""The task statuses of the configuration guide, one vocabulary everywhere.

The CLI's run table, the JSONL task logs, the run manifest, the run-history export and the
asset metadata all say the same word for the same state, so a user can grep one word.
The guide's table names FAILURE for a failed attempt; RETRYING marks the wait before the
next attempt (the guide's "failed (will retry)"), with the wait recorded beside it.
"""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    PENDING = "PENDING"  # waiting for its dependencies
    RUNNING = "RUNNING"  # an attempt is executing
    SUCCESS = "SUCCESS"  # finished (or reused by a resume from the run it resumes)
    FAILURE = "FAILURE"  # the attempt failed; final unless RETRYING follows
    RETRYING = "RETRYING"  # between attempts: the next starts after the recorded wait
    TIMEOUT = "TIMEOUT"  # stopped by its own or the run's time limit
    SKIPPED = "SKIPPED"  # disabled, or not started because a dependency failed (with why)


FAILED = frozenset({TaskStatus.FAILURE, TaskStatus.TIMEOUT})
