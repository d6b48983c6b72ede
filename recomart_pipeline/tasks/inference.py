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
import pyarrow.parquet as pq
import scipy.sparse as sp

from recomart_pipeline.contract.errors import SchemaError
from recomart_pipeline.contract.task import TaskContext, TaskResult
from recomart_pipeline.ml.base import Recommender
from recomart_pipeline.ml.data import read_implicit, read_index
from recomart_pipeline.ml.persistence import load_model
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
    model: Recommender, k: int, exclude: sp.csr_matrix | None, chunk: int
) -> Batches:
    """``(users, items, scores)`` per write batch, scored on this machine."""
    for start in range(0, model.n_users, WRITE_BATCH_USERS):
        users = np.arange(start, min(start + WRITE_BATCH_USERS, model.n_users), dtype=np.int32)
        items, scores = model.recommend(users, k, exclude, chunk_size=chunk)
        yield users, items, scores


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
    with ExitStack() as stack:
        if ctx.engine == "spark":
            batches = _spark_batches(ctx, stack, model, exclude, chunk, spark)
        else:
            batches = _local_batches(model, config.k, exclude, chunk)
        path, rows, coverage = _write(ctx, batches, user_ids, item_ids)
    metrics = {"users": int(user_ids.size), "k": config.k, "rows": rows, "coverage": coverage}
    ctx.logger.info("recommendations written", extra={"fields": metrics})
    return TaskResult(
        outputs={"recommendations": path},
        metrics=metrics,
        metadata={
            "model_type": model.model_type,
            "model_sha256": evaluation.model_sha256,
            "engine": ctx.engine,
            **spark,
        },
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
    with pq.ParquetWriter(path, RECOMMENDATION_SCHEMA) as writer:
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
            writer.write_table(table)
            rows += table.num_rows
    return path, rows, float(recommended.sum() / item_ids.size)
