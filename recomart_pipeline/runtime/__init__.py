"""Dagster-free task execution: isolation, limits, artifacts, records and logs.

Tasks themselves are written against ``recomart_pipeline.contract``; this package runs them.
"""
