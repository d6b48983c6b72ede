"""Training and batch inference on Spark: MLlib's implicit ALS, and top-K by user blocks.

Why here: the ``ml`` library is numpy/numba on one machine and must not need pyspark; the
tasks choose this path when their engine is ``spark``. Whatever Spark computes ends up in
the project's own objects, so evaluation, the registry and serving never know Spark ran:

* ``fit_als`` trains ``pyspark.ml.recommendation.ALS`` (``implicitPrefs``) on the same
  confidences the numba ALS reads and returns an ``ALSRecommender`` built from the learned
  factors (``from_arrays``: same class, same persisted format).
* ``recommend_blocks`` splits the users into blocks, ships each block's seen items with it,
  broadcasts the model file, and runs the model's own ``recommend`` in each Spark task; the
  driver gets the blocks back in user order, so the written file is byte-identical to the
  one-machine path's.

The hyper-parameter mapping (docs/spark_training.md): ``rank = n_factors``, ``maxIter =
n_iterations``, ``alpha = alpha``, ``seed = seed``, ``nonnegative = False``,
``coldStartStrategy = "drop"``. Spark's implicit ALS gives a cell of value ``r`` the
confidence ``1 + alpha·|r|`` and preference ``r > 0``, like ours (Hu et al.), so Spark
reads the interaction values themselves (after ``confidence: log`` / ``weighting: bm25``
when set: the value ``v`` in ``1 + alpha·v``). Spark's ``regParam`` is not our λ: MLlib
scales it per row by the row's number of positives (ALS-WR), so ``regParam = λ · n_users /
nnz`` (``spark_reg_param``): the user with the mean number of positives gets our λ.
Spark solves each row exactly (Cholesky) where ours takes ``cg_steps`` conjugate-gradient
steps, and initialises differently (unit-norm random rows), so the factors differ; the
metrics agree within a tolerance (``recomart_pipeline_tests/engines/test_spark_training.py``).

Files Spark reads are written to the session's scratch folder (``engines.spark.Scratch``):
``execution.spark.scratch`` on a cluster, a private local folder for ``local[*]`` masters.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from recomart_pipeline.contract.errors import TaskError
from recomart_pipeline.engines.spark import (
    Scratch,
    SparkSession,
    SparkUnavailable,
    check_available,
)
from recomart_pipeline.ml.als import ALSRecommender, confidence_matrix
from recomart_pipeline.ml.base import EpochCallback, FitReport, Recommender, TrainingData
from recomart_pipeline.ml.params import ALSParams
from recomart_pipeline.ml.persistence import load_model

# MLlib's ALS checkpoints its factors every this many sweeps. Without checkpoints the
# factors' lineage grows by a stage per sweep, and serialising a task's lineage overflows the
# JVM's thread stack after ~20 sweeps here (a StackOverflowError: seen at 15 sweeps on a
# CI machine whose stack held fewer frames); every 5 costs nothing measurable at 15 sweeps.
CHECKPOINT_EVERY = 5

# Cells per Parquet row group of the confidences Spark reads (12 bytes a cell).
ROW_GROUP_CELLS = 1 << 20
# Stored cells per chunk of the objective computed after the fit (nnz x k float32 temporaries).
LOSS_CHUNK_CELLS = 1 << 18
# Blocks per Spark core for batch inference: several, so a slow task does not hold up the
# stage, few enough that each block's scoring amortises loading the model.
BLOCKS_PER_CORE = 4


class SparkWork:
    """One Spark session (and its scratch folder) for a task's Spark work; started on first
    use and stopped by ``close`` (an active session of the caller is reused and left
    running; the scratch folder is removed either way)."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self._settings = dict(settings)
        self._session: SparkSession | None = None

    @property
    def session(self) -> Any:
        """The pyspark ``SparkSession``."""
        if self._session is None:
            check_available()
            master = str(self._settings.get("master") or "local[*]")
            if master.startswith("local"):
                # Python tasks (inference) run this interpreter, which has this package; a
                # cluster's executors use their own PYSPARK_PYTHON.
                os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            self._session = SparkSession(self._settings)
        return self._session.spark

    @property
    def version(self) -> str:
        return str(self.session.version)

    @property
    def scratch(self) -> Scratch:
        """The session's scratch folder (starts the session if needed)."""
        self.session  # noqa: B018 - the scratch folder comes with the session
        assert self._session is not None
        return self._session.scratch

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


