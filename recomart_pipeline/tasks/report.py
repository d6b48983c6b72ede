"""Report: a human-readable summary of the run (Markdown + HTML with charts).

Sections come from whichever upstream artifacts exist; a task that was disabled shows as
"not run" instead of failing the report. ``report_summary`` keeps this run's key numbers so
the next report can say what changed.

The report holds what the run computed, so the same inputs, config, code and seeds render the
same bytes (charts included): no run id, date or durations in it (they are in the run's
manifest and metrics, and the copy under ``output_dir`` is named after the run). Only the last
section, "What changed", depends on more than the run: it compares with the previous run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

from recomart_pipeline.contract.documents import (
    EvaluationReport,
    GateResult,
    ReportSummary,
    TrainingSummary,
)
from recomart_pipeline.contract.errors import UpstreamArtifactError
from recomart_pipeline.contract.files import write_text_atomic
from recomart_pipeline.contract.task import TaskContext, TaskResult
from recomart_pipeline.ml.tuning import best_so_far
from recomart_pipeline.reporting import charts
from recomart_pipeline.reporting.render import (
    CHANGES_TITLE,
    Section,
    table,
    to_html,
    to_markdown,
)
from recomart_pipeline.tasks.specs.report import (
    EVALUATION,
    ITEM_INDEX,
    RECOMMENDATIONS,
    TEST,
    TRAIN,
    TRAINING_SUMMARY,
    USER_INDEX,
    VALIDATION_REPORT,
    Config,
)


def _distinct_ids(ctx: TaskContext[Config]) -> tuple[int, int]:
    """The distinct (non-null) users and items of the train split.

    The features task numbers exactly these ids, one index row per distinct non-null train
    id (what ``nunique`` counts), so with its indexes as inputs the figures are their row
    counts, read from the Parquet footers: hashing every train event's id took 3 s of the
    report's 6 s at 20M events. Without them (features not a dependency) they are counted
    from the train split's id columns."""
    if ctx.has_input(USER_INDEX) and ctx.has_input(ITEM_INDEX):
        return (
            pq.read_metadata(ctx.input(USER_INDEX)).num_rows,
            pq.read_metadata(ctx.input(ITEM_INDEX)).num_rows,
        )
    ids = pq.read_table(ctx.input(TRAIN), columns=["user_id", "item_id"])
    return (
        int(pc.count_distinct(ids["user_id"]).as_py()),
        int(pc.count_distinct(ids["item_id"]).as_py()),
    )


def _data_section(ctx: TaskContext[Config], summary: dict[str, Any]) -> Section:
    # only the columns shown: the ids' strings are the bulk of the split and are not needed
    train = pd.read_parquet(ctx.input(TRAIN), columns=["timestamp", "rating"])
    test = pd.read_parquet(ctx.input(TEST), columns=["timestamp"])
    users, items = _distinct_ids(ctx)
    summary.update(train_rows=len(train), test_rows=len(test), users=users, items=items)
    section = Section(
        "Data",
        [
            f"- train events: {len(train):,}; test events: {len(test):,}",
            f"- users: {summary['users']:,}; items: {summary['items']:,}",
            f"- time range: {train['timestamp'].min()} → {test['timestamp'].max()}",
        ],
    )
    # value_counts of an int column: int keys (pandas' stubs only know they are Hashable).
    ratings = cast(
        dict[int, int], train["rating"].dropna().round().astype(int).value_counts().to_dict()
    )
    section.lines.append(f"- rating events: {sum(ratings.values()):,}")
    if ctx.config.charts and ratings:
        section.charts.append(("rating distribution", charts.rating_distribution(ratings)))
    return section


def _validation_section(ctx: TaskContext[Config], summary: dict[str, Any]) -> Section:
    report = ctx.document(VALIDATION_REPORT)
    rows = [[name, r.failed_rows, r.fraction] for name, r in sorted(report.rules.items())]
    interactions = report.interactions
    summary["rows_quarantined"] = interactions.rows_quarantined
    return Section(
        "Validation",
        [
            f"- rows in: {interactions.rows_in}; valid: {interactions.rows_valid}; "
            f"quarantined: {interactions.rows_quarantined}",
            "",
            *table(["rule", "failed rows", "fraction"], rows),
        ],
    )


