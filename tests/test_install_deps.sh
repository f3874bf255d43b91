#!/usr/bin/env bash
# tools/install-deps.sh (which tools/demo.sh and CI call) runs apt-get only
# when a package is missing (issue 16, point 8: a concurrent apt lock made the
# demo fail with exit 100 on a machine that had everything). apt-get, sudo
# and dpkg-query are stand-ins on PATH that record their calls.
set -u
src="${LEANDIFF_SOURCE_DIR:?}"
dir="${LEANDIFF_BUILD_DIR:-/tmp}/test-tmp/install_deps"
rm -rf "$dir"; mkdir -p "$dir/bin"
fail=0; n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=$((fail + 1)); fi; }
cat >"$dir/bin/dpkg-query" <<'SH'
#!/bin/sh
# the last argument is the package; those listed in $MISSING are not installed
for last; do :; done
for p in $MISSING; do [ "$p" = "$last" ] && exit 1; done
printf 'install ok installed'
SH
printf '#!/bin/sh\necho "apt-get $*" >>"%s/calls"\n[ "$1" = update ] || exit 100\n' "$dir" >"$dir/bin/apt-get"
printf '#!/bin/sh\n"$@"\n' >"$dir/bin/sudo"
chmod +x "$dir/bin"/*

PATH="$dir/bin:$PATH" MISSING="" bash "$src/tools/install-deps.sh" >"$dir/out" 2>&1; rc=$?
check "everything present: exit 0 without apt-get ($rc)" '[ $rc -eq 0 ] && [ ! -e "$dir/calls" ]'
PATH="$dir/bin:$PATH" MISSING="" bash "$src/tools/install-deps.sh" --ci >"$dir/out" 2>&1; rc=$?
check "  the same with --ci" '[ $rc -eq 0 ] && [ ! -e "$dir/calls" ]'
PATH="$dir/bin:$PATH" MISSING="libhiredis-dev" bash "$src/tools/install-deps.sh" >"$dir/out" 2>&1; rc=$?
check "a missing package: apt-get installs just that one" \
    'grep -q "apt-get update" "$dir/calls" && grep -q "apt-get install .* libhiredis-dev$" "$dir/calls" && ! grep -q cmake "$dir/calls"'
check "  and its failure is the script's (exit $rc)" '[ $rc -ne 0 ]'
echo "$((n - fail)) passed, $fail failed"
[ $fail = 0 ]
