# Gatehouse: the two commands a newcomer needs (both install what they need first).
#   make demo   build (Release), start demo upstreams and gatehouse with examples/demo.yaml
#   make test   build and run every test (unit + integration) through CTest
#   make fuzz   build the libFuzzer targets with clang (build-fuzz/); FUZZ_SECONDS=N runs each N s
#   make test-asan / make test-tsan   the whole suite against an ASan+UBSan / TSan build
BUILD ?= build
JOBS ?= 2

.PHONY: all deps build demo test test-asan test-tsan bench clean format format-check fuzz

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	@bash scripts/demo.sh $(BUILD)/gatehouse

test: build
	cd $(BUILD) && ctest --output-on-failure --timeout 900

# Sanitizers (docs/testing.md): each in its own build directory; fails on any sanitizer report.
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
test-asan: deps
	JOBS=$(JOBS) bash scripts/test-sanitized.sh $(ASAN_BUILD) address,undefined
test-tsan: deps
	JOBS=$(JOBS) bash scripts/test-sanitized.sh $(TSAN_BUILD) thread

bench: build
	GATEHOUSE_BIN=$(BUILD)/gatehouse bash bench/run.sh

# Fuzzing (docs/testing.md): clang with libFuzzer, ASan and UBSan, in its own build directory.
# The targets run one at a time, niced; their corpus and crashes stay in $(FUZZ_BUILD).
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 0
FUZZ_TARGETS ?= request_head response_head chunked path http_date jwt jwks redis_resp config cache_fields

$(FUZZ_BUILD)/build.ninja:
	@command -v clang++ >/dev/null 2>&1 || $(MAKE) deps
	cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_COMPILER=clang++ -DGATEHOUSE_FUZZ=ON -DGATEHOUSE_TESTS=OFF

fuzz: $(FUZZ_BUILD)/build.ninja
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzzers
	@if [ "$(FUZZ_SECONDS)" -gt 0 ]; then \
	  bash scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS); fi

clean:
	rm -rf $(BUILD)

# C++ sources under the repository's .clang-format (format-check runs in .ci/run).
FORMATTED = git ls-files 'src/*.cc' 'src/*.h' 'tests/unit/*.cc' 'tests/unit/*.h' 'tests/tools/*.cc' \
  'fuzz/*.cc' 'fuzz/*.h'
format:
	$(FORMATTED) | xargs clang-format -i
format-check:
	$(FORMATTED) | xargs clang-format --dry-run --Werror
