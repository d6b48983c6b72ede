"""Every path the pipeline writes must stay in the project folder or an allowed root.

The rule, for each ``WritePath`` field of the pipeline's sections and of every task's
``config:`` (storage, cache, Dagster home, logs, metrics, trace file, reports, registry):
the path, relative paths taken from the project folder (the folder of the config file you
run) and symbolic links followed, must end up inside the project folder or inside one of
the absolute folders listed in ``storage.allowed_roots``. So ``report.output_dir: ../../..``
or ``logging.dir: /etc`` are config errors at their key, and writing to a shared volume is
a decision written down once (``allowed_roots: [/mnt/shared]``), not a side effect of any
absolute path. An object store ``base_dir`` (``s3://…``) is not a local path; ``file://``
URLs are, and follow the rule.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from recomart_pipeline.config.errors import ConfigIssue
from recomart_pipeline.config.schema import PipelineSettings
from recomart_pipeline.config.yaml_source import SourceMap
from recomart_pipeline.contract.paths import write_paths

LOCAL_URL_SCHEMES = ("file", "local")


def _local_path(value: str) -> str | None:
    """The local path a value names: itself, the path of a ``file://`` URL (also inside an
    fsspec chain such as ``simplecache::file://…``), or None for a remote store."""
    if "://" not in value:
        return value
    for part in value.split("::"):
        parts = urlsplit(part)
        if parts.scheme in LOCAL_URL_SCHEMES:
            return f"{parts.netloc}{parts.path}" if parts.netloc else parts.path
    return None


def check_write_paths(
    settings: PipelineSettings, project_root: Path, source_map: SourceMap
) -> list[ConfigIssue]:
    """One issue per write path that leaves the project folder and the allowed roots."""
    root = project_root.resolve()
    allowed = [Path(folder).resolve() for folder in settings.storage.allowed_roots]
    issues: list[ConfigIssue] = []
    for key_path, value in write_paths(settings):
        local = _local_path(value)
        if local is None:
            continue
        resolved = (root / local).resolve()  # an absolute ``local`` replaces ``root``
        if resolved.is_relative_to(root) or any(resolved.is_relative_to(a) for a in allowed):
            continue
        issues.append(
            source_map.issue(
                f"path '{value}' escapes the project folder {root} (it resolves to "
                f"{resolved}){' and the allowed roots' if allowed else ''}",
                key_path,
                hint="use a folder inside the project; to write elsewhere on purpose, list "
                "an absolute folder that contains it in storage.allowed_roots",
            )
        )
    return issues
