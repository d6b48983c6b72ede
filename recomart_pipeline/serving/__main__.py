"""``python -m recomart_pipeline.serving --registry DIR [--host H] [--port N]
[--admin-token-env NAME]``: the service without a pipeline config (deploy verification)."""

import argparse
import sys
from pathlib import Path

import uvicorn

from recomart_pipeline.deployment.verification import read_admin_token
from recomart_pipeline.serving.app import create_app, log_config

parser = argparse.ArgumentParser(prog="python -m recomart_pipeline.serving")
parser.add_argument("--registry", required=True, type=Path, help="model registry directory")
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=8000)
parser.add_argument(
    "--admin-token-env",
    metavar="NAME",
    help="environment variable holding the bearer token of /admin/*; unset: admin disabled",
)
args = parser.parse_args()
try:
    token = read_admin_token(args.admin_token_env)
except ValueError as exc:
    sys.exit(f"python -m recomart_pipeline.serving: {exc}")
uvicorn.run(
    create_app(args.registry, admin_token=token),
    host=args.host,
    port=args.port,
    log_level="warning",
    log_config=log_config("warning"),
)
