"""Run the pipeline programmatically, as the user guide shows: ``python run_dagster_pipeline.py``.

Uses ``$PIPELINE_CONFIG`` or ./pipeline_config.yaml (or the path given as the argument) and
the project's Dagster home, so the run appears in the web UI. Exit code 0 on success.
"""

import sys

from recomart_pipeline import execute_pipeline_programmatically

if __name__ == "__main__":
    success = execute_pipeline_programmatically(sys.argv[1] if len(sys.argv) > 1 else None)
    print("pipeline succeeded" if success else "pipeline FAILED")
    sys.exit(0 if success else 1)
