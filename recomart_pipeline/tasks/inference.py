"""Batch top-K recommendations for every user from the selected model.

Reads ``model`` and ``evaluation`` (for the model's sha256) from evaluation and
``user_index``, ``item_index`` and ``train_implicit`` from features. The model scores users
in small chunks (``chunk_size`` users x n_items scores per worker thread) and the results are
appended to the parquet file in batches of ``WRITE_BATCH_USERS`` users, so memory stays
bounded by the chunk and the batch, not by the catalogue times the user base.

With the ``spark`` engine the users are cut into blocks (whole chunks of each write batch)
and Spark tasks score them: each runs the same ``recommend`` on its block, with the model
file broadcast and the block's seen items shipped with it (``engines.spark_als``). The
driver writes the blocks back in user order through the same writer, so the file is
byte-identical to the one-machine path's for the same model.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from recomart_pipeline.contract.errors import SchemaError
from recomart_pipeline.contract.files import sha256_file
from recomart_pipeline.contract.task import TaskContext, TaskResult
from recomart_pipeline.deployment.serving_arrays import DEFAULT_TOP_K, save_ranked
from recomart_pipeline.ml.base import Recommender
from recomart_pipeline.ml.data import read_implicit, read_index
from recomart_pipeline.ml.persistence import load_model
from recomart_pipeline.tasks._tables import ParquetSink
from recomart_pipeline.tasks.specs.inference import (
    EVALUATION,
    ITEM_INDEX,
    MODEL,
    TRAIN_IMPLICIT,
    USER_INDEX,
    Config,
)

# Users per parquet write: large enough that writing costs little per row, small enough that
# a batch's k rows per user (ids, ranks, scores) stay a few tens of MiB.
WRITE_BATCH_USERS = 65_536

RECOMMENDATION_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("rank", pa.int16()),
        ("item_id", pa.string()),
        ("score", pa.float32()),
    ]
)


Batches = Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]


def _local_batches(
    model: Recommender,
    k: int,
    exclude: sp.csr_matrix | None,
    chunk: int,
    ranked: tuple[np.ndarray, np.ndarray] | None = None,
) -> Batches:
    """``(users, items, scores)`` per write batch, scored on this machine.

    With ``ranked`` (two ``n_users x K`` arrays, ``K >= k``) each user's top ``K`` is ranked
    and stored there, and the batches hold its first ``k``: the ranking is a total order
    (score, then item), so the first ``k`` of the top ``K`` are exactly the top ``k``."""
    depth = k if ranked is None else max(k, ranked[0].shape[1])
    for start in range(0, model.n_users, WRITE_BATCH_USERS):
        users = np.arange(start, min(start + WRITE_BATCH_USERS, model.n_users), dtype=np.int32)
        items, scores = model.recommend(users, depth, exclude, chunk_size=chunk)
        if ranked is not None:
            width = ranked[0].shape[1]
            ranked[0][users], ranked[1][users] = items[:, :width], scores[:, :width]
        yield users, items[:, :k], scores[:, :k]


def _spark_batches(
    ctx: TaskContext[Config],
    stack: ExitStack,
    model: Recommender,
    exclude: sp.csr_matrix | None,
    chunk: int,
    facts: dict[str, object],
) -> Batches:
    """The same batches, scored by Spark over user blocks (``facts`` gets how many blocks
    and the Spark version, for the task's metadata)."""
    from recomart_pipeline.engines import spark_als

    work = stack.enter_context(spark_als.spark_work(ctx.engine_options, ctx.task_name))
    blocks, batches = spark_als.recommend_blocks(
        work, Path(ctx.input(MODEL)), model, ctx.config.k, exclude, chunk, WRITE_BATCH_USERS
    )
    facts.update(spark_blocks=blocks, spark_version=work.version)
    ctx.logger.info(f"Spark scored {blocks} user blocks", extra={"fields": facts})
    return batches


def run(ctx: TaskContext[Config]) -> TaskResult:
    """Write ``recommendations`` (user_id, rank, item_id, score) for every user."""
    config = ctx.config
    evaluation = ctx.document(EVALUATION)
    model = load_model(ctx.input(MODEL), expected_sha256=evaluation.model_sha256)
    user_ids = read_index(ctx.input(USER_INDEX), "user_id", "user_idx")
    item_ids = read_index(ctx.input(ITEM_INDEX), "item_id", "item_idx")
    if (model.n_users, model.n_items) != (user_ids.size, item_ids.size):
        raise SchemaError(
            f"the model was trained on {model.n_users} users x {model.n_items} items, but the "
            f"index tables have {user_ids.size} x {item_ids.size}",
            hint="run evaluation and inference on the same features run as training",
        )
    exclude = read_implicit(ctx.input(TRAIN_IMPLICIT)) if config.exclude_seen else None
    chunk = config.chunk_size or model.default_chunk_size()
    plan = {
        "users": int(user_ids.size),
        "items": int(item_ids.size),
        "k": config.k,
        "chunk_size": chunk,
        "model_type": model.model_type,
        "engine": ctx.engine,
    }
    ctx.logger.info("recommending", extra={"fields": plan})
    spark: dict[str, object] = {}
    outputs: dict[str, Path] = {}
    with ExitStack() as stack:
        if ctx.engine == "spark":
            batches = _spark_batches(ctx, stack, model, exclude, chunk, spark)
            ranked = None
        else:
            ranked = _serving_ranking(model) if exclude is not None else None
            batches = _local_batches(model, config.k, exclude, chunk, ranked)
        outputs["recommendations"], rows, coverage = _write(ctx, batches, user_ids, item_ids)
    if ranked is not None:
        # deploy registers these as the service's precomputed answers instead of ranking
        # every user a second time (it checks they come from its model and training data)
        outputs["serving_topk"] = save_ranked(
            ctx.output_path("serving_topk.npz"),
            ranked,
            model_sha256=evaluation.model_sha256,
            seen_sha256=sha256_file(ctx.input(TRAIN_IMPLICIT)),
        )
    metrics = {"users": int(user_ids.size), "k": config.k, "rows": rows, "coverage": coverage}
    ctx.logger.info("recommendations written", extra={"fields": metrics})
    return TaskResult(
        outputs=outputs,
        metrics=metrics,
        metadata={
            "model_type": model.model_type,
            "model_sha256": evaluation.model_sha256,
            "engine": ctx.engine,
            **spark,
        },
    )


def _serving_ranking(model: Recommender) -> tuple[np.ndarray, np.ndarray]:
    """Room for every user's top ``DEFAULT_TOP_K`` (at most the catalogue), as deploy's
    serving arrays hold them (unfilled slots: item -1, score NaN, as ``recommend`` leaves).

    Not initialised: ``_local_batches`` writes every user's row whole (``recommend`` has
    already set the unfilled slots), and filling ~780 MB first took ~1 s at 20M."""
    width = max(1, min(DEFAULT_TOP_K, model.n_items))
    return (
        np.empty((model.n_users, width), np.int32),
        np.empty((model.n_users, width), np.float32),
    )


def _write(
    ctx: TaskContext[Config], batches: Batches, user_ids: np.ndarray, item_ids: np.ndarray
) -> tuple[Path, int, float]:
    """Write the batches; return the file, its rows and the share of items recommended."""
    k = ctx.config.k
    path = ctx.output_path("recommendations.parquet")
    # Arrow string arrays, so each batch's id columns are one C++ take, not Python objects.
    user_column, item_column = pa.array(user_ids, pa.string()), pa.array(item_ids, pa.string())
    ranks = np.arange(1, k + 1, dtype=np.int16)
    recommended = np.zeros(item_ids.size, dtype=bool)
    rows = 0
    # The sink writes each row group on its own thread while the next batch is ranked.
    with ParquetSink(path, RECOMMENDATION_SCHEMA) as writer:
        for users, items, scores in batches:
            filled = items >= 0
            recommended[items[filled]] = True
            table = pa.table(
                {
                    "user_id": user_column.take(np.repeat(users, k)[filled.ravel()]),
                    "rank": np.broadcast_to(ranks, items.shape)[filled],
                    "item_id": item_column.take(items[filled]),
                    "score": scores[filled],
                },
                schema=RECOMMENDATION_SCHEMA,
            )
            writer.write(table)
            rows += table.num_rows
    return path, rows, float(recommended.sum() / item_ids.size)
