"""A Spark standalone cluster on 127.0.0.1 from pyspark's own jars, for the cluster test and
the cluster benchmark: a master and one worker, the way docs/spark_cluster.md starts one.

The processes are started in their own process groups and stopped with them (the worker's
executors are its children), whatever the caller did; logs go to files next to the work
folder, so a failed start says where to look.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recomart_pipeline_tests.helpers import free_port, stop_process_group, wait_until

# Starting a JVM on a busy 2-core machine: the master has taken ~10 s, the worker's
# registration ~15 s; these are bounds on waiting for a start, not on measured work.
START_TIMEOUT_S = 180


@dataclass(frozen=True)
class StandaloneCluster:
    master_url: str  # spark://127.0.0.1:<port>
    web_port: int  # the master's web UI (its /json/ state)
    logs: Path

    def state(self) -> dict[str, Any]:
        """The master's view: workers, active and completed applications."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/json/", timeout=5) as r:
            state: dict[str, Any] = json.loads(r.read())
        return state

    def applications(self, name: str) -> list[dict[str, Any]]:
        """The completed applications called ``name`` (one per Spark session a task ran)."""
        return [app for app in self.state()["completedapps"] if app["name"] == name]


def spark_home() -> Path:
    """pyspark's own install: ``bin/spark-class`` and ``jars/`` are all a standalone master
    and worker need (no separate Spark download)."""
    import pyspark

    return Path(pyspark.__file__).parent


def _up(cluster: StandaloneCluster, process: subprocess.Popen[bytes], workers: int) -> bool:
    assert process.poll() is None, (
        f"a Spark daemon exited with {process.returncode}; see {cluster.logs}"
    )
    try:
        state = cluster.state()
    except OSError:
        return False
    return bool(state.get("status") == "ALIVE" and state.get("aliveworkers", 0) >= workers)


@contextmanager
def standalone_cluster(
    work: Path, cores: int = 2, memory: str = "2g"
) -> Iterator[StandaloneCluster]:
    """A running master and worker (``cores``, ``memory``) until the block ends.

    The daemons' environment has no PYTHONPATH: executors must get the package the way
    users' do (``spark.executorEnv.PYTHONPATH`` or an image with it installed), or the
    Python parts of a job fail instead of silently importing whatever the worker had.
    """
    home = spark_home()
    work.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(SPARK_HOME=str(home), SPARK_LOCAL_IP="127.0.0.1")
    port, web_port, worker_web_port = free_port(), free_port(), free_port()
    cluster = StandaloneCluster(f"spark://127.0.0.1:{port}", web_port, work)
    spark_class = str(home / "bin" / "spark-class")

    def start(args: list[str], log: str) -> subprocess.Popen[bytes]:
        with (work / log).open("wb") as out:
            return subprocess.Popen(
                [spark_class, *args],
                env=env,
                cwd=work,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    with ExitStack() as stack:
        master = start(
            [
                "org.apache.spark.deploy.master.Master",
                *("--host", "127.0.0.1", "--port", str(port), "--webui-port", str(web_port)),
            ],
            "master.log",
        )
        stack.callback(stop_process_group, master)
        wait_until(lambda: _up(cluster, master, 0), START_TIMEOUT_S, "the Spark master")
        worker = start(
            [
                "org.apache.spark.deploy.worker.Worker",
                cluster.master_url,
                *("--host", "127.0.0.1", "--webui-port", str(worker_web_port)),
                *("--cores", str(cores), "--memory", memory, "--work-dir", str(work / "worker")),
            ],
            "worker.log",
        )
        stack.callback(stop_process_group, worker)
        wait_until(lambda: _up(cluster, worker, 1), START_TIMEOUT_S, "the Spark worker")
        yield cluster
