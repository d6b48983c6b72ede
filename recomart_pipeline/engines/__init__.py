"""Engines that run the data tasks' rules: ``pandas`` (the reference), ``local`` (DuckDB) and
``spark`` (Spark SQL).

The rules are written once per task as SQL over the raw tables (see ``docs/engines.md`` for
why SQL rather than Ibis): DuckDB runs it embedded, multi-threaded and out of core; Spark SQL
runs the same text on a cluster (or ``local[*]``). The few spellings the two do not share are
one dialect table (``sql.py``). The pandas code in ``tasks/`` stays as the reference
implementation every engine is tested against (conformance tests).

This package is Python, duckdb and pyarrow (pyspark, an optional extra, is imported only when
a Spark session starts): no dagster, no pandas semantics of its own. Values the SQL cannot
decide exactly like the reference (unusual timestamp or number spellings) are handed back to
the caller's reference parser (see ``validation.Parsers``).
"""
