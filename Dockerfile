# syntax=docker/dockerfile:1
# Two images from one file (docs/install.md, "Images"):
#   docker build --target operator -t transfersearch-operator:0.1.0 .   # no torch, small
#   docker build --target trainer  -t transfersearch-trainer:0.1.0 .    # torch, CPU wheel
# GPU trainer: PyTorch's CUDA wheels carry the CUDA runtime, so choose their index; GPU
# nodes need only the NVIDIA driver and device plugin:
#   docker build --target trainer --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
# Or build the trainer on another base (for example a CUDA image) that has python3
# (3.11 or 3.12) with venv, and useradd:
#   docker build --target trainer --build-arg TRAINER_BASE=registry.example.com/cuda-python:12 .
#
# Pins: Python packages are pinned in pyproject.toml; release builds pin the base image
# by digest as well: --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest>.
# Both images run as uid 10001 and work with a read-only root filesystem: HOME, caches
# and matplotlib's config dir point at /tmp, and the agent cache at
# /var/cache/transfersearch; the operator mounts emptyDirs there in trial pods.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# A stage name (the default) or an image.
ARG TRAINER_BASE=python-base

FROM ${PYTHON_IMAGE} AS python-base

# This project's wheel, built once for both images.
FROM python-base AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY trainer ./trainer
COPY operator ./operator
RUN python3 -m pip wheel --no-deps --wheel-dir /wheels .

# The operator: kopf, the Kubernetes client and the light spec model; no torch.
FROM python-base AS operator
ENV PATH=/opt/transfersearch/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 HOME=/tmp XDG_CACHE_HOME=/tmp/.cache
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python3 -m venv /opt/transfersearch \
    && /opt/transfersearch/bin/pip install "$(ls /wheels/transfersearch-*.whl)" \
    && groupadd --gid 10001 app \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
       --shell /usr/sbin/nologin app
USER 10001:10001
ENTRYPOINT ["transfersearch"]
CMD ["operator", "--help"]

# The trainer: the operator's trial pods run `transfersearch train --config ...` here.
FROM ${TRAINER_BASE} AS trainer
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PATH=/opt/transfersearch/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 HOME=/tmp XDG_CACHE_HOME=/tmp/.cache \
    TRANSFERSEARCH_CACHE=/var/cache/transfersearch MPLCONFIGDIR=/tmp/matplotlib \
    TORCH_HOME=/tmp/torch
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python3 -m venv /opt/transfersearch \
    && /opt/transfersearch/bin/pip install --extra-index-url "${TORCH_INDEX_URL}" \
       "$(ls /wheels/transfersearch-*.whl)[trainer]" \
    && groupadd --gid 10001 app \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
       --shell /usr/sbin/nologin app \
    && install -d -o 10001 -g 10001 -m 0750 /var/cache/transfersearch
# The agent zoo (`--agent zoo`, spec.source.agent: zoo), where the trainer looks for it:
# owned by root, so read-only to the pods' user (`zoo build` writes it 0644/0755).
COPY --chown=0:0 zoo /opt/transfersearch/zoo
USER 10001:10001
ENTRYPOINT ["transfersearch"]
CMD ["--help"]
