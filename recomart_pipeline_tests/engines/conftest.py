"""The data tasks' harness fixture, shared with recomart_pipeline_tests/data."""

from recomart_pipeline_tests.data.conftest import harness

__all__ = ["harness"]
