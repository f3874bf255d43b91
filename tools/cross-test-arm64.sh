#!/usr/bin/env bash
# Cross-test of the aarch64 (ARM64) code paths on an x86-64 Debian machine:
# cross-compiles the dependency-free part of the library (src/base, src/tensor,
# src/sched/rng.c: no third-party headers) with the tests that need only that
# part, with aarch64-linux-gnu-gcc, and runs each test under
# qemu-user (whose default CPU model has NEON, FP16 and BF16), so the NEON GEMM
# kernel, the NEON FMA probe, HWCAP detection and the portable C paths really
# run on aarch64. See docs/arm64.md.
#
#     tools/cross-test-arm64.sh [--install] [--asan] [--build-dir DIR]
#
#   --install       apt-get install the cross compiler and qemu first (root or
#                   sudo; the only step that needs the network)
#   --asan          build with AddressSanitizer + UBSan instead (default dir
#                   build-arm64-asan/; LeakSanitizer cannot run under qemu, so
#                   leaks are left to the native ASan run)
#   --build-dir DIR where objects and test binaries go (default build-arm64/)
#
# Besides the tests, "cpu-detect" runs test_gemm --print-cpu on two emulated
# CPUs (qemu's "max", which has BF16, and a Cortex-A53, which has not) and
# checks what base/cpu.c detects from HWCAP. Prints each test's last line and
# ends with "arm64: N passed, N failed" (", N skipped" when a test exits 77);
# exits non-zero on any failure or compiler warning.
set -euo pipefail

PACKAGES=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross libgomp1-arm64-cross qemu-user-static)
TESTS=(test_gemm test_ops_basic test_ops_conv test_ops_attention test_ops_resize test_ops_vec test_rng test_adamw_paths)

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=
INSTALL=0
ASAN=0
while [ $# -gt 0 ]; do
    case "$1" in
    --install) INSTALL=1 ;;
    --asan) ASAN=1 ;;
    --build-dir) BUILD=$(mkdir -p "$2" && cd "$2" && pwd); shift ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "cross-test-arm64: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

if [ -z "$BUILD" ]; then
    BUILD="$ROOT/build-arm64"
    if [ "$ASAN" = 1 ]; then BUILD="$ROOT/build-arm64-asan"; fi
fi

if [ "$INSTALL" = 1 ]; then
    SUDO=
    if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" > /dev/null
    echo "arm64: installed ${PACKAGES[*]}"
fi

CC=${CC_ARM64:-aarch64-linux-gnu-gcc}
QEMU=
for q in ${QEMU_ARM64:-} qemu-aarch64 qemu-aarch64-static; do
    if command -v "$q" > /dev/null 2>&1; then QEMU=$q; break; fi
done
if ! command -v "$CC" > /dev/null 2>&1 || [ -z "$QEMU" ]; then
    echo "cross-test-arm64: needs $CC and qemu-aarch64; run with --install (packages: ${PACKAGES[*]})" >&2
    exit 2
fi

# The library's flags from CMakeLists.txt (Release): C11 without GNU extensions,
# -O2, the same warnings and defines, include/ and src/.
VERSION=$(sed -n 's/^project(leandiff VERSION \([0-9.]*\).*/\1/p' "$ROOT/CMakeLists.txt")
CFLAGS=(-std=c11 -O2 -Wall -Wextra -Wno-unused-parameter -fopenmp -D_GNU_SOURCE "-DLD_VERSION=\"$VERSION\""
    -I"$ROOT/include" -I"$ROOT/src")
