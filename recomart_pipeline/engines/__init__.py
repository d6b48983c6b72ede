"""Engines that run the data tasks' rules: ``pandas`` (the reference) and ``local`` (DuckDB).

The rules are written once per task as SQL over the raw tables (see ``docs/engines.md`` for
why SQL rather than Ibis): DuckDB runs it embedded, multi-threaded and out of core; Spark SQL
is the planned cluster engine for the same statements. The pandas code in ``tasks/`` stays
as the reference implementation every engine is tested against (conformance tests).

This package is Python, duckdb and pyarrow: no dagster, no pandas semantics of its own. Values the
SQL cannot decide exactly like the reference (unusual timestamp or number spellings) are
handed back to the caller's reference parser (see ``validation.Parsers``).
"""
