# syntax=docker/dockerfile:1
#
# Two images from one build, one target each:
#
#   docker build --target daemon  -t kserve-warden-daemon  .   # `kserve-warden run`
#   docker build --target serving -t kserve-warden-serving .   # `python -m serving` (KServe runtime)
#
# Multi-stage: the wheel and the virtualenvs are built in their own stages; the final images get only
# the finished virtualenv (no compiler, no pip cache, no source tree). Every dependency ships as a
# manylinux wheel (XGBoost's CPU build bundles its libgomp), so no stage needs a compiler.
#
# Runtime conventions, both images:
# - non-root numeric user (65532), so `runAsNonRoot: true` can verify it without a passwd entry;
# - read-only root filesystem: bytecode is compiled at install time and never written at run time
#   (PYTHONDONTWRITEBYTECODE), HOME and TMPDIR point at /tmp, the one writable volume;
# - no HEALTHCHECK: Kubernetes probes do that (/healthz and /readyz for the daemon, KServe's own
#   probes for the model server).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- runtime base: what both final images share -----------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONFAULTHANDLER=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    PATH=/opt/venv/bin:${PATH}
VOLUME ["/tmp"]

# --- wheel: the project, built once ---------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS wheel
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY pyproject.toml README.md ./
COPY daemon ./daemon
COPY probes ./probes
COPY serving ./serving
COPY sandbox ./sandbox
RUN pip wheel --no-deps --wheel-dir /dist .

# --- one virtualenv per image, each built at the path it runs from (/opt/venv: scripts' shebangs
# --- point there). pip compiles the bytecode at install; pip itself is removed afterwards.
FROM ${PYTHON_IMAGE} AS venv-daemon
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
COPY --from=wheel /dist /dist
# No `sandbox` extra: moto and dnslib serve only the local stand-in cluster.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install /dist/kserve_warden-*.whl \
 && /opt/venv/bin/pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE} AS venv-serving
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
COPY --from=wheel /dist /dist
# The same wheel: its dependencies include the model server's (xgboost-cpu, scikit-learn, numpy).
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install /dist/kserve_warden-*.whl \
 && /opt/venv/bin/pip uninstall --yes pip setuptools

# --- serving: the KServe model server -----------------------------------------------------------
FROM runtime AS serving
COPY --from=venv-serving /opt/venv /opt/venv
USER 65532:65532
# HTTP (KServe V1 + Open Inference Protocol REST) and gRPC (Open Inference Protocol; --grpc_port 0 turns it off)
EXPOSE 8080 8081
# KServe's convention: the storage-initializer downloads the model to /mnt/models and the
# runtime is started with --model_dir /mnt/models (a ServingRuntime's args replace this CMD).
ENTRYPOINT ["python", "-m", "serving"]
CMD ["--model_dir", "/mnt/models", "--model_name", "model", "--http_port", "8080"]

# --- daemon: the reconciler (last stage: the default target) ------------------------------------
FROM runtime AS daemon
COPY --from=venv-daemon /opt/venv /opt/venv
USER 65532:65532
EXPOSE 9090
ENTRYPOINT ["kserve-warden", "run"]
