# Code location image: the pipeline package, its config and sample data, served over gRPC to
# a Dagster webserver/daemon (see docs/deployment.md). Build: docker build -t recomart-pipeline .
FROM python:3.11-slim

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

EXPOSE 4000
# The code server: the webserver and daemon load the definitions from here.
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "recomart_pipeline.definitions"]
