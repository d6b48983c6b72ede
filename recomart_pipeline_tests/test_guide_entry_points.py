"""Every command and Python snippet of the user guide works here, as printed or as mapped.

The guide (``recomart-config-guide.md``, the users' contract in ``../shared/spec/`` next to the
project, or ``$RECOMART_CONFIG_GUIDE``) was written for a ``src/orchestration/`` layout. The
README's table between ``<!-- BEGIN guide map -->`` and ``<!-- END guide map -->`` maps each of
its commands and snippets to the form that works here. The guide is parsed at test time, so a
new command or import in it without a row fails ``test_every_guide_snippet_has_a_row``; each
row's working form is then checked for what it is: imports are imported, Dagster's and the
project's commands are found as installed entry points and answer ``--help`` (with the module,
job and files they name), and the guide's Python snippets, with the table's replacements
applied, run on a sample project (``test_the_guides_python_runs_with_the_table_applied``).
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import sys
import textwrap
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from recomart_pipeline import PipelineConfig
from recomart_pipeline.cli import main
from recomart_pipeline_tests.conftest import FIXTURES, REPO_ROOT, SAMPLE
from recomart_pipeline_tests.helpers import CONFIG_GUIDE, project_env, run_in_project

GUIDE = CONFIG_GUIDE
README = REPO_ROOT / "README.md"
needs_guide = pytest.mark.skipif(not GUIDE.is_file(), reason=f"the guide is not at {GUIDE}")


@dataclass(frozen=True)
class Block:
    language: str
    text: str


@dataclass(frozen=True)
class Row:
    section: str
    guide: str
    working: list[str]
    notes: list[str]


def _squeeze(text: str) -> str:
    return " ".join(text.split())


def guide_blocks() -> list[Block]:
    text = GUIDE.read_text(encoding="utf-8")
    return [
        Block(language, body)
        for language, body in re.findall(r"^```(\w*)\n(.*?)^```", text, re.M | re.S)
    ]


def snippets(block: Block) -> list[str]:
    """What in ``block`` a user types or imports: the lines a README row must map."""
    if block.language == "bash":
        joined = block.text.replace("\\\n", " ")
        lines = [line.split(" #")[0] for line in joined.splitlines()]
        return [
            _squeeze(line) for line in lines if line.strip() and not line.lstrip().startswith("#")
        ]
    if block.language == "python":
        return [
            line.strip()
            for line in block.text.splitlines()
            if line.startswith(("from ", "import "))
        ]
    if block.language == "":  # a listing: the paths it names (the flow diagram has none)
        paths = [line.split("#")[0].strip() for line in block.text.splitlines()]
        return [path for path in paths if "/" in path]
    if block.language == "yaml":
        return []  # every YAML example: recomart_pipeline_tests/config/test_guide_examples.py
    raise AssertionError(f"the guide has a ```{block.language} block this test cannot map")


def readme_rows() -> list[Row]:
    text = README.read_text(encoding="utf-8")
    table = text.split("<!-- BEGIN guide map -->")[1].split("<!-- END guide map -->")[0]
    rows = []
    for line in table.strip().splitlines()[2:]:
        section, guide, working, notes = (cell.strip() for cell in line.strip()[1:-1].split("|"))
        (guide_span,) = re.findall(r"`([^`]+)`", guide)
        rows.append(
            Row(
                section,
                guide_span,
                re.findall(r"`([^`]+)`", working),
                re.findall(r"`([^`]+)`", notes),
            )
        )
    return rows


def mapped(code: str, rows: list[Row]) -> str:
    """``code`` with every row's guide form replaced by its (first) working form."""
    for row in sorted(rows, key=lambda r: len(r.guide), reverse=True):
        code = code.replace(row.guide, row.working[0])
    return code


@needs_guide
def test_every_guide_snippet_has_a_row() -> None:
    mapped_forms = {_squeeze(row.guide) for row in readme_rows()}
    missing = [s for b in guide_blocks() for s in snippets(b) if _squeeze(s) not in mapped_forms]
    assert missing == [], f"guide snippets without a row in README's guide map: {missing}"


@needs_guide
def test_every_row_quotes_the_guide() -> None:
    guide_text = _squeeze("\n".join(block.text.replace("\\\n", " ") for block in guide_blocks()))
    stale = [row.guide for row in readme_rows() if _squeeze(row.guide) not in guide_text]
    assert stale == [], f"README rows quoting what the guide does not say: {stale}"