@contextmanager
def spark_work(settings: Mapping[str, Any], task: str) -> Iterator[SparkWork]:
    """Task ``task``'s Spark session, started now: a missing piece (pyspark, Java) is the
    task's error, naming the fix and how to run the task on this machine instead."""
    work = SparkWork(settings)
    try:
        try:
            work.session  # noqa: B018 - started here, on purpose
        except SparkUnavailable as missing:
            raise TaskError(
                str(missing),
                hint=missing.fix(f"run {task} on this machine (tasks.{task}.engine: pandas)"),
            ) from None
        yield work
    finally:
        work.close()


def spark_values(matrix: sp.csr_matrix, params: ALSParams) -> sp.csr_matrix:
    """The value ``v`` of every positive cell such that ours is ``c = 1 + alpha·v`` (Spark's
    ``1 + alpha·|r|`` with ``r = v``): the interactions themselves by default, after the
    ``confidence: log`` / ``weighting: bm25`` transform when set. Cells whose value is 0 are
    left out (no interaction, as the numba ALS drops them)."""
    by_user = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    by_user.eliminate_zeros()
    by_user.sort_indices()
    if params.confidence != "linear" or params.weighting != "none":
        transformed = confidence_matrix(by_user, params.model_copy(update={"alpha": 1.0}))
        transformed.data -= np.float32(1.0)
        by_user = transformed
    return by_user


def spark_reg_param(params: ALSParams, positives: int, n_users: int) -> float:
    """MLlib's ``regParam`` for our λ: Spark penalises a row by ``regParam · n_positives``,
    so the user with the mean number of positives gets λ."""
    return float(params.regularization) * n_users / max(1, positives)


def _write_cells(matrix: sp.csr_matrix, sink: IO[bytes]) -> None:
    """``user, item, value`` rows of the stored cells, streamed in row groups."""
    schema = pa.schema([("user", pa.int32()), ("item", pa.int32()), ("value", pa.float32())])
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int32), np.diff(matrix.indptr))
    with pq.ParquetWriter(sink, schema) as writer:
        for start in range(0, matrix.nnz, ROW_GROUP_CELLS):
            cut = slice(start, start + ROW_GROUP_CELLS)
            writer.write_table(
                pa.table(
                    {
                        "user": rows[cut],
                        "item": matrix.indices[cut].astype(np.int32),
                        "value": matrix.data[cut],
                    },
                    schema=schema,
                )
            )


def _factors(frame: Any, size: int, rank: int) -> np.ndarray:
    """MLlib's ``(id, features)`` factor table as a dense ``size x rank`` float32 array;
    an id Spark never saw (no positive cell) keeps a zero factor."""
    table = frame.select("id", "features").toArrow()
    out = np.zeros((size, rank), np.float32)
    if table.num_rows:
        ids = table.column("id").to_numpy().astype(np.int64)
        features = table.column("features").combine_chunks()
        values = features.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
        out[ids] = values.reshape(-1, rank)
    return out


def _objective(
    matrix: sp.csr_matrix, extra: np.ndarray, x: np.ndarray, y: np.ndarray, lam: float
) -> float:
    """The numba ALS's per-cell training loss (``train_loss``) of these factors, so the two
    trainers' histories are comparable: ``Σ_all s² + Σ_stored (c(1 - s)² - s²) + λ(‖X‖² +
    ‖Y‖²)`` over the stored cells, ``s = x_u·y_i``."""
    dense = float(np.sum((x.T.astype(np.float64) @ x) * (y.T.astype(np.float64) @ y)))
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    stored = 0.0
    for start in range(0, matrix.nnz, LOSS_CHUNK_CELLS):
        cut = slice(start, start + LOSS_CHUNK_CELLS)
        s = np.einsum("nk,nk->n", x[rows[cut]], y[matrix.indices[cut]]).astype(np.float64)
        c = 1.0 + extra[cut].astype(np.float64)
        stored += float(np.sum(c * (1.0 - s) ** 2 - s * s))
    penalty = lam * float(np.sum(x.astype(np.float64) ** 2) + np.sum(y.astype(np.float64) ** 2))
    return (dense + stored + penalty) / max(1, matrix.nnz)


@contextmanager
def _checkpoint_folder(context: Any, scratch: Scratch) -> Iterator[None]:
    """A folder for MLlib's checkpoints while ALS fits: it checkpoints only where the context
    has one. The scratch's (shared with the executors on a cluster) unless the caller's
    context has its own; unset and removed afterwards, so a caller's session that outlives
    the scratch neither points at it nor leaves the last checkpoint behind."""
    if context.getCheckpointDir() is not None:
        yield
        return
    name = scratch.new_name("checkpoints")
    context.setCheckpointDir(scratch.uri(name))
    try:
        yield
    finally:
        # pyspark has no way to unset the folder; the JVM context's own field takes None.
        # A JVM that died in the fit has nothing to unset: the fit's own error must surface.
        with suppress(Exception):
            getattr(context._jsc.sc(), "checkpointDir_$eq")(context._jvm.scala.Option.empty())
        scratch.remove(name)