if [ "$ASAN" = 1 ]; then
    CFLAGS=("${CFLAGS[@]}" -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
    export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
# SIMD kernels for x86 are left out exactly as CMake does on aarch64.
mapfile -t LIB_SOURCES < <(cd "$ROOT" && ls src/base/*.c src/tensor/*.c src/sched/rng.c src/train/adamw*.c | grep -Ev '_(avx512|avx2|amx)\.c$')

mkdir -p "$BUILD/obj"
echo "arm64: compiling ${#LIB_SOURCES[@]} library files and ${#TESTS[@]} tests with $CC ($($CC -dumpfullversion))"
t0=$(date +%s)
WARN="$BUILD/warnings.txt"
: > "$WARN"
# compile OUT ARGS...: stops the script on an error; an output that came with
# warnings is deleted (so the next run shows them again) and the warnings kept.
compile() {
    local out=$1
    shift
    if ! "$CC" "$@" -o "$out" 2> "$out.err"; then
        cat "$out.err"
        rm -f "$out"
        echo "arm64: cross build failed" >&2
        exit 1
    fi
    if [ -s "$out.err" ]; then
        cat "$out.err" >> "$WARN"
        rm -f "$out"
    fi
    rm -f "$out.err"
}
OBJS=()
for src in "${LIB_SOURCES[@]}"; do
    obj="$BUILD/obj/$(echo "${src%.c}" | tr / _).o"
    OBJS+=("$obj")
    # rebuild when the source or any header of src/ or include/ is newer
    if [ -f "$obj" ] && [ -z "$(find "$ROOT/$src" "$ROOT/src" "$ROOT/include" -name '*.[ch]' -newer "$obj" -print -quit)" ]; then
        continue
    fi
    compile "$obj" "${CFLAGS[@]}" -c "$ROOT/$src"
done
if [ ! -s "$WARN" ]; then
    rm -f "$BUILD/libleandiff-arm64.a"
    aarch64-linux-gnu-ar rcs "$BUILD/libleandiff-arm64.a" "${OBJS[@]}"
    for t in "${TESTS[@]}"; do
        compile "$BUILD/$t" "${CFLAGS[@]}" -I"$ROOT/tests" "$ROOT/tests/$t.c" "$BUILD/libleandiff-arm64.a" -lm
    done
fi
if [ -s "$WARN" ]; then
    cat "$WARN"
    echo "arm64: the cross build printed warnings (see above)" >&2
    exit 1
fi
echo "arm64: built in $(($(date +%s) - t0)) s"

# Each test's own process under qemu, dynamically linked against the cross
# libc and libgomp in /usr/aarch64-linux-gnu (QEMU_LD_PREFIX; a static link
# would warn about libgomp's dlopen). A test that re-runs itself (test_gemm's
# LEANDIFF_CPU check) starts the child through the same emulator.
export QEMU_LD_PREFIX=${QEMU_LD_PREFIX:-/usr/aarch64-linux-gnu}
passed=0 failed=0 skipped=0
failed_names=()
for t in "${TESTS[@]}"; do
    s0=$(date +%s)
    log="$BUILD/$t.log"
    set +e
    (cd "$BUILD" && OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive LEANDIFF_TEST_EMULATED=1 \
        LEANDIFF_TEST_EXEC_WRAPPER="$(command -v "$QEMU")" LEANDIFF_SOURCE_DIR="$ROOT" LEANDIFF_BUILD_DIR="$BUILD" \
        "$QEMU" "$BUILD/$t" > "$log" 2>&1)
    rc=$?
    set -e
    last=$(tail -n 1 "$log")
    secs=$(($(date +%s) - s0))
    case $rc in
    0) passed=$((passed + 1)); verdict=ok ;;
    77) skipped=$((skipped + 1)); verdict=skip ;;
    *) failed=$((failed + 1)); failed_names+=("$t"); verdict="FAIL (exit $rc)" ;;
    esac
    printf 'arm64: %-20s %-14s %4d s  %s\n' "$t" "$verdict" "$secs" "$last"
    if [ "$rc" != 0 ] && [ "$rc" != 77 ]; then
        grep -E 'FAIL|error|Error' "$log" | head -n 20 || true
    fi
done
# HWCAP detection on two CPU models, and the NEON kernel picked on both.
s0=$(date +%s)
cpu_ok=1 cpu_last=
for model in "max:neon_bf16 1" "cortex-a53:neon_bf16 0"; do
    cpu=${model%%:*} want=${model#*:}
    got=$("$QEMU" -cpu "$cpu" "$BUILD/test_gemm" --print-cpu 2>&1 || true)
    cpu_last="$cpu_last$cpu: $got; "
    case "$got" in
    "best neon neon 1 $want avx2 0 avx512f 0 avx512bf16 0 kernel neon-f32 8x12") ;;
    *) cpu_ok=0; echo "arm64: -cpu $cpu: expected best neon, $want and the neon kernel, got: $got" ;;
    esac
done
if [ "$cpu_ok" = 1 ]; then passed=$((passed + 1)); verdict=ok; else failed=$((failed + 1)); failed_names+=(cpu-detect); verdict=FAIL; fi
printf 'arm64: %-20s %-14s %4d s  %s\n' cpu-detect "$verdict" "$(($(date +%s) - s0))" "$cpu_last"

echo "arm64: total $(($(date +%s) - t0)) s; logs in $BUILD/*.log"
if [ "$failed" -gt 0 ]; then echo "arm64: failed: ${failed_names[*]}"; fi
if [ "$skipped" -gt 0 ]; then
    echo "arm64: $passed passed, $failed failed, $skipped skipped"
else
    echo "arm64: $passed passed, $failed failed"
fi
[ "$failed" = 0 ]
