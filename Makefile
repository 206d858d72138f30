# Thin driver: deps -> cmake -> build -> run / test / bench / fuzz.
# `make run` and `make test` are the two commands README.md opens with.
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 20

.PHONY: all deps build build-asan run test test-fast soak bench fuzz clean

all: build

deps:
	@./scripts/deps.sh

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: deps $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DRILL_ASAN=ON -DRILL_UBSAN=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)

run: build
	mkdir -p var
	./$(BUILD)/rilld --config config/rilld.properties

# Every test: unit + fuzz-corpus replay + integration + fault on the normal
# build; unit + fuzz replay + integration again under ASan+UBSan; then each
# libFuzzer target briefly.
test: build build-asan
	cd $(BUILD) && ctest --output-on-failure -j 1
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -L 'unit|fuzz|integration'
	$(MAKE) fuzz FUZZ_SECONDS=$(FUZZ_SECONDS)

# Quick loop while developing: normal build, unit + fuzz replay only.
test-fast: build
	cd $(BUILD) && ctest --output-on-failure -L 'unit|fuzz'

# Long variants (tagged "soak" in pytest), not part of `make test`.
soak: build
	RILL_BUILD=$(abspath $(BUILD)) /usr/bin/python3 -m pytest -q -m soak tests/integration tests/fault

fuzz: deps
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRILL_FUZZ=ON -DRILL_ASAN=ON -DRILL_UBSAN=ON >/dev/null
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target $(patsubst tests/fuzz/%/,fuzz_%,$(wildcard tests/fuzz/*/))
	./scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

bench: build
	./bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
