"""Reuses the trained-project fixtures of the deployment tests."""

from recomart_pipeline_tests.deployment.conftest import trained, trained_template

__all__ = ["trained", "trained_template"]
