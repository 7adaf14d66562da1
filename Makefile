# Gatehouse: the two commands a newcomer needs (both install what they need first).
#   make demo   build (Release), start demo upstreams and gatehouse with examples/demo.yaml
#   make test   build and run every test (unit + integration) through CTest
BUILD ?= build
JOBS ?= 2

.PHONY: all deps build demo test bench clean format format-check

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

bench: build
	GATEHOUSE_BIN=$(BUILD)/gatehouse bash bench/run.sh

clean:
	rm -rf $(BUILD)

# C++ sources under the repository's .clang-format (format-check runs in .ci/run).
FORMATTED = git ls-files 'src/*.cc' 'src/*.h' 'tests/unit/*.cc' 'tests/unit/*.h' 'tests/tools/*.cc'
format:
	$(FORMATTED) | xargs clang-format -i
format-check:
	$(FORMATTED) | xargs clang-format --dry-run --Werror
