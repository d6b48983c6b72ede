"""A hostile config is refused at its place: no code runs, no file outside the project is
read or written, no limit-free YAML exhausts the machine.

A pipeline config is data anyone with write access to the project can edit. Each case
below is a real file; each asserts the exact outcome: the ConfigError names the file, the
line and the key (or the limit), and, where code could run, a marker file written by the
payload's top-level code shows that it did not.
"""

from __future__ import annotations

import sys
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from recomart_pipeline.cli import main
from recomart_pipeline.config import ConfigError, PipelineConfig
from recomart_pipeline.config.yaml_source import LIMITS
from recomart_pipeline.contract.catalog import ALLOWED_PACKAGES_ENV
from recomart_pipeline_tests.conftest import SAMPLE
from recomart_pipeline_tests.helpers import copy_default_project

WriteConfig = Callable[..., Path]
MIB = 1024 * 1024
NUMBERS = f'  numbers: {{callable: "{SAMPLE}:make_numbers"}}\n'


def _error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as excinfo:
        PipelineConfig(path)
    return excinfo.value


def _only(path: Path) -> tuple[ConfigError, str]:
    error = _error(path)
    assert len(error.issues) == 1, error.render()
    return error, error.render()


# -- YAML limits -------------------------------------------------------------------------------

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
tasks: {}
"""


def test_billion_laughs_is_refused_at_its_line_in_bounded_memory(write_config: WriteConfig):
    """9^9 values from 600 bytes: refused where the expansion crosses the limit (line 6,
    9^5 = 59,049 values so far plus the next alias of 6,561), holding a few megabytes."""
    path = write_config(BILLION_LAUGHS)
    tracemalloc.start()
    try:
        error, text = _only(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    issue = error.issues[0]
    assert (issue.file, issue.line) == (path, 6)
    assert "more than 100,000 values once its aliases are expanded" in issue.message
    assert f"{path.name}:6 <root>:" in text
    assert peak < 20 * MIB, f"peak {peak / MIB:.1f} MiB while refusing"


def test_billion_laughs_through_the_cli_exits_2(write_config: WriteConfig, capsys):
    path = write_config(BILLION_LAUGHS)
    assert main(["validate", str(path), "--no-data"]) == 2
    assert "the limit for a config file" in capsys.readouterr().err


def test_recursive_alias_is_refused_not_a_recursion_error(write_config: WriteConfig):
    path = write_config(f"tasks:\n{NUMBERS}loop: &loop\n  - x\n  - *loop\n")
    error, text = _only(path)
    assert (error.issues[0].file, error.issues[0].line) == (path, 5)
    assert "alias '*loop' is inside the block '&loop' it repeats (a recursive alias)" in text


def test_twenty_thousand_deep_nesting_is_refused(write_config: WriteConfig):
    path = write_config("tasks:\n  x: " + "[" * 20_000 + "]" * 20_000 + "\n")
    error, text = _only(path)
    assert (error.issues[0].file, error.issues[0].line) == (path, 2)
    assert f"nests deeper than {LIMITS.max_depth} levels" in text
    assert "]" * 200 not in text, "the 40,000-character line is shown cut around its column"


def test_deep_block_nesting_is_refused_at_the_line_that_crosses_the_limit(
    write_config: WriteConfig,
):
    levels = "".join(f"{'  ' * (i + 1)}k{i}:\n" for i in range(LIMITS.max_depth + 5))
    path = write_config(f"tasks:\n{levels}")
    error, _ = _only(path)
    # tasks is level 1, k0 level 2, …: the value of k(max-2) opens the level beyond.
    assert error.issues[0].line == LIMITS.max_depth + 1
    assert f"nests deeper than {LIMITS.max_depth} levels" in error.issues[0].message


def test_aliases_cannot_stack_depth_past_the_limit(write_config: WriteConfig):
    """Each block is shallow; aliases of aliases nest them ever deeper when expanded."""
    half = LIMITS.max_depth // 2 + 2
    deep = "[" * half + "x" + "]" * half
    path = write_config(f"tasks:\n{NUMBERS}a: &a {deep}\nb: &b {'[' * half}*a{']' * half}\n")
    error, _ = _only(path)
    assert error.issues[0].line == 4
    assert "(aliases expanded)" in error.issues[0].message


def test_a_config_file_larger_than_the_limit_is_refused_without_reading_it_all(
    write_config: WriteConfig,
):
    line = "# " + "x" * 1021 + "\n"  # 1 KiB a line
    path = write_config(f"tasks:\n{NUMBERS}" + line * (LIMITS.max_bytes // len(line) + 10))
    error, text = _only(path)
    assert error.issues[0].file == path
    assert error.issues[0].line is not None and error.issues[0].line > 5000
    assert "larger than 5 MiB, the limit for a config file" in text


def test_an_endless_file_is_refused_after_the_limit():
    _, text = _only(Path("/dev/zero"))
    assert "larger than 5 MiB" in text and "zero:1" in text


def test_non_utf8_bytes_name_the_line_not_echo_the_bytes(write_config: WriteConfig):
    path = write_config("tasks:\n")
    path.write_bytes(b"tasks:\n  a: {callable: x}\n  b: \xff\xfe\x00garbage\n")
    error, text = _only(path)
    assert error.issues[0].line == 3
    assert "not UTF-8 text (byte 0xff cannot be decoded)" in text
    assert "garbage" not in text


# -- callable: only allowed packages, nothing imported to decide -----------------------------


@pytest.fixture
def marker_package(tmp_path: Path) -> tuple[str, Path]:
    """A package in the project folder whose top-level code (package and module) writes a
    marker file: proof that it was imported. A fresh name each time (sys.modules caches)."""
    name = f"evil_{uuid.uuid4().hex[:10]}"
    marker = tmp_path / "imported.marker"
    package = tmp_path / name
    package.mkdir()
    payload = f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\n"
    (package / "__init__.py").write_text(payload)
    (package / "tasks.py").write_text(f"{payload}def run(ctx):\n    return None\n")
    return name, marker


def test_a_callable_outside_the_allowed_packages_is_refused_and_never_imported(
    write_config: WriteConfig, marker_package: tuple[str, Path], monkeypatch, capsys
):
    name, marker = marker_package
    monkeypatch.delenv(ALLOWED_PACKAGES_ENV)
    path = write_config(f'tasks:\n  evil:\n    callable: "{name}.tasks:run"\n')
    assert main(["validate", str(path), "--no-data"]) == 2
    text = capsys.readouterr().err
    assert f"{path.name}:3 tasks.evil.callable: package '{name}' is not an allowed task " in text
    assert "it was not imported" in text
    assert "hint: if you trust it, add it to pipeline.allowed_task_packages (e.g. " in text
    assert f"allowed_task_packages: [{name}] under pipeline:)" in text
    assert not marker.exists(), "the module's top-level code ran"
    assert name not in sys.modules and f"{name}.tasks" not in sys.modules


def test_listing_the_package_in_the_config_allows_it(
    write_config: WriteConfig, marker_package: tuple[str, Path]
):
    """The trust is written down in the config; then (and only then) it is imported to read
    what the function declares."""
    name, marker = marker_package
    path = write_config(
        f'pipeline:\n  allowed_task_packages: [{name}]\ntasks:\n  t: {{callable: "{name}.tasks:run"}}\n'
    )
    config = PipelineConfig(path)
    assert config.specs["t"].reference == f"{name}.tasks:run"
    assert marker.read_text().split() == [name, f"{name}.tasks"]


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("os:system", "'os' is part of Python's standard library, not a task package"),
        ("builtins:exec", "'builtins' is part of Python's standard library"),
        ("subprocess:run", "'subprocess' is part of Python's standard library"),
        ("importlib:import_module", "'importlib' is part of Python's standard library"),
        ("os.path:join", "'os.path' is part of Python's standard library"),
        ("shutil:rmtree", "'shutil' is part of Python's standard library"),
    ],
)
def test_standard_library_callables_are_refused(
    write_config: WriteConfig, reference: str, message: str
):
    path = write_config(f'tasks:\n{NUMBERS}  evil:\n    callable: "{reference}"\n')
    error, _ = _only(path)
    issue = error.issues[0]
    assert (issue.file, issue.line, issue.key_path) == (path, 4, ("tasks", "evil", "callable"))
    assert message in issue.message
    assert issue.hint is not None and "can never be task packages" in issue.hint


def test_the_standard_library_cannot_be_allowed(write_config: WriteConfig):
    path = write_config(
        f"pipeline:\n  allowed_task_packages: [my_tasks, os]\ntasks:\n{NUMBERS}  "
        'evil: {callable: "os:system"}\n'
    )
    error = _error(path)
    where = {(i.line, i.key_path) for i in error.issues}
    assert (2, ("pipeline", "allowed_task_packages", 1)) in where
    assert (5, ("tasks", "evil", "callable")) in where
    assert "'os' is part of Python's standard library and cannot hold tasks" in error.render()


@pytest.mark.parametrize(
    "reference",
    [
        "recomart_pipeline_tests_evil.x:run",  # a name that only starts like an allowed one
        "recomart_pipeline.cli:main",  # the project's own code that is not a task package
        "recomart_pipeline.taskss.x:run",
    ],
)
def test_allowed_means_the_package_itself_not_a_prefix(write_config: WriteConfig, reference):
    path = write_config(f'tasks:\n  evil: {{callable: "{reference}"}}\n')
    error, _ = _only(path)
    assert "is not an allowed task package" in error.issues[0].message


@pytest.mark.parametrize(
    "reference",
    [
        f"{SAMPLE}:__import__",
        f"{SAMPLE}:make_numbers.__globals__",
        "recomart_pipeline_tests/sample_tasks:make_numbers",
        f"{SAMPLE}:make numbers",
    ],
)
def test_a_callable_must_be_a_plain_module_and_function_name(write_config: WriteConfig, reference):
    path = write_config(f'tasks:\n  odd: {{callable: "{reference}"}}\n')
    error, _ = _only(path)
    assert (
        error.issues[0].message
        == f"callable {reference!r} must look like 'package.module:function'"
    )
    assert error.issues[0].key_path == ("tasks", "odd", "callable")


def test_a_missing_module_in_an_allowed_package_is_found_missing_without_importing_it(
    write_config: WriteConfig, marker_package: tuple[str, Path]
):
    """Locating ``pkg.nope`` with importlib.util.find_spec would import ``pkg`` first."""
    name, marker = marker_package
    path = write_config(
        f'pipeline:\n  allowed_task_packages: [{name}]\ntasks:\n  t: {{callable: "{name}.nope:run"}}\n'
    )
    error, _ = _only(path)
    assert error.issues[0].message == f"cannot find module '{name}.nope'"
    assert error.issues[0].line == 4
    assert not marker.exists()


# -- every written path stays in the project (or an allowed root) ------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The shipped config in a throwaway project folder (no data: validate --no-data)."""
    folder = tmp_path / "shop" / "project"
    folder.mkdir(parents=True)
    return copy_default_project(folder, data_from=folder)


