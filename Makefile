# Convenience wrapper around CMake: `make` builds everything into build/,
# `make test` runs the whole suite, `make asan` builds and tests with ASan+UBSan.
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all test asan asan-test clean demo fuzz install

all: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

test: all
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

$(ASAN_BUILD)/CMakeCache.txt:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLD_SANITIZE=ON $(CMAKE_FLAGS)

asan: $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j $(JOBS)

# make install [PREFIX=/usr/local] [DESTDIR=staging]: header, libleandiff.a/.so, leandiff.pc, leandiff
PREFIX ?= /usr/local
install: $(BUILD)/CMakeCache.txt
	cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)
	DESTDIR=$(DESTDIR) cmake --install $(BUILD)

asan-test: asan
	cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS)

demo: all
	./tools/demo.sh

fuzz:
	./fuzz/run.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
