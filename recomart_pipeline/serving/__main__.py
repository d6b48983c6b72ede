"""``python -m recomart_pipeline.serving --registry DIR [--host H] [--port N] [--workers N]
[--admin-token-env NAME]``: the service without a pipeline config (deploy verification).

This process imports only uvicorn: with ``--workers N`` it supervises N worker processes,
each of which imports the app and maps the model's arrays (shared between them)."""

import argparse
import sys
from pathlib import Path

from recomart_pipeline.deployment.verification import read_admin_token
from recomart_pipeline.serving.server import REGISTRY_ENV, TOKEN_ENV_ENV, run_server

parser = argparse.ArgumentParser(prog="python -m recomart_pipeline.serving")
parser.add_argument("--registry", required=True, type=Path, help="model registry directory")
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=8000)
parser.add_argument(
    "--workers",
    type=int,
    default=1,
    help="worker processes sharing the port (and the memory-mapped arrays)",
)
parser.add_argument(
    "--admin-token-env",
    metavar="NAME",
    help="environment variable holding the bearer token of /admin/*; unset: admin disabled",
)
args = parser.parse_args()
if args.workers < 1:
    sys.exit("python -m recomart_pipeline.serving: --workers must be at least 1")
try:
    read_admin_token(args.admin_token_env)  # refuse a bad token before any worker starts
except ValueError as exc:
    sys.exit(f"python -m recomart_pipeline.serving: {exc}")
run_server(
    "recomart_pipeline.serving.app:app_from_env",
    {REGISTRY_ENV: str(args.registry.resolve()), TOKEN_ENV_ENV: args.admin_token_env or ""},
    args.host,
    args.port,
    args.workers,
    "warning",
)
