"""The composition root of the side channels: which listeners hear about task attempts.

Called by every entry point that runs tasks (the Dagster definitions, the ``task`` CLI), so
MLflow tracking and slow-task alerts work the same everywhere while the runtime imports
neither.
"""

from __future__ import annotations

from recomart_pipeline.notify.dispatch import SlowTaskAlerts
from recomart_pipeline.runtime.hooks import subscribe
from recomart_pipeline.tracking.mlflow_tracking import MlflowListener


def install_observers() -> None:
    subscribe(MlflowListener())
    subscribe(SlowTaskAlerts())
