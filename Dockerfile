# syntax=docker/dockerfile:1
# The `ltf` image: build with BuildKit (`docker build -t latechforce/ltf .`, or
# `docker compose build`). Two stages: a Rust toolchain builds the binary, a slim
# Debian runtime (same Debian release, so the same glibc) ships it alone with CA
# certificates and zlib, its only shared libraries beyond libc.

# Must be at least the highest rust-version in Cargo.lock (uuid 1.29 needs 1.89).
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
# librdkafka (bundled, built by rdkafka-sys) and aws-lc-sys need a C toolchain and cmake;
# zlib is linked dynamically, zstd statically, and OpenSSL (librdkafka's TLS and SASL
# SCRAM: rdkafka's `ssl-vendored`) is built from source by openssl-src (perl, make) and
# linked statically, so the runtime image needs no libssl.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake perl pkg-config zlib1g-dev libzstd-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The target dir is a cache mount, so the binary is copied out in the same step.
# Debug info (profile.release debug = 1) is stripped; symbols stay for backtraces.
RUN --mount=type=cache,id=ltf-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=ltf-cargo-git,target=/usr/local/cargo/git \
    --mount=type=cache,id=ltf-target,target=/src/target \
    cargo build --release --locked -p ltf \
 && install -D -m 0755 target/release/ltf /out/ltf \
 && strip --strip-debug /out/ltf

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 ltf \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin ltf
COPY --from=build /out/ltf /usr/local/bin/ltf
LABEL org.opencontainers.image.title="ltf" \
      org.opencontainers.image.description="LaTeChforce event pipeline: api, relay, workers, CLI"
# Runs as the unprivileged ltf user (uid/gid 10001, no home, no login shell); works
# with a read-only root filesystem (docker-compose.yml and the Helm chart mount one).
USER 10001:10001
WORKDIR /
# api 8080, relay 9100, workers 9101-9104 (metrics, /healthz, /readyz); every listener
# is 127.0.0.1 unless --listen says otherwise (0.0.0.0:<port> in containers).
EXPOSE 8080 9100 9101 9102 9103 9104
# ltf handles SIGTERM itself (finishes in-flight work, commits, exits).
STOPSIGNAL SIGTERM
ENTRYPOINT ["ltf"]
CMD ["--help"]
