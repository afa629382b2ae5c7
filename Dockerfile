# syntax=docker/dockerfile:1
#
# nerstream's container image: the CPU engine (llama.cpp through cgo), run
# as a non-root user, with the configuration and the model cache as volumes.
#
#   docker build -t nerstream .
#   docker run -v $PWD/nerstream.yaml:/etc/nerstream/nerstream.yaml:ro \
#              -v nerstream-models:/var/lib/nerstream nerstream
#
# MARCH picks the SIMD level of the llama.cpp build (x86-64-v3 = AVX2, as
# the Makefile; x86-64-v2 for older CPUs; armv8-a on arm64 hosts).
# Dockerfile.cuda builds the CUDA image (the CUDA backend module beside
# the binary).
#
# The images are built outside CI: the CI machine has no Docker engine.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG MARCH=x86-64-v3
RUN make build MARCH=${MARCH} && ./bin/nerstream --help >/dev/null

FROM debian:bookworm-slim AS cpu
# curl serves the HEALTHCHECK; ca-certificates, TLS to brokers, collectors
# and model downloads.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/nerstream --shell /usr/sbin/nologin nerstream \
 && mkdir -p /etc/nerstream /var/lib/nerstream/models \
 && chown -R nerstream:nerstream /var/lib/nerstream
COPY --from=build /src/bin/nerstream /usr/local/bin/nerstream
COPY examples/nerstream.yaml /etc/nerstream/nerstream.yaml
ENV NERSTREAM_HOME=/var/lib/nerstream
VOLUME ["/etc/nerstream", "/var/lib/nerstream"]
USER nerstream:nerstream
WORKDIR /var/lib/nerstream
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s --retries=3 \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["nerstream"]
CMD ["run", "--config", "/etc/nerstream/nerstream.yaml"]