def fit_als(
    work: SparkWork,
    train: TrainingData,
    params: ALSParams,
    on_epoch: EpochCallback | None = None,
) -> tuple[ALSRecommender, FitReport]:
    """Train MLlib's implicit ALS on ``train``'s interactions; return our ALS model holding
    the learned factors and a report whose one history record is the final iteration's
    objective in the numba ALS's terms (MLlib reports none per iteration)."""
    from pyspark.ml.recommendation import ALS

    started = time.perf_counter()
    values = spark_values(train.interactions(), params)
    spark = work.session
    scratch = work.scratch
    name = scratch.new_name("confidences") + ".parquet"
    with scratch.open_write(name) as sink:
        _write_cells(values, sink)
    cells = spark.read.parquet(scratch.uri(name))
    blocks = max(1, int(spark.sparkContext.defaultParallelism))
    estimator = ALS(
        rank=params.n_factors,
        maxIter=params.n_iterations,
        regParam=spark_reg_param(params, values.nnz, train.n_users),
        alpha=params.alpha,
        implicitPrefs=True,
        nonnegative=False,
        coldStartStrategy="drop",
        seed=params.seed,
        userCol="user",
        itemCol="item",
        ratingCol="value",
        numUserBlocks=blocks,
        numItemBlocks=blocks,
        checkpointInterval=CHECKPOINT_EVERY,
    )
    with _checkpoint_folder(spark.sparkContext, scratch):
        fitted = estimator.fit(cells)
    x = _factors(fitted.userFactors, train.n_users, params.n_factors)
    y = _factors(fitted.itemFactors, train.n_items, params.n_factors)
    scratch.remove(name)
    arrays = {"user_factors": x, "item_factors": y}
    model = ALSRecommender.from_arrays(params, train.n_users, train.n_items, arrays)
    assert isinstance(model, ALSRecommender)
    extra = (np.float32(params.alpha) * values.data).astype(np.float32)
    loss = _objective(values, extra, x, y, params.regularization)
    report = FitReport(0.0, n_train=int(values.nnz))
    report.history.append({"epoch": params.n_iterations, "train_loss": loss})
    if on_epoch is not None:
        on_epoch(report.history[-1])
    report.fit_seconds = time.perf_counter() - started
    return model, report


# -- batch inference --------------------------------------------------------------------------

# The model each Python worker loaded, by sha256: a worker scores many blocks of one model.
_LOADED: dict[str, Recommender] = {}


def _worker_model(sha256: str, payload: bytes, suffix: str) -> Recommender:
    model = _LOADED.get(sha256)
    if model is None:
        with tempfile.TemporaryDirectory(prefix="recomart-model-") as folder:
            path = Path(folder) / f"model{suffix}"
            path.write_bytes(payload)
            model = load_model(path, expected_sha256=sha256)
        _LOADED.clear()
        _LOADED[sha256] = model
    return model


BLOCK_SCHEMA = pa.schema(
    [
        ("block", pa.int32()),
        ("start", pa.int64()),
        ("stop", pa.int64()),
        ("indptr", pa.binary()),
        ("indices", pa.binary()),
        ("data", pa.binary()),
    ]
)
RESULT_SCHEMA = pa.schema([("block", pa.int32()), ("items", pa.binary()), ("scores", pa.binary())])