def _training_section(ctx: TaskContext[Config], summary: dict[str, Any]) -> Section:
    training = ctx.document(TRAINING_SUMMARY)
    candidates = training.refitted()
    rows = [
        [n, c.model_type, len(c.history), c.best_epoch, c.n_train] for n, c in candidates.items()
    ]
    skipped = _left_out_lines(training)
    section = Section(
        "Training",
        [
            *table(["candidate", "model type", "epochs", "best epoch", "training rows"], rows),
            "",
            "- fit times: the training task's metrics (`<candidate>_fit_seconds`)",
            *(["", *skipped] if skipped else []),
            *_tuning_lines(training),
        ],
    )
    histories = {n: c.history for n, c in candidates.items() if c.history}
    if ctx.config.charts and histories:
        section.charts.append(("training curves", charts.training_curves(histories)))
    tuning = training.tuning or {}
    searches = {
        name: (values, best_so_far(values, record.direction))
        for name, record in tuning.items()
        if (values := [t.value for t in record.trials])
    }
    if ctx.config.charts and searches:
        metric = ", ".join(sorted({tuning[name].metric for name in searches}))
        section.charts.append(("tuning curves", charts.tuning_curves(metric, searches)))
    return section


def _left_out_lines(training: TrainingSummary) -> list[str]:
    """The candidates without a model file, and why: skipped (not applicable to the data)
    or validated only (they lost on validation and were not refitted)."""
    lines = [f"- skipped **{n}**: {reason}" for n, reason in training.skipped().items()]
    lines += [
        f"- validated only, not refitted: **{n}**: {c.not_refit}"
        + (f"; {c.screened_out}" if c.screened_out else "")
        for n, c in training.trained().items()
        if c.not_refit is not None
    ]
    return lines


def _tuning_lines(training: TrainingSummary) -> list[str]:
    """Each tuned candidate's search: what was searched, the configured and the best
    setting's validation figure, and the trials with the best value so far (the curve).
    Trial times are run facts (the training task's metrics), so they are not shown."""
    shown = 30  # trials listed per candidate; all of them are in training_summary.json

    def short(value: object) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines: list[str] = []
    for name, record in (training.tuning or {}).items():
        first = record.trials[0] if record.trials else None
        configured = first.value if first and first.params == record.configured else None
        best = record.best
        stopped = "trials" if record.stopped == "n_trials" else "time budget"
        lines += [
            "",
            f"Tuning of **{name}** ({record.metric} on the validation split, "
            f"{record.direction}; {len(record.trials)} trials, stopped by its {stopped}; "
            f"seed {record.seed}):",
            "",
        ]
        if best is None:
            lines += ["- no trial could be scored: the configured parameters were kept", ""]
            continue
        chosen = ", ".join(f"{k}={short(v)}" for k, v in best.params.items())
        lines.append(
            f"- best: trial {best.number} ({chosen}): {best.value:.4f}; the configured "
            "setting: "
            + (f"{configured:.4f}" if configured is not None else "not tried (outside the space)")
        )
        curve = best_so_far([t.value for t in record.trials], record.direction)
        rows = [
            [t.number, ", ".join(f"{k}={short(v)}" for k, v in t.params.items()), t.value, so_far]
            for t, so_far in zip(record.trials, curve, strict=True)
        ]
        lines += [
            "",
            *table(["trial", "parameters", record.metric, "best so far"], rows[:shown]),
        ]
        if len(rows) > shown:
            lines.append(f"- {len(rows) - shown} more trials in training_summary.json")
    return lines


def _evaluation_section(ctx: TaskContext[Config], summary: dict[str, Any]) -> Section:
    evaluation = ctx.document(EVALUATION)
    models = evaluation.models
    names = sorted({m for metrics in models.values() for m in metrics})
    rows = [[name, *(metrics.get(m) for m in names)] for name, metrics in models.items()]
    best = evaluation.best_model
    summary["metrics"] = evaluation.best_metrics
    summary["best_model"] = best
    gates = [[g.name, _gate_result(g), g.detail] for g in evaluation.gates]
    return Section(
        "Model quality",
        [
            f"- selected: **{best}** by {evaluation.selection_metric} on the "
            f"{evaluation.selected_on} split (baseline: {evaluation.baseline}); gates "
            f"{'passed' if evaluation.passed else 'FAILED'}",
            *_selection_lines(evaluation),
            *([f"- protocol: {evaluation.protocol}"] if evaluation.protocol else []),
            f"- evaluated on {evaluation.eval_users:,} users"
            + (
                " held out of training whole (user_holdout), each ranked from their fold-in history"
                if evaluation.protocol == "user_holdout"
                else ""
            )
            + (
                f" ({evaluation.test_interactions:,} held-out interactions)"
                if evaluation.test_interactions is not None
                else ""
            )
            + (f", a sample of {evaluation.test_users:,}" if evaluation.eval_users_sampled else ""),
            "",
            "Test split:",
            "",
            *table(["model", *names], rows),
            "",
            *_side_by_side(evaluation),
            *_interval_lines(evaluation),
            *(table(["gate", "result", "detail"], gates) if gates else ["- no gates configured"]),
        ],
    )