def _overlay(project: Path, text: str) -> Path:
    path = project / "pipeline_config.hostile.yaml"
    path.write_text(f"extends: pipeline_config.yaml\n{text}")
    return path


@pytest.mark.parametrize(
    ("section", "key"),
    [("report", "output_dir"), ("deploy", "registry_dir")],
)
def test_task_output_folders_cannot_escape_the_project(project: Path, capsys, section, key):
    path = _overlay(project, f"tasks:\n  {section}:\n    config:\n      {key}: ../../..\n")
    assert main(["validate", str(path), "--no-data"]) == 2
    text = capsys.readouterr().err
    assert (
        f"pipeline_config.hostile.yaml:5 tasks.{section}.config.{key}: path '../../..' escapes "
        f"the project folder {project}" in text
    )
    assert "storage.allowed_roots" in text


@pytest.mark.parametrize(
    ("yaml_path", "key_path"),
    [
        ("storage:\n  base_dir: ", ("storage", "base_dir")),
        ("storage:\n  cache_dir: ", ("storage", "cache_dir")),
        ("storage:\n  dagster_home: ", ("storage", "dagster_home")),
        ("logging:\n  dir: ", ("logging", "dir")),
        ("logging:\n  file: ", ("logging", "file")),
        ("monitoring:\n  metrics_dir: ", ("monitoring", "metrics_dir")),
        ("tracking:\n  opentelemetry:\n    file: ", ("tracking", "opentelemetry", "file")),
    ],
)
def test_every_write_path_of_the_pipeline_is_checked(project: Path, tmp_path, yaml_path, key_path):
    outside = tmp_path / "elsewhere"
    for value in ("../../x", str(outside)):
        error = _error(_overlay(project, f"{yaml_path}{value}\n"))
        assert [i.key_path for i in error.issues] == [key_path]
        assert f"path '{value}' escapes the project folder" in error.issues[0].message


