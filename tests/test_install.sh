#!/usr/bin/env bash
# The library as a library: `make install` into a staging folder (PREFIX and
# DESTDIR) gives the header, libleandiff.a and libleandiff.so.0 (SONAME) and
# leandiff.pc; the shared library exports only ld_* functions; the README's
# example builds with pkg-config, shared and static, and makes an image
# whose PNG carries the parameters text; ld_pipeline_options_init gives the
# documented defaults (VAE tiling automatic).
set -u
src="${LEANDIFF_SOURCE_DIR:?}"
build="${LEANDIFF_BUILD_DIR:?}"
command -v pkg-config >/dev/null || { echo "SKIP: pkg-config missing"; exit 77; }
. "$src/tests/lib/testdata.bash"
dir="$build/test-tmp/install"
rm -rf "$dir"; mkdir -p "$dir"
make_tiny_model "$dir/tiny"
fail=0; n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=$((fail + 1)); fi; }

prefix=/opt/leandiff-test
cmake -S "$src" -B "$dir/b" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=$prefix >/dev/null 2>"$dir/err" &&
  cmake --build "$dir/b" -j 2 --target leandiff leandiff_static leandiff_shared >/dev/null 2>>"$dir/err" && DESTDIR="$dir/stage" cmake --install "$dir/b" >/dev/null 2>>"$dir/err"
root="$dir/stage$prefix"
lib=$(ls -d "$root"/lib* 2>/dev/null | head -1)
check "installed: header, static and shared library, leandiff.pc, the program" '[ -f "$root/include/leandiff.h" ] && [ -f "$lib/libleandiff.a" ] && [ -f "$lib/libleandiff.so.0" ] && [ -f "$lib/pkgconfig/leandiff.pc" ] && [ -x "$root/bin/leandiff" ]'
check "the SONAME is libleandiff.so.0" 'objdump -p "$lib/libleandiff.so.0" | grep -q "SONAME *libleandiff.so.0"'
nm -D --defined-only "$lib/libleandiff.so.0" | awk '$2 ~ /[TDBR]/ {print $3}' | sort > "$dir/exports"
check "the shared library exports only ld_* ($(wc -l < "$dir/exports") symbols)" '[ -s "$dir/exports" ] && ! grep -v "^ld_" "$dir/exports" | grep -v "^_" | grep -q . && grep -qx ld_generate "$dir/exports" && ! grep -q "ops_act\|wu_grn\|ld_gemm" "$dir/exports"'
export PKG_CONFIG_PATH="$lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$dir/stage"
cc "$src/examples/generate.c" $(pkg-config --cflags --libs leandiff) -o "$dir/ex_shared" 2>"$dir/err"
check "the example builds with pkg-config (shared)" '[ -x "$dir/ex_shared" ]'
LD_LIBRARY_PATH="$lib" "$dir/ex_shared" "$dir/tiny" "a koala" "$dir/shared.png" 64 64 2 >/dev/null 2>"$dir/err"
check "  and runs, writing a PNG with the parameters text" '[ -s "$dir/shared.png" ] && "$root/bin/leandiff" info "$dir/shared.png" | grep -q "Steps: 2"'
cc "$src/examples/generate.c" $(pkg-config --cflags leandiff) "$lib/libleandiff.a" $(pkg-config --libs --static leandiff | sed 's/-lleandiff//') -o "$dir/ex_static" 2>"$dir/err"
check "the example links statically" '[ -x "$dir/ex_static" ] && ! ldd "$dir/ex_static" | grep -q libleandiff'
"$dir/ex_static" "$dir/tiny" "a koala" "$dir/static.png" 64 64 2 >/dev/null 2>"$dir/err"
check "  and makes the same image" 'cmp -s "$dir/shared.png" "$dir/static.png"'
"$dir/ex_static" "$dir/nowhere" x "$dir/x.png" 2>"$dir/err"; rc=$?
check "  a bad model folder is an error, not a crash" '[ $rc -eq 1 ] && grep -q nowhere "$dir/err"'
echo "$((n - fail)) passed, $fail failed"
[ $fail = 0 ]
