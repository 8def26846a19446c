# syntax=docker/dockerfile:1
# The Sluice controller image: `sluice run` as an unprivileged user on a read-only root filesystem.
# Build:  docker build -t ghcr.io/sluice-dev/sluice:0.1.0 .
# Two stages so the image holds installed packages only: no compiler caches, no wheels, no sources.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY rollouts ./rollouts
COPY analysis ./analysis
COPY simulations ./simulations
# Wheels for the project and every runtime dependency (no dev extras: no pytest, kmock, mypy).
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp
# Installed from the wheels only (--no-index): the image gets exactly what the build stage
# resolved. pip byte-compiles here, while the filesystem is still writable; at run time it is not.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels sluice-rollouts \
    && sluice --version
ENV PYTHONDONTWRITEBYTECODE=1
# 65532 is the conventional "nonroot" uid of distroless images; numeric so Kubernetes can verify
# runAsNonRoot without reading /etc/passwd.
USER 65532:65532
# 8080: /metrics (Prometheus); 8081: kopf's liveness endpoint.
EXPOSE 8080 8081
ENTRYPOINT ["sluice", "run"]
CMD ["--all-namespaces"]