def test_allowed_roots_open_a_folder_outside_the_project(project: Path, tmp_path: Path):
    shared = tmp_path / "shared"
    path = _overlay(
        project,
        f"storage:\n  base_dir: {shared}/recomart\n  allowed_roots: [{shared}]\n"
        f"tasks:\n  report:\n    config:\n      output_dir: ../../shared/reports\n",
    )
    config = PipelineConfig(path)
    assert config.storage_root == shared / "recomart"
    error = _error(
        _overlay(project, f"storage:\n  allowed_roots: [{shared}]\nlogging:\n  dir: /var/log/x\n")
    )
    assert "path '/var/log/x' escapes the project folder" in error.issues[0].message


@pytest.mark.parametrize(
    ("roots", "message"),
    [("[relative/folder]", "must be an absolute folder"), ("[/]", "is the whole file system")],
)
def test_allowed_roots_must_be_real_absolute_folders(project: Path, roots: str, message: str):
    error = _error(_overlay(project, f"storage:\n  allowed_roots: {roots}\n"))
    assert error.issues[0].key_path[:2] == ("storage", "allowed_roots")
    assert message in error.issues[0].message


def test_a_symlink_out_of_the_project_is_followed_and_refused(project: Path, tmp_path: Path):
    (project / "out").symlink_to(tmp_path / "outside", target_is_directory=True)
    error = _error(_overlay(project, "monitoring:\n  metrics_dir: out/metrics\n"))
    assert f"(it resolves to {tmp_path / 'outside' / 'metrics'})" in error.issues[0].message