@needs_guide
def test_every_yaml_example_of_the_guide_is_a_tested_fixture() -> None:
    def normal(text: str) -> str:
        return "\n".join(line.rstrip() for line in text.strip().splitlines())

    fixtures = {normal(p.read_text()) for p in (FIXTURES / "guide").glob("*.yaml")}
    untested = [
        b.text for b in guide_blocks() if b.language == "yaml" and normal(b.text) not in fixtures
    ]
    assert untested == [], "guide YAML examples missing from fixtures/guide/ (test_guide_examples)"


def _spans(rows: list[Row]) -> list[str]:
    return [span for row in rows for span in [*row.working, *row.notes]]


def test_every_import_of_the_table_works(monkeypatch: pytest.MonkeyPatch) -> None:
    # recomart_pipeline.definitions loads the default config, ./pipeline_config.yaml.
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.delenv("PIPELINE_CONFIG", raising=False)
    imports = [span for span in _spans(readme_rows()) if span.startswith(("from ", "import "))]
    assert len(imports) >= 5
    for statement in imports:
        namespace: dict[str, object] = {}
        exec(statement, namespace)
    from recomart_pipeline.definitions import automated_pipeline_job, defs

    assert automated_pipeline_job.get_definition().name == "automated_pipeline_job"
    assert defs.resolve_job_def("automated_pipeline_job").name == "automated_pipeline_job"


def _console_group(program: str) -> click.Group:
    """The click group behind an installed console script (``dagster``, ``dagster-daemon``)."""
    (script,) = entry_points(group="console_scripts", name=program)
    assert (Path(sys.executable).parent / program).is_file(), f"{program} is not installed"
    group = importlib.import_module(script.module).cli
    assert isinstance(group, click.Group)
    return group


def _check_dagster(words: list[str]) -> None:
    program, *args = words
    subcommand = [
        w for w in args[: next((i for i, w in enumerate(args) if w.startswith("-")), len(args))]
    ]
    done = CliRunner().invoke(_console_group(program), [*subcommand, "--help"])
    assert done.exit_code == 0, done.output
    options = dict(zip(args[len(subcommand) :: 2], args[len(subcommand) + 1 :: 2], strict=False))
    if "-f" in options:
        assert (REPO_ROOT / options["-f"]).is_file()
    if "-m" in options:
        module = importlib.import_module(options["-m"])
        if "-j" in options:
            assert module.defs.resolve_job_def(options["-j"]).name == options["-j"]


def _check_command(command: str, *, strict: bool) -> None:
    """The entry point ``command`` names exists and answers (it is not run)."""
    words = shlex.split(command)
    if words[0] in ("dagster", "dagster-daemon"):
        _check_dagster(words)
    elif words[0] == "pip":
        assert words[1:3] == ["install", "-r"] or words[1:] == ["install", "-e", ".", "--no-deps"]
        if words[2] == "-r":
            _check_lock(REPO_ROOT / words[3])
    elif words[:3] == ["python", "-m", "recomart_pipeline"]:
        assert main([*words[3:4], "--help"]) == 0
    elif words[0] == "python" and words[1].endswith(".py"):
        assert (REPO_ROOT / words[1]).is_file()
    elif words[0] == "python" and words[1] == "-c":
        pass  # run by test_the_guides_python_runs_with_the_table_applied
    elif words[0] == "export":
        name, _, value = words[1].partition("=")
        assert name == "PIPELINE_CONFIG"
        PipelineConfig(REPO_ROOT / value)
    elif words[0] == "make":
        targets = re.findall(r"^([\w-]+):", (REPO_ROOT / "Makefile").read_text(), re.M)
        assert words[1] in targets
    else:
        assert not strict, f"no check for the working form {command!r}"


def _check_lock(path: Path) -> None:
    """A lock: every requirement pinned to one version, every runtime dependency included."""
    import tomllib

    lines = [line for line in path.read_text().splitlines() if line and not line.startswith(" ")]
    pins = [line for line in lines if not line.startswith("#")]
    assert pins and all(re.fullmatch(r"[A-Za-z0-9._-]+==[\w.+!-]+", pin) for pin in pins), pins
    pinned = {re.sub(r"[-_.]+", "-", pin.split("==")[0].lower()) for pin in pins}
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    needed = {
        re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[; ]", d)[0].lower())
        for d in project["dependencies"]
    }
    assert needed <= pinned, f"runtime dependencies missing from {path.name}: {needed - pinned}"
    assert not {"pytest", "moto", "mlflow"} & pinned, "the runtime lock installs dev tools"


