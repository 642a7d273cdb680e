# syntax=docker/dockerfile:1
# Two images from one file: `--target operator` (no torch) and `--target trainer`.
# Completed by the packaging issue (CUDA base, pinned digests); this is the skeleton.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY trainer ./trainer
COPY operator ./operator

FROM base AS operator
RUN pip install . && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin app
USER 10001
ENTRYPOINT ["transfersearch"]

FROM base AS trainer
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu '.[trainer]' \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin app
USER 10001
ENV HOME=/tmp TRANSFERSEARCH_CACHE=/tmp/transfersearch-cache
ENTRYPOINT ["transfersearch"]
