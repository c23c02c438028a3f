# The event-broker image. The build stage compiles the release binary with
# the toolchain of the Rust image; the runtime stage is slim Debian with the
# binary, backup.sh and curl (which backup.sh calls), running as uid 10001.
#
#   docker build -t event-broker:0.1.0 .
#
# The base images are build arguments so that a mirror, or an image made
# locally, can stand in for the public ones.
ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY crates ./crates
COPY benches ./benches
COPY examples ./examples
# Cargo.toml keeps line tables in release builds for profiling; the image
# does not need them.
ENV CARGO_PROFILE_RELEASE_STRIP=debuginfo
RUN cargo build --release --locked --bin event-broker \
    && cp target/release/event-broker /usr/local/bin/event-broker

FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="event-broker" \
      org.opencontainers.image.description="Durable event queues in one process: a write-ahead log on local disk behind a REST API" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT"
# Debian's stable point releases are what pins these packages; a version pin
# here would break the build at the next security update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 event-broker \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin event-broker \
    && mkdir -p /app/data \
    && chown 10001:10001 /app/data
COPY --from=build /usr/local/bin/event-broker /usr/local/bin/event-broker
COPY backup.sh /usr/local/bin/backup.sh
WORKDIR /app
ENV DATA_DIR=/app/data \
    BIND_ADDR=0.0.0.0 \
    PORT=3000
VOLUME ["/app/data"]
USER 10001:10001
EXPOSE 3000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["event-broker", "healthcheck"]
ENTRYPOINT ["event-broker"]
CMD ["serve"]
