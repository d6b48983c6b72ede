"""``python -m recomart_pipeline.serving --registry DIR [--host H] [--port N]``."""

import argparse
from pathlib import Path

import uvicorn

from recomart_pipeline.serving.app import create_app

parser = argparse.ArgumentParser(prog="python -m recomart_pipeline.serving")
parser.add_argument("--registry", required=True, type=Path, help="model registry directory")
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=8000)
args = parser.parse_args()
uvicorn.run(create_app(args.registry), host=args.host, port=args.port, log_level="warning")
