# syntax=docker/dockerfile:1
#
# seedlock inference server. Serving stack only: ONNX Runtime + gRPC, no torch.
#
#   GPU (default): NVIDIA CUDA runtime base, the `gpu` extra (onnxruntime-gpu + the
#   TensorRT runtime, which runs model.plan engines; their bi-activation kernel is
#   compiled into the engine, so serving needs neither Python plugin code nor Triton)
#     docker build -t seedlock:gpu .
#     docker run --gpus all -p 8001:8001 -v "$PWD/repository:/models:ro" seedlock:gpu
#   GPU image that can also build engines on the serving GPU (`seedlock export trt`;
#   adds onnx and Triton, still no torch):
#     docker build --build-arg ENGINES=yes -t seedlock:gpu-engines .
#     docker run --gpus all -v "$PWD/repository:/models" --entrypoint seedlock \
#       seedlock:gpu-engines export trt /models/segmenter
#   CPU:
#     docker build --build-arg VARIANT=cpu -t seedlock:cpu .
#     docker run -p 8001:8001 -v "$PWD/repository:/models:ro" seedlock:cpu
#
# Arguments after the image name replace the default CMD (the flags of
# `seedlock serve`), e.g. `... seedlock:gpu --repository /models --host 0.0.0.0 --providers cuda`.
#
# TLS and bearer tokens: mount the secrets read-only (never bake them into the
# image) and name them in the CMD; they must be readable by uid 10001.
#   secrets/tls.crt, secrets/tls.key   the server's certificate (chain) and unencrypted key
#   secrets/ca.crt                     the CA that signed tls.crt (for the HEALTHCHECK, below)
#   secrets/tokens                     bearer tokens, one per line (# comments allowed)
#     docker run -p 8001:8001 -v "$PWD/repository:/models:ro" -v "$PWD/secrets:/run/secrets/seedlock:ro" \
#       -e SEEDLOCK_TLS_CA=/run/secrets/seedlock/ca.crt -e SEEDLOCK_TLS_SERVER_NAME=seedlock.example.com \
#       seedlock:cpu --repository /models --host 0.0.0.0 --port 8001 \
#         --tls-cert /run/secrets/seedlock/tls.crt --tls-key /run/secrets/seedlock/tls.key \
#         --auth-token-file /run/secrets/seedlock/tokens
#   Mutual TLS: add --tls-client-ca /run/secrets/seedlock/client-ca.crt (clients must present a
#   certificate it signed, the HEALTHCHECK too: -e SEEDLOCK_TLS_CERT=... -e SEEDLOCK_TLS_KEY=...).
#   Clients: seedlock client ... --tls-ca ca.crt [--tls-cert c.crt --tls-key c.key] --token-file token
#   (or $SEEDLOCK_TOKEN); tritonclient: ssl=True, root_certificates=..., headers={"authorization": "Bearer ..."}.
#
# The HEALTHCHECK needs no token (health stays open) and takes every setting
# from the environment, so `docker run -e` adjusts it: SEEDLOCK_HEALTH_ADDRESS
# (default 127.0.0.1:8001; set it when --port changes); with TLS, SEEDLOCK_TLS_CA
# (the CA that signed the server's certificate) and SEEDLOCK_TLS_SERVER_NAME (a
# name the certificate holds, when 127.0.0.1 is not one); with --tls-client-ca,
# SEEDLOCK_TLS_CERT and SEEDLOCK_TLS_KEY (a client certificate).

ARG VARIANT=gpu
ARG CUDA_BASE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
ARG CPU_BASE=ubuntu:24.04

FROM ${CUDA_BASE} AS base-gpu
FROM ${CPU_BASE} AS base-cpu

# ---------------------------------------------------------------------------
# base-gpu or base-cpu, the stages above (their tags are pinned there).
# hadolint ignore=DL3006
FROM base-${VARIANT} AS base
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/seedlock \
    PATH=/opt/seedlock/bin:$PATH
# The base image tag pins the distribution release; its security updates should flow in.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# ---------------------------------------------------------------------------
FROM base AS build
ARG VARIANT
ARG ENGINES=no
WORKDIR /src
# setuptools lists every layer's package, so all layer folders are copied;
# only the serving dependencies are installed (torch comes with the `train`
# extra, which the image never installs).
COPY pyproject.toml README.md ./
COPY seedlock/ seedlock/
COPY core/ core/
COPY protos/ protos/
COPY serve/ serve/
COPY clients/ clients/
COPY train/ train/
COPY export/ export/
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# CPU images add OpenVINO, which serves bf16/int8 model versions (`seedlock
# export --precision`). onnxruntime (CPU) is a default dependency and onnxruntime-gpu ships the same
# `onnxruntime` package: on GPU images the CPU wheel is removed and the GPU
# wheel reinstalled so its files are the ones left in place.
RUN python3 -m venv "$VIRTUAL_ENV" \
    && if [ "$VARIANT" = "gpu" ]; then \
         if [ "$ENGINES" = "yes" ]; then extras="gpu,engines"; else extras="gpu"; fi \
         && pip install --no-cache-dir "./[${extras}]" \
         && ORT_GPU="$(python -c 'import importlib.metadata as m; print(m.version("onnxruntime-gpu"))')" \
         && pip uninstall -y onnxruntime onnxruntime-gpu \
         && pip install --no-cache-dir --no-deps "onnxruntime-gpu==${ORT_GPU}"; \
       else \
         pip install --no-cache-dir "./[openvino]"; \
       fi \
    && python -c "import importlib.util as u, sys; sys.exit('torch must not be in the serving image' if u.find_spec('torch') else 0)" \
    && python -c "import onnxruntime as ort; print('onnxruntime', ort.__version__, ort.get_available_providers())" \
    && if [ "$VARIANT" = "gpu" ]; then python -c "import importlib.metadata as m; print('tensorrt', m.version('tensorrt'))"; fi

# ---------------------------------------------------------------------------
FROM base AS runtime
ARG VARIANT
LABEL org.opencontainers.image.title="seedlock" \
      org.opencontainers.image.description="seed-locked gRPC inference server (KServe v2 + seedlock.v1 task services)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      ai.seedlock.variant="${VARIANT}"
COPY --from=build /opt/seedlock /opt/seedlock
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/seedlock seedlock \
    && mkdir -p /models /home/seedlock/.cache/seedlock \
    && chown seedlock:seedlock /models /home/seedlock/.cache/seedlock
USER 10001:10001
WORKDIR /home/seedlock
# The model repository (Triton layout, from `seedlock export`); mount it read-only.
VOLUME ["/models"]
EXPOSE 8001
# No address here: the module reads $SEEDLOCK_HEALTH_ADDRESS (default 127.0.0.1:8001) and $SEEDLOCK_TLS_*.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "seedlock.serve.healthcheck"]
# Exec form: the server is PID 1 and gets SIGTERM itself, so `docker stop` drains in-flight requests.
ENTRYPOINT ["seedlock", "serve"]
CMD ["--repository", "/models", "--host", "0.0.0.0", "--port", "8001"]
