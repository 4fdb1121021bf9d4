# syntax=docker/dockerfile:1
# trouped container image. Build: docker build -t troupe/trouped .
# Run:   docker run -d -p 50051:50051 -p 9464:9464 -v troupe-state:/var/lib/troupe troupe/trouped
# See docs/deploy.md. tests/deploy checks that the build steps below stay the
# ones CI runs (scripts/install-deps.sh and the `release` CMake preset).

# Build stage: the same install script and CMake preset as CI (`make test`).
FROM debian:12 AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN bash scripts/install-deps.sh
COPY . .
RUN cmake --preset release \
 && cmake --build build/release -j2 \
 && cmake --install build/release --prefix /opt/troupe

# Runtime stage: only the shared libraries the binaries load, no toolchain.
FROM debian:12-slim
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends \
      libgrpc++1.51 libgrpc29 libprotobuf32 libyaml-cpp0.7 libspdlog1.10 libfmt9 \
      libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libsystemd0 libssl3 libsqlite3-0 libpq5 \
      ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 troupe \
 && useradd --system --uid 10001 --gid troupe --home-dir /var/lib/troupe --no-create-home \
      --shell /usr/sbin/nologin troupe \
 && install -d -o troupe -g troupe -m 0750 /var/lib/troupe
COPY --from=build /opt/troupe/bin/trouped /opt/troupe/bin/troupectl /opt/troupe/bin/troupe-bench /usr/local/bin/
# Listens on 0.0.0.0 (the host's example config is loopback-only). Mount your
# own file at this path to replace it.
COPY deploy/docker/trouped.yaml /etc/troupe/trouped.yaml
USER 10001:10001
WORKDIR /var/lib/troupe
# The job store: trouped keeps it at $STATE_DIRECTORY/jobs.db unless the
# config sets store.path. Mount a named volume or a host directory here
# (-v troupe-state:/var/lib/troupe), or accepted jobs, results and dead
# letters go with the container.
ENV STATE_DIRECTORY=/var/lib/troupe
VOLUME ["/var/lib/troupe"]
ENV TROUPE_ADDRESS=127.0.0.1:50051
# gRPC API (jobs, admin, health, reflection) and Prometheus /metrics.
EXPOSE 50051 9464
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["troupectl", "--deadline", "3s", "health"]
# SIGTERM drains (server.shutdown.drain_timeout, 30s here): stop with
# `docker stop --time 45` so the drain can finish before SIGKILL.
STOPSIGNAL SIGTERM
# tini reaps the exec handlers' orphaned grandchildren and forwards signals.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/trouped"]
CMD ["--config", "/etc/troupe/trouped.yaml"]
