# syntax=docker/dockerfile:1
# The `ltf` image: build with BuildKit (`docker build -t latechforce/ltf .`, or
# `docker compose build`). Two stages: a Rust toolchain builds the binary, a slim
# Debian runtime ships it alone.

# Must be at least the highest rust-version in Cargo.lock (uuid 1.29 needs 1.89).
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
# librdkafka (bundled, built by rdkafka-sys) and aws-lc-sys need a C toolchain and cmake;
# zlib is linked dynamically, zstd statically.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config zlib1g-dev libzstd-dev \
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
USER 10001
ENTRYPOINT ["ltf"]
CMD ["--help"]
