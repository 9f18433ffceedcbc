# Thin wrapper around CMake. The real build lives in CMakeLists.txt.
#   make run     release build, then start memdexd on 127.0.0.1:7711 with ./data
#   make test    ASan+UBSan build, every test through ctest
#   make release / make asan   build only
#   make bench   release build of memdex-bench, then the embedded benchmark
#   make bench-compare  memdex vs Redis vs Tarantool over the network (bench/compare.sh; ~18 min)
#   make bench-cache    hit ratios of the eviction policies vs Redis's (bench/cache_compare.sh)
#   make bench-reclaim  memdexd GET latency while 1M records expire or are invalidated (~3 min)
#   make fuzz    libFuzzer targets for a bounded time (clang)
#   make soak    long randomized model runs
#   make format  clang-format every C source

BUILD    ?= build
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
WERROR   ?= 0
CMAKE    ?= cmake
GENERATOR_FLAGS ?=

.PHONY: all deps release asan run test bench bench-compare bench-cache bench-reclaim fuzz soak format clean

all: release

deps:
	@./scripts/deps.sh

# Configuring every time is cheap and recovers from a configure step that failed half-way.
release: deps
	$(CMAKE) -S . -B $(BUILD)/release -DCMAKE_BUILD_TYPE=Release -DMDX_WERROR=$(WERROR) $(GENERATOR_FLAGS) >/dev/null
	$(CMAKE) --build $(BUILD)/release -j $(JOBS)

asan: deps
	$(CMAKE) -S . -B $(BUILD)/asan -DCMAKE_BUILD_TYPE=Debug -DMDX_SANITIZE=ON -DMDX_WERROR=$(WERROR) $(GENERATOR_FLAGS) >/dev/null
	$(CMAKE) --build $(BUILD)/asan -j $(JOBS)

run: deps
	$(CMAKE) -S . -B $(BUILD)/release -DCMAKE_BUILD_TYPE=Release -DMDX_WERROR=$(WERROR) $(GENERATOR_FLAGS) >/dev/null
	$(CMAKE) --build $(BUILD)/release -j $(JOBS) --target memdexd
	@mkdir -p data
	$(BUILD)/release/memdexd --listen 127.0.0.1:7711 --data-dir ./data

test: asan
	cd $(BUILD)/asan && ctest --output-on-failure -j $(JOBS) --timeout 600

bench: release
	$(BUILD)/release/memdex-bench embedded --records 1000000

# Flags for the script: make bench-compare COMPARE_ARGS="--rounds 5 --duration 10"
COMPARE_ARGS ?=
bench-compare: release
	BIN=$(CURDIR)/$(BUILD)/release ./bench/compare.sh $(COMPARE_ARGS)

# Flags for memdex-bench cache: make bench-cache CACHE_ARGS="--requests 2000000 --dist zipfian"
CACHE_ARGS ?=
bench-cache: release
	BIN=$(CURDIR)/$(BUILD)/release ./bench/cache_compare.sh $(CACHE_ARGS)

# memdexd and memdex-bench on different cores when there are two: they do not take turns on one.
# Flags: make bench-reclaim RECLAIM_ARGS="--rounds 5 --slice-us 100 --json"
RECLAIM_ARGS ?=
RECLAIM_PIN  = $(shell [ "$$(nproc 2>/dev/null || echo 1)" -ge 2 ] && echo --server-cpu 0 --bench-cpu 1)
bench-reclaim: release
	$(BUILD)/release/memdex-bench reclaim --rounds 3 $(RECLAIM_PIN) $(RECLAIM_ARGS)

# Fuzzing: clang with libFuzzer, ASan and UBSan (MDX_FUZZ implies them and libc malloc).
# Each target runs FUZZ_SECONDS on a scratch copy of its seed corpus, so the checked-in
# corpus only changes by hand. Crash inputs land in $(BUILD)/fuzz/artifacts/.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= request
fuzz:
	@./scripts/deps.sh clang libclang-rt-14-dev
	CC=clang $(CMAKE) -S . -B $(BUILD)/fuzz -DCMAKE_BUILD_TYPE=Debug -DMDX_FUZZ=ON -DMDX_SANITIZE=OFF -DMDX_WERROR=$(WERROR) $(GENERATOR_FLAGS)
	$(CMAKE) --build $(BUILD)/fuzz -j $(JOBS) --target $(addprefix fuzz_,$(FUZZ_TARGETS))
	@mkdir -p $(BUILD)/fuzz/artifacts
	@set -e; for t in $(FUZZ_TARGETS); do \
		rm -rf $(BUILD)/fuzz/corpus/$$t && mkdir -p $(BUILD)/fuzz/corpus/$$t && \
		cp tests/fuzz/corpus/$$t/* $(BUILD)/fuzz/corpus/$$t/ && \
		echo "fuzz_$$t: $(FUZZ_SECONDS) s" && \
		$(BUILD)/fuzz/tests/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			-artifact_prefix=$(BUILD)/fuzz/artifacts/ $(BUILD)/fuzz/corpus/$$t; \
	done

soak: asan
	cd $(BUILD)/asan && MDX_MODEL_OPS=3000000 ctest --output-on-failure -L model

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)
