# The two commands a newcomer types (see README.md): `make run` and `make test`.
# Both install missing Debian packages first, so a fresh Debian 12 machine needs
# nothing else.
PRESET  ?= release
BUILD   := build/$(PRESET)
CONFIG  ?= config/trouped.yaml
JOBS    ?= 2

.PHONY: deps configure build run test crash check-config asan tsan perf perf-memory perf-store perf-cluster perf-tls format format-check clean

deps:
	@bash scripts/install-deps.sh

configure: deps
	@cmake --preset $(PRESET) >/dev/null

build: configure
	@cmake --build $(BUILD) -j$(JOBS)

# The job store of `make run` is config/trouped-data/jobs.db (git-ignored):
# without store.path trouped keeps it in trouped-data/ next to the config
# (docs/durability.md). Delete the directory to start empty.
run: build
	$(BUILD)/daemon/trouped --config $(CONFIG)

check-config: build
	$(BUILD)/daemon/trouped --check-config $(CONFIG)

test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) --timeout 300 -LE crash

# The crash test (tests/crash, label crash): trouped SIGKILLed and restarted
# 30 times under load on one SQLite store. TROUPE_CRASH_SEED=N reruns a
# schedule, TROUPE_CRASH_ROUNDS=N lengthens it (docs/testing.md). Verbose:
# the seed and the counts are printed whether it passes or fails.
crash: build
	cd $(BUILD) && ctest --verbose -L crash --timeout 300

# The whole suite under AddressSanitizer+UBSan / ThreadSanitizer; a report
# from any process the tests start fails the run (scripts/sanitizer-test.sh).
asan:
	@$(MAKE) --no-print-directory build PRESET=asan
	@bash scripts/sanitizer-test.sh asan

tsan:
	@$(MAKE) --no-print-directory build PRESET=tsan
	@bash scripts/sanitizer-test.sh tsan

# trouped against the bare gRPC baseline (tests/bench/echo_server), side by
# side, always on the release preset. PERF_ARGS e.g. "--style cq --rounds 3".
perf: deps
	@cmake --preset release >/dev/null
	@cmake --build build/release -j$(JOBS) --target trouped troupe-bench echo_server
	BUILD_DIR=build/release bash scripts/perf-compare.sh $(PERF_ARGS)

# What TLS and per-call token checks cost: plaintext vs TLS vs TLS + token,
# alternating rounds (scripts/perf-tls.sh; docs/performance.md).
perf-tls: deps
	@cmake --preset release >/dev/null
	@cmake --build build/release -j$(JOBS) --target trouped troupe-bench
	BUILD_DIR=build/release bash scripts/perf-tls.sh $(PERF_ARGS)

# trouped's resident memory: idle on config/trouped.yaml, and with 1M queued
# 64-byte jobs (scripts/perf-memory.sh; docs/performance.md).
perf-memory: deps
	@cmake --preset release >/dev/null
	@cmake --build build/release -j$(JOBS) --target trouped troupe-bench troupectl
	BUILD_DIR=build/release bash scripts/perf-memory.sh $(PERF_ARGS)

# What durability costs, in one run: trouped with the memory store vs the
# SQLite store (sync full) vs beanstalkd -f 0, then recovery of 1M queued jobs
# after kill -9 (scripts/perf-store.sh; docs/performance.md).
perf-store: deps
	@cmake --preset release >/dev/null
	@cmake --build build/release -j$(JOBS) --target trouped troupe-bench beanstalk_load
	BUILD_DIR=build/release bash scripts/perf-store.sh $(PERF_ARGS)

# 1 vs 3 trouped replicas on one PostgreSQL started for the run:
# submit->complete jobs/s and acknowledgement latency (scripts/perf-cluster.sh;
# docs/performance.md).
perf-cluster: deps
	@cmake --preset release >/dev/null
	@cmake --build build/release -j$(JOBS) --target trouped troupe-bench
	BUILD_DIR=build/release bash scripts/perf-cluster.sh $(PERF_ARGS)

format:
	@git ls-files '*.h' '*.cpp' | xargs clang-format -i

format-check:
	@git ls-files '*.h' '*.cpp' | xargs clang-format --dry-run -Werror

clean:
	rm -rf build
