#!/usr/bin/env bash
# The tests find their data one documented way (issue 16, point 8): a set but
# missing $LEANDIFF_TESTDATA is an error in the C tests (test_util.h), the
# shell tests (tests/lib/testdata.bash) and the Python tests (server/common.py),
# never a silent fallback to another folder; a set one is used as given;
# without it the data is <source>/../shared/testdata (also for a C test run
# outside ctest), and no test looks anywhere else.
set -u
src="${LEANDIFF_SOURCE_DIR:?}"
build="${LEANDIFF_BUILD_DIR:?}"
dir="$build/test-tmp/testdata_env"
rm -rf "$dir"; mkdir -p "$dir/empty"
fail=0; n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=$((fail + 1)); fi; }
missing="$dir/no-such-folder"

LEANDIFF_TESTDATA="$missing" "$build/test_vae" >"$dir/c.out" 2>&1; rc=$?
check "C test, LEANDIFF_TESTDATA set but missing: exit 1 naming it ($rc)" \
    '[ $rc -eq 1 ] && grep -q "LEANDIFF_TESTDATA=.$missing. is not a folder" "$dir/c.out"'
LEANDIFF_TESTDATA="$missing" bash "$src/tests/test_nonfinite.sh" >"$dir/sh.out" 2>&1; rc=$?
check "shell test, the same: exit 1 naming it ($rc)" \
    '[ $rc -eq 1 ] && grep -q "LEANDIFF_TESTDATA=.$missing. is not a folder" "$dir/sh.out"'
if command -v python3 >/dev/null; then
    LEANDIFF_TESTDATA="$missing" python3 -c "import sys; sys.path.insert(0, '$src/tests/server'); import common; common.testdata_dir('$src')" >"$dir/py.out" 2>&1; rc=$?
    check "Python tests, the same: exit 1 naming it ($rc)" \
        '[ $rc -eq 1 ] && grep -q "LEANDIFF_TESTDATA=.*no-such-folder.* is not a folder" "$dir/py.out"'
    got=$(LEANDIFF_TESTDATA="$dir/empty" python3 -c "import sys; sys.path.insert(0, '$src/tests/server'); import common; print(common.testdata_dir('$src'))")
    check "Python tests use a set LEANDIFF_TESTDATA as given" '[ "$got" = "$dir/empty" ]'
fi
# a set folder is used as given (no fallback): in an empty one the test fails naming its files
LEANDIFF_TESTDATA="$dir/empty" "$build/test_vae" >"$dir/c2.out" 2>&1; rc=$?
check "a C test reads a set LEANDIFF_TESTDATA as given ($rc)" '[ $rc -ne 0 ] && grep -q "$dir/empty/configs/" "$dir/c2.out"'
if [ -d "$src/../shared/testdata" ]; then
    # outside ctest (no LEANDIFF_SOURCE_DIR) from another folder: still <source>/../shared/testdata
    (cd "$dir" && env -u LEANDIFF_SOURCE_DIR -u LEANDIFF_TESTDATA "$build/test_vae" >"$dir/c3.out" 2>&1); rc=$?
    check "a C test run by hand finds <source>/../shared/testdata ($rc)" '[ $rc -eq 0 ]'
fi
check "no test searches other places (a parent of ../shared)" \
    '! grep -rnE "\.\./\.\./(\.\./)?shared" "$src/tests" --include=*.c --include=*.h --include=*.sh --include=*.py --include=*.bash | grep -v test_testdata_env.sh'
echo "$((n - fail)) passed, $fail failed"
[ $fail = 0 ]
