"""Tasks in a child process: real timeouts, memory limits, crashes, forwarded logs."""

from __future__ import annotations

import json
import sys
import time

import pytest

from recomart_pipeline import PipelineConfig
from recomart_pipeline.runtime.isolation import MAIN_SCRIPT_VARIABLE
from recomart_pipeline.runtime.runner import TaskFailure, run_task
from recomart_pipeline_tests.conftest import SAMPLE
from recomart_pipeline_tests.helpers import run_in_project


def test_isolated_task_succeeds_and_its_logs_come_back(write_config):
    path = write_config(
        f'tasks:\n  numbers: {{callable: "{SAMPLE}:make_numbers", timeout_seconds: 60}}\n'
    )
    config = PipelineConfig(path)
    forwarded: list[str] = []
    outcome = run_task(config, "numbers", "r1", forward=lambda level, msg: forwarded.append(msg))
    assert json.loads(outcome.checkpoint.path("numbers").read_text()) == [0, 1, 2, 3, 4]
    assert any(m.startswith("wrote numbers") for m in forwarded)
    log = (config.project_root / "logs" / "numbers.log").read_text()
    assert '"isolated": true' in log and "wrote numbers" in log


@pytest.mark.parametrize("ignore_sigterm", [False, True])
def test_hung_task_is_stopped_at_its_timeout(write_config, ignore_sigterm):
    path = write_config(
        f"""
        tasks:
          hang:
            callable: "{SAMPLE}:hang"
            timeout_seconds: 1.5
            config: {{seconds: 120, ignore_sigterm: {str(ignore_sigterm).lower()}}}
        """
    )
    started = time.monotonic()
    with pytest.raises(TaskFailure) as excinfo:
        run_task(PipelineConfig(path), "hang", "r1")
    elapsed = time.monotonic() - started
    assert excinfo.value.error_class == "timeout"
    assert "exceeded its timeout of 1.5s" in excinfo.value.message
    assert elapsed < 30  # stopped near the deadline (+ SIGKILL grace), not after 120 s
    log = (PipelineConfig(path).project_root / "logs" / "hang.log").read_text()
    assert '"status": "TIMEOUT"' in log


def test_memory_limit_turns_into_memory_error(write_config):
    path = write_config(
        f"""
        resources: {{max_memory_gb: 1}}
        tasks:
          hog: {{callable: "{SAMPLE}:hog_memory"}}
        """
    )
    with pytest.raises(TaskFailure) as excinfo:
        run_task(PipelineConfig(path), "hog", "r1")
    assert excinfo.value.error_class == "memory_error"
    assert "max_memory_gb" in excinfo.value.message


def test_killed_task_leaves_the_previous_checkpoint_intact(write_config):
    good = write_config(f'tasks:\n  numbers: {{callable: "{SAMPLE}:make_numbers"}}\n')
    config = PipelineConfig(good)
    before = run_task(config, "numbers", "r1").checkpoint
    good.write_text(f'tasks:\n  numbers: {{callable: "{SAMPLE}:crash", timeout_seconds: 60}}\n')
    with pytest.raises(TaskFailure) as excinfo:
        run_task(PipelineConfig(good), "numbers", "r2")
    assert excinfo.value.error_class == "crashed"
    assert "exit code -9" in excinfo.value.message
    latest = json.loads((config.storage_root / "latest" / "numbers.json").read_text())
    assert latest["run_id"] == "r1"
    before.verify()
    assert json.loads(before.path("numbers").read_text()) == [0, 1, 2, 3, 4]
    assert not (config.storage_root / "runs" / "r2" / "numbers").exists()


def test_max_cpu_cores_caps_numeric_thread_pools(write_config):
    path = write_config(
        f"""
        resources: {{max_cpu_cores: 1}}
        tasks:
          threads: {{callable: "{SAMPLE}:report_threads", timeout_seconds: 60}}
        """
    )
    outcome = run_task(PipelineConfig(path), "threads", "r1")
    assert outcome.result.metrics["max_threads"] == 1


# A parent run as a script (as `dagster job execute` runs Dagster's): every time the script
# is executed it notes the name it runs under.
SCRIPT_PARENT = """
import sys
with open(sys.argv[2], "a") as notes:
    notes.write(__name__ + "\\n")
if __name__ == "__main__":
    from recomart_pipeline import PipelineConfig
    from recomart_pipeline.runtime.runner import run_task
    run_task(PipelineConfig(sys.argv[1]), "numbers", "r1")
"""


def test_a_task_process_does_not_run_the_parents_main_script_again(write_config, tmp_path):
    path = write_config(
        f'tasks:\n  numbers: {{callable: "{SAMPLE}:make_numbers", timeout_seconds: 60}}\n'
    )
    script, notes = tmp_path / "parent.py", tmp_path / "notes.txt"
    script.write_text(SCRIPT_PARENT)
    done = run_in_project([sys.executable, str(script), str(path), str(notes)], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "storage" / "latest" / "numbers.json").read_text())["run_id"]
    # multiprocessing's main fix-up would have run it in the task's process as __mp_main__
    assert notes.read_text().split() == ["__main__"]


def test_a_planted_main_script_variable_runs_nothing(write_config, tmp_path):
    """The variable that names the parent's script to the forkserver is ours to set: one
    planted in the environment of a parent with no script runs nothing anywhere and changes
    nothing in the parent (whose other multiprocessing children would run its __main__)."""
    path = write_config(
        f'tasks:\n  numbers: {{callable: "{SAMPLE}:make_numbers", timeout_seconds: 60}}\n'
    )
    planted, marker = tmp_path / "planted.py", tmp_path / "planted.ran"
    planted.write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    attempt = (
        "import sys\nfrom recomart_pipeline import PipelineConfig\n"
        "from recomart_pipeline.runtime.runner import run_task\n"
        "run_task(PipelineConfig(sys.argv[1]), 'numbers', 'r1')\n"
        "print('main file:', getattr(sys.modules['__main__'], '__file__', None))\n"
    )
    done = run_in_project(
        [sys.executable, "-c", attempt, str(path)],
        tmp_path,
        timeout=300,
        env={MAIN_SCRIPT_VARIABLE: str(planted)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "storage" / "latest" / "numbers.json").read_text())["run_id"]
    assert not marker.exists()
    assert "main file: None" in done.stdout  # the parent's own __main__ is left alone
