# syntax=docker/dockerfile:1
# Build stage: the same install script and CMake preset as CI.
FROM debian:12 AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN bash scripts/install-deps.sh
COPY . .
RUN cmake --preset release -DTROUPE_BUILD_TESTS=OFF \
 && cmake --build build/release -j2 \
 && cmake --install build/release --prefix /opt/troupe

# Runtime stage: only the runtime libraries.
FROM debian:12-slim
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libyaml-cpp0.7 libspdlog1.10 libfmt9 \
      libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libsystemd0 libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin troupe
COPY --from=build /opt/troupe /usr/local
COPY config/trouped.yaml /etc/troupe/trouped.yaml
USER troupe
EXPOSE 50051 9464
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/trouped"]
CMD ["--config", "/etc/troupe/trouped.yaml"]