def test_a_file_url_storage_is_a_local_path(project: Path):
    error = _error(_overlay(project, "storage:\n  base_dir: file:///etc/recomart\n"))
    assert error.issues[0].key_path == ("storage", "base_dir")
    assert "escapes the project folder" in error.issues[0].message


# -- extends stays in the project and never shows a foreign file -----------------------------


def test_extends_of_a_system_file_is_refused_before_it_is_read(write_config: WriteConfig):
    path = write_config("extends: /etc/passwd\n")
    error, text = _only(path)
    issue = error.issues[0]
    assert (issue.file, issue.line, issue.key_path) == (path, 1, ("extends",))
    assert "'/etc/passwd' is not one (not read)" in issue.message
    assert "root:" not in text


def test_extends_out_of_the_project_never_echoes_the_file(tmp_path: Path):
    secret = "password: hunter2-from-a-foreign-file"
    (tmp_path / "other.yaml").write_text(f"tasks: [\n{secret}\n")
    project = tmp_path / "project"
    project.mkdir()
    (project / "link.yaml").symlink_to(tmp_path / "other.yaml")
    for target in ("../other.yaml", str(tmp_path / "other.yaml"), "link.yaml"):
        path = project / "pipeline_config.yaml"
        path.write_text(f"extends: {target}\n")
        _, text = _only(path)
        assert "may only name a YAML file inside the project folder" in text
        assert "hunter2" not in text


def test_extends_must_name_a_yaml_file(write_config: WriteConfig):
    write_config("secret token\n", "notes.txt")
    _, text = _only(write_config("extends: notes.txt\n"))
    assert "'notes.txt' is not one (not read)" in text and "secret token" not in text
