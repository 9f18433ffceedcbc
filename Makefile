# Thin wrapper around CMake. The real build lives in CMakeLists.txt.
#   make run     release build, then start memdexd on 127.0.0.1:7711 with ./data
#   make test    ASan+UBSan build, every test through ctest
#   make release / make asan   build only
#   make bench   release build of memdex-bench, then the embedded benchmark
#   make fuzz    libFuzzer targets for a bounded time (clang)
#   make soak    long randomized model runs
#   make format  clang-format every C source

BUILD    ?= build
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
WERROR   ?= 0
CMAKE    ?= cmake
GENERATOR_FLAGS ?=

.PHONY: all deps release asan run test bench fuzz soak format clean

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

run: release
	$(BUILD)/release/tests/docs/embedding_example

test: asan
	cd $(BUILD)/asan && ctest --output-on-failure -j $(JOBS) --timeout 600

bench: release
	$(BUILD)/release/memdex-bench embedded --records 1000000

soak: asan
	cd $(BUILD)/asan && MDX_MODEL_OPS=3000000 ctest --output-on-failure -L model

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)
