"""The project's Dagster instance settings, kept in one file: ``.dagster_home/dagster.yaml``.

That file is versioned where ``make ui``, ``make daemon`` and ``dagster dev`` look for it
(``DAGSTER_HOME=.dagster_home``), so a fresh clone's web UI starts with run monitoring on
and telemetry off with nothing to create first. It lives in the home rather than next to
``workspace.yaml`` because ``dagster dev`` warns about a ``dagster.yaml`` in the current
folder whenever ``DAGSTER_HOME`` points elsewhere. Any other home the project CLI creates
(``storage.dagster_home`` of another project, a ``$DAGSTER_HOME`` of its own) gets a copy of
the same file, never a second text.
"""

import shutil
from pathlib import Path

# Present in a checkout (and in an editable install); a wheel carries only the package,
# whose users configure their instance themselves (the Docker image copies its own).
SHIPPED_DAGSTER_YAML = Path(__file__).resolve().parents[2] / ".dagster_home" / "dagster.yaml"


def install_dagster_yaml(home: Path) -> None:
    """Give ``home`` the project's settings unless it already has its own."""
    target = home / "dagster.yaml"
    if target.exists() or not SHIPPED_DAGSTER_YAML.is_file():
        return
    shutil.copyfile(SHIPPED_DAGSTER_YAML, target)
