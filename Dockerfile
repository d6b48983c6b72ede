# Two images from one build, sharing every layer but the last:
#   docker build -t recomart-pipeline .                             the code location (default):
#       the pipeline package, its config and sample data, served over gRPC to a Dagster
#       webserver/daemon (see docs/deployment.md)
#   docker build --target serving -t recomart-serving .             the model service: the
#       registry's champion over HTTP on port 8000 (mount or point storage at the registry)
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DAGSTER_HOME=/opt/dagster/home \
    PIPELINE_CONFIG=/opt/recomart/pipeline_config.yaml

WORKDIR /opt/recomart
COPY pyproject.toml README.md ./
COPY recomart_pipeline ./recomart_pipeline
RUN pip install --no-cache-dir ".[postgres,s3]" && mkdir -p "$DAGSTER_HOME"
COPY pipeline_config*.yaml pipeline_config.schema.json workspace.yaml ./
COPY data ./data
COPY deploy/dagster.postgres.yaml /opt/dagster/home/dagster.yaml

# The model service. Workers share the memory-mapped top-K arrays, so one per CPU the
# container gets costs little memory; put a reverse proxy or a Kubernetes Service in front,
# with /ready as the readiness probe and /health as the liveness probe.
FROM base AS serving
ENV SERVE_WORKERS=2
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=2)"
# shell form for $SERVE_WORKERS; exec, so the service gets the container's signals itself
CMD exec python -m recomart_pipeline serve --host 0.0.0.0 --port 8000 --workers "$SERVE_WORKERS"

# The code server: the webserver and daemon load the definitions from here.
FROM base AS code-location
EXPOSE 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "recomart_pipeline.definitions"]
