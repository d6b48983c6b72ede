"""The pipeline with Dagster's instance on a real PostgreSQL server started by the test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from glob import glob
from pathlib import Path

import pytest

from recomart_pipeline_tests.helpers import free_port, project_env, run_id_of

pytestmark = pytest.mark.slow
REPO_DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "dagster.postgres.yaml"
PASSWORD = "pg-test-secret"


def _bin(name: str) -> str | None:
    found = sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _as_postgres(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run(prefix + args, check=True, capture_output=True, text=True, **kwargs)


@pytest.fixture
def postgres() -> Iterator[int]:
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server binaries are not installed (apt-get install postgresql)")
    # Not pytest's tmp_path: the server runs as the postgres user, which cannot enter it.
    data = Path(tempfile.mkdtemp(prefix="recomart-pg-")) / "data"
    data.parent.chmod(0o777)
    port = free_port()
    pwfile = data.parent / "pw"
    pwfile.write_text(PASSWORD)
    pwfile.chmod(0o644)
    _as_postgres([initdb, "-D", str(data), "-U", "dagster", f"--pwfile={pwfile}", "-A", "md5"])
    _as_postgres(
        [
            pg_ctl,
            "-D",
            str(data),
            "-w",
            "-l",
            str(data.parent / "pg.log"),
            "-o",
            f"-p {port} -k {data.parent} -c listen_addresses=127.0.0.1",
            "start",
        ]
    )
    try:
        env = dict(os.environ, PGPASSWORD=PASSWORD)
        subprocess.run(
            ["createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "dagster", "dagster"],
            check=True,
            env=env,
            capture_output=True,
        )
        yield port
    finally:
        _as_postgres([pg_ctl, "-D", str(data), "-m", "fast", "stop"])
        shutil.rmtree(data.parent, ignore_errors=True)


def test_runs_are_stored_in_postgres(sample_project, postgres):
    project = sample_project.parent
    env = project_env(project)
    home = Path(env["DAGSTER_HOME"])
    (home / "dagster.yaml").write_text(
        REPO_DEPLOY.read_text().replace("port: 5432", f"port: {postgres}")
    )
    env |= {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PASSWORD": PASSWORD}
    done = subprocess.run(
        [sys.executable, "-m", "recomart_pipeline", "run"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    run_id = run_id_of(done.stdout)
    query = subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(postgres),
            "-U",
            "dagster",
            "-d",
            "dagster",
            "-tAc",
            f"select status from runs where run_id = '{run_id}'",
        ],
        env=dict(os.environ, PGPASSWORD=PASSWORD),
        capture_output=True,
        text=True,
        check=True,
    )
    assert query.stdout.strip() == "SUCCESS"
    assert not list(home.glob("*.db")) and not (home / "history").exists()  # not SQLite
    assert PASSWORD not in done.stdout + done.stderr