def _selection_lines(evaluation: EvaluationReport) -> list[str]:
    """How the selection was made, and what to do when personalisation did not pay."""
    if evaluation.selected_on == "test":
        return [
            "- **no validation split**: every candidate was scored on the test split and the "
            "best one chosen there, so its test figure is optimistic (set "
            "tasks.training.config.validation.method to auto)"
        ]
    lines = [
        "- candidates were compared on a validation split cut from the training data; the "
        "test split was scored once, by the selected model and the baseline"
    ]
    if evaluation.baseline_fallback:
        metric = evaluation.selection_metric
        lines.append(
            f"- **personalisation did not pay on this data**: the best personalised "
            f"candidate, {evaluation.best_personalised}, did not beat the baseline "
            f"{evaluation.baseline} by {metric} on validation, so the baseline is the deploy "
            "candidate (deploy keeps the current champion, or serves the baseline when there "
            "is none). To try: ease or item_knn candidates (item-based models often beat "
            "popularity where factor models do not), a stronger ALS regularisation or more "
            "factors, event weights that favour purchases, or a longer history per user."
        )
    return lines


def _side_by_side(evaluation: EvaluationReport) -> list[str]:
    """Each candidate's validation figure next to its test figure (when it has one), so the
    selection on validation changes no result silently."""
    if not evaluation.validation:
        return []
    metric = evaluation.selection_metric
    rows = [
        [
            name,
            metrics.get(metric),
            evaluation.models.get(name, {}).get(metric),
            "selected" if name == evaluation.best_model else "",
        ]
        for name, metrics in evaluation.validation.items()
    ]
    return [
        f"Validation and test side by side ({metric}; test only for the selected model and "
        "the baseline):",
        "",
        *table(["model", f"validation {metric}", f"test {metric}", ""], rows),
        "",
    ]


def _gate_result(gate: GateResult) -> str:
    """pass, FAIL, or inconclusive (a warning, or blocking with ``gates.inconclusive: block``)."""
    if gate.outcome == "inconclusive":
        return "inconclusive (blocks)" if gate.blocking() else "inconclusive (warning)"
    return "pass" if gate.passed else "FAIL"


def _interval_lines(evaluation: EvaluationReport) -> list[str]:
    """95 % bootstrap intervals over users of each candidate's ranking metrics."""
    if not evaluation.intervals:
        return []
    metrics = sorted({m for by_metric in evaluation.intervals.values() for m in by_metric})
    rows = [
        [name, *(_interval(by_metric.get(m)) for m in metrics)]
        for name, by_metric in evaluation.intervals.items()
    ]
    return [
        f"95 % intervals over users ({evaluation.bootstrap_resamples} bootstrap resamples):",
        "",
        *table(["model", *metrics], rows),
        "",
    ]


def _interval(bounds: tuple[float | None, float | None] | None) -> str:
    if bounds is None or bounds[0] is None or bounds[1] is None:
        return "–"
    return f"{bounds[0]:.4f}–{bounds[1]:.4f}"


def _top_items_section(ctx: TaskContext[Config], summary: dict[str, Any]) -> Section:
    n = ctx.config.top_n_items
    recs = pd.read_parquet(ctx.input(RECOMMENDATIONS), columns=["item_id"])
    items = pd.read_parquet(ctx.input(ITEM_INDEX), columns=["item_id", "category"])
    top = (
        recs["item_id"]
        .value_counts()
        .head(n)
        .rename_axis("item_id")
        .reset_index(name="times_recommended")
    )
    top = top.merge(items, on="item_id", how="left")
    return Section(
        f"Top {n} recommended items",
        table(
            ["item", "category", "times recommended"],
            top[["item_id", "category", "times_recommended"]].to_numpy().tolist(),
        ),
    )


