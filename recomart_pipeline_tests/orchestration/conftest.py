"""Shares the local webhook receiver of the notification tests."""

from recomart_pipeline_tests.notify.conftest import webhook_server

__all__ = ["webhook_server"]