def user_blocks(n_users: int, batch_users: int, chunk: int, parallelism: int) -> list[range]:
    """Contiguous user ranges: each write batch (``batch_users``) cut into blocks whose size
    is a multiple of ``chunk`` (so each block's chunks are the one-machine path's chunks),
    about ``BLOCKS_PER_CORE`` blocks per core over all users."""
    target = -(-n_users // max(1, parallelism * BLOCKS_PER_CORE))
    size = max(chunk, -(-target // chunk) * chunk)
    blocks: list[range] = []
    for batch in range(0, n_users, batch_users):
        end = min(batch + batch_users, n_users)
        blocks.extend(range(s, min(s + size, end)) for s in range(batch, end, size))
    return blocks


def _block_rows(blocks: list[range], exclude: sp.csr_matrix | None) -> pa.Table:
    """One row per block: its users and (when excluding) its rows of seen items."""
    columns: dict[str, list[Any]] = {name: [] for name in BLOCK_SCHEMA.names}
    for number, users in enumerate(blocks):
        columns["block"].append(number)
        columns["start"].append(users.start)
        columns["stop"].append(users.stop)
        if exclude is None:
            parts = [b"", b"", b""]
        else:
            rows = exclude[users.start : users.stop]
            parts = [
                rows.indptr.astype(np.int64).tobytes(),
                rows.indices.astype(np.int32).tobytes(),
                rows.data.astype(np.float32).tobytes(),
            ]
        for name, part in zip(("indptr", "indices", "data"), parts, strict=True):
            columns[name].append(part)
    return pa.table(columns, schema=BLOCK_SCHEMA)


def _block_exclude(row: Mapping[str, Any], n_users: int, n_items: int) -> sp.csr_matrix | None:
    """The model-shaped seen-items matrix holding only this block's rows."""
    if not row["indptr"]:
        return None
    start, stop = int(row["start"]), int(row["stop"])
    local = np.frombuffer(row["indptr"], np.int64)
    indptr = np.zeros(n_users + 1, np.int64)
    indptr[start + 1 : stop + 1] = local[1:]
    indptr[stop + 1 :] = local[-1]
    indices = np.frombuffer(row["indices"], np.int32)
    data = np.frombuffer(row["data"], np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=(n_users, n_items))


def recommend_blocks(
    work: SparkWork,
    model_path: Path,
    model: Recommender,
    k: int,
    exclude: sp.csr_matrix | None,
    chunk: int,
    batch_users: int,
) -> tuple[int, Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """The number of user blocks Spark scored, and ``(users, items, scores)`` per write batch
    of ``batch_users`` users in user order. Each Spark task runs ``model.recommend`` on its
    blocks with the model file broadcast, so the arrays are those the one-machine path
    computes. Spark's work is done when this returns; the batches are sliced from its result."""
    spark = work.session
    n_users, n_items = model.n_users, model.n_items
    blocks = user_blocks(n_users, batch_users, chunk, int(spark.sparkContext.defaultParallelism))
    payload = model_path.read_bytes()  # the file the driver loaded: workers check its hash
    sha256 = hashlib.sha256(payload).hexdigest()
    shipped = spark.sparkContext.broadcast((sha256, payload, model_path.suffix))

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        sha, payload, suffix = shipped.value
        worker = _worker_model(sha, payload, suffix)
        for batch in batches:
            out: dict[str, list[Any]] = {"block": [], "items": [], "scores": []}
            for row in batch.to_pylist():
                users = np.arange(row["start"], row["stop"], dtype=np.int32)
                seen = _block_exclude(row, n_users, n_items)
                items, scores = worker.recommend(users, k, seen, chunk_size=chunk)
                out["block"].append(row["block"])
                out["items"].append(items.tobytes())
                out["scores"].append(scores.tobytes())
            yield pa.RecordBatch.from_pydict(out, schema=RESULT_SCHEMA)

    frame = spark.createDataFrame(_block_rows(blocks, exclude)).repartition(
        len(blocks) or 1, "block"
    )
    result = frame.mapInArrow(score, "block int, items binary, scores binary").toArrow()
    shipped.unpersist()
    numbers = result.column("block").to_numpy()
    order = np.argsort(numbers, kind="stable")
    if not np.array_equal(numbers[order], np.arange(len(blocks))):
        raise RuntimeError(f"Spark returned {numbers.size} of {len(blocks)} user blocks")
    return len(blocks), _batches(result, order, blocks, k, batch_users)


def _batches(
    result: pa.Table, order: np.ndarray, blocks: list[range], k: int, batch_users: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The write batches of Spark's per-block results (``order``: block -> result row)."""
    items_column, scores_column = result.column("items"), result.column("scores")
    by_batch: dict[int, list[int]] = {}
    for number, users in enumerate(blocks):
        by_batch.setdefault(users.start // batch_users, []).append(number)
    for batch, numbers_in_batch in sorted(by_batch.items()):
        positions = [int(order[n]) for n in numbers_in_batch]
        items = np.concatenate(
            [np.frombuffer(items_column[p].as_py(), np.int32) for p in positions]
        ).reshape(-1, k)
        scores = np.concatenate(
            [np.frombuffer(scores_column[p].as_py(), np.float32) for p in positions]
        ).reshape(-1, k)
        start = batch * batch_users
        yield np.arange(start, start + items.shape[0], dtype=np.int32), items, scores