def _changes_section(ctx: TaskContext[Config], summary: dict[str, Any]) -> Section:
    previous = ctx.previous
    if previous is None or not previous.has("report_summary"):
        return Section(CHANGES_TITLE, ["- first report: nothing to compare with yet"])
    before = ReportSummary.model_validate_json(previous.path("report_summary").read_bytes())
    rows = []
    for key, value in summary.get("metrics", {}).items():
        old = before.metrics.get(key)
        if isinstance(value, (int, float)) and isinstance(old, (int, float)):
            rows.append([key, old, value, value - old])
    for key in ("train_rows", "users", "items", "rows_quarantined"):
        old_count = getattr(before, key)
        if isinstance(summary.get(key), int) and isinstance(old_count, int):
            rows.append([key, old_count, summary[key], summary[key] - old_count])
    return Section(
        CHANGES_TITLE,
        [
            f"- compared with run {previous.run_id} "
            f"(model {before.best_model} → {summary.get('best_model')})",
            "",
            *table(["measure", "previous", "now", "change"], rows),
        ],
    )


def _verdict(ctx: TaskContext[Config]) -> Section | None:
    """First thing in the report when the selected model may not be deployed: which gates
    stopped it (the report is then written by the step whose checks failed)."""
    if not ctx.has_input(EVALUATION):
        return None
    evaluation = ctx.document(EVALUATION)
    blocking = [gate for gate in evaluation.gates if gate.blocking()]
    if evaluation.passed or not blocking:
        return None
    return Section(
        "Not deployable",
        [
            f"- **{evaluation.best_model}** failed {len(blocking)} blocking quality gate(s), "
            "so it is not deployed:",
            *(f"  - `{gate.name}`: {gate.detail}" for gate in blocking),
            "- the gates are set under `tasks.evaluation.config.gates`; see *Model quality*.",
        ],
    )


SECTIONS: list[tuple[str, Callable[[TaskContext[Config], dict[str, Any]], Section]]] = [
    ("Data", _data_section),
    ("Validation", _validation_section),
    ("Training", _training_section),
    ("Model quality", _evaluation_section),
    ("Top recommended items", _top_items_section),
]


def run(ctx: TaskContext[Config]) -> TaskResult:
    config = ctx.config
    summary: dict[str, Any] = {}
    verdict = _verdict(ctx)
    sections = [verdict] if verdict else []
    rendered = []
    for title, build in SECTIONS:
        try:
            sections.append(build(ctx, summary))
            rendered.append(title)
        except UpstreamArtifactError as exc:
            sections.append(Section(title, [f"- not run ({exc})"]))
    sections.append(_changes_section(ctx, summary))  # last: see reporting.render.stable_text
    subtitle = (
        f"Pipeline {ctx.pipeline_name}. When this run ran and how long its tasks took: "
        "`python -m recomart_pipeline runs show RUN_ID` (the run id names this report's copy "
        f"under {config.output_dir}/)."
    )
    markdown = to_markdown(config.title, subtitle, sections)
    page = to_html(config.title, subtitle, sections)
    md_path, html_path, summary_path = (
        ctx.output_path("report.md"),
        ctx.output_path("report.html"),
        ctx.output_path("report_summary.json"),
    )
    md_path.write_text(markdown)
    html_path.write_text(page)
    folder = ctx.resolve_project_path(config.output_dir)
    summary["report_path"] = str(Path(folder) / f"report_{ctx.run_id}.html")
    ctx.write_document(summary_path.name, ReportSummary.model_validate(summary))
    for name, text in (
        (f"report_{ctx.run_id}.md", markdown),
        (f"report_{ctx.run_id}.html", page),
        ("latest.md", markdown),
        ("latest.html", page),
    ):
        write_text_atomic(folder / name, text)
    ctx.logger.info(
        "report rendered", extra={"fields": {"sections": rendered, "path": str(folder)}}
    )
    return TaskResult(
        outputs={"report_md": md_path, "report_html": html_path, "report_summary": summary_path},
        metrics={"sections": len(rendered)},
        metadata={
            # the UI's Markdown view shows the charts too (inline images)
            "report_markdown": to_markdown(config.title, subtitle, sections, inline_charts=True),
            "report_path": summary["report_path"],
            "compared_with_run": (
                ctx.previous.run_id if ctx.previous and ctx.previous.has("report_summary") else None
            ),
        },
    )