def _commands(row: Row) -> list[str]:
    return [part.strip() for span in row.working for part in span.split("&&")]


@pytest.mark.parametrize("row", readme_rows(), ids=lambda row: row.guide[:60])
def test_the_working_form_of_each_row_exists(row: Row, monkeypatch: pytest.MonkeyPatch) -> None:
    # pipeline_config.prod.yaml takes its Slack webhook from the environment, as it should.
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.example/guide-test")
    for command in _commands(row):
        if command.startswith(("from ", "import ", "result = ")):
            continue  # imported and run by the tests above and below
        if "/" in command and " " not in command:  # a path, made by a run: see below
            continue
        _check_command(command, strict=True)
    for note in row.notes:
        if note.startswith(("make ", "python -m recomart_pipeline ")):
            _check_command(note, strict=False)


GUIDE_PROJECT = f"""
pipeline: {{name: guide}}
tasks:
  numbers:
    callable: "{SAMPLE}:make_numbers"
    config: {{count: 3}}
  training:
    callable: "{SAMPLE}:square"
    depends_on: [numbers]
    timeout_seconds: 120
    retry_count: 2
"""
CUSTOM_PROJECT = f"""
pipeline: {{name: custom}}
tasks:
  numbers:
    callable: "{SAMPLE}:make_numbers"
  custom_only:
    callable: "{SAMPLE}:square"
    depends_on: [numbers]
"""
DRIVER = """
import contextlib, io, json, sys
report = []
for code in json.load(open(sys.argv[1])):
    out, namespace = io.StringIO(), {}
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<guide snippet>", "exec"), namespace)
    facts = {"stdout": out.getvalue(), "success": namespace.get("success")}
    if "result" in namespace:
        result = namespace["result"]
        facts["success"] = result.success
        facts["steps"] = sorted(
            e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"
        )
    report.append(facts)
print(json.dumps(report))
"""


@needs_guide
@pytest.mark.slow
def test_the_guides_python_runs_with_the_table_applied(tmp_path: Path) -> None:
    rows = readme_rows()
    project = tmp_path / "project"
    project.mkdir()
    (project / "pipeline_config.yaml").write_text(textwrap.dedent(GUIDE_PROJECT))
    (project / "custom_pipeline_config.yaml").write_text(textwrap.dedent(CUSTOM_PROJECT))
    blocks = [mapped(b.text, rows) for b in guide_blocks() if b.language == "python"]
    assert len(blocks) == 4 and not any("src." in block for block in blocks)
    (project / "blocks.json").write_text(json.dumps(blocks))
    (project / "driver.py").write_text(DRIVER)

    done = run_in_project([sys.executable, "driver.py", "blocks.json"], project, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    option3, option4, order, info = json.loads(done.stdout.splitlines()[-1])
    assert option3["success"] is True  # the default config, ./pipeline_config.yaml
    assert option4["success"] is True and option4["steps"] == ["custom_only", "numbers"]
    assert "Execution order: ['numbers', 'training']" in order["stdout"]
    assert "Parallel groups: [['numbers'], ['training']]" in order["stdout"]
    assert info["stdout"].splitlines() == [
        "Task: training",
        "Depends on: ['numbers']",
        "Timeout: 120.0s",
        "Retries: 2",
    ]

    (command,) = [
        mapped(s, rows) for b in guide_blocks() for s in snippets(b) if s.startswith("python -c")
    ]
    _, flag, code = shlex.split(command)
    shown = run_in_project([sys.executable, flag, code], project)
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert "'name': 'guide'" in shown.stdout and "'training'" in shown.stdout

    # The logs the table points at, after option 3's run in the project's Dagster home.
    home = Path(project_env(project)["DAGSTER_HOME"])
    for row in rows:
        for span in row.working:
            if "/" in span and " " not in span:
                pattern = span.replace(".dagster_home/", f"{home}/", 1)
                pattern = re.sub(r"<\w+>", "*", pattern)
                base = Path("/") if pattern.startswith("/") else project
                assert list(base.glob(pattern.lstrip("/"))), f"nothing at {span} ({pattern})"
