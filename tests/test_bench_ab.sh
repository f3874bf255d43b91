#!/usr/bin/env bash
# bench/ab.sh: bad arguments and a failing run give a message and a non-zero
# status; two rounds on a tiny random model print one table row per round
# and the two summaries (seconds and CPU-seconds) with positive ratios.
set -u
SRC=${LEANDIFF_SOURCE_DIR:?run through ctest}
BIN=${LEANDIFF_BIN:?}
AB="$SRC/bench/ab.sh"
command -v python3 >/dev/null || { echo "SKIP: python3 not found"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 checks=0

check() {  # description, then a command that must succeed
  local what=$1
  shift
  checks=$((checks + 1))
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; fails=$((fails + 1)); fi
}

# expect STATUS PATTERN ARGS...: ab.sh exits with STATUS and stderr matches PATTERN
expect() {
  local want=$1 pattern=$2
  shift 2
  bash "$AB" "$@" > "$tmp/out" 2> "$tmp/err"
  local got=$?
  [ "$got" = "$want" ] && grep -q -- "$pattern" "$tmp/err" ||
    { echo "  status $got (want $want), stderr: $(head -c 300 "$tmp/err")"; return 1; }
}

check "no arguments: usage" expect 2 "usage: bench/ab.sh"
check "no bench arguments: usage" expect 2 "usage:" --a "$BIN" --b "$BIN"
check "unknown option: usage" expect 2 "usage:" --a "$BIN" --b "$BIN" --bogus -- x
check "missing binary named" expect 2 "$tmp/none is not an executable" --a "$tmp/none" --b "$BIN" -- x
check "rounds not a number" expect 2 "usage:" --a "$BIN" --b "$BIN" --rounds two -- x
check "zero rounds" expect 2 "usage:" --a "$BIN" --b "$BIN" --rounds 0 -- x
check "failing bench: which side, which round, the bench's message" \
  expect 1 "a failed in round 1: leandiff bench: .*config.json" \
  --a "$BIN" --b "$BIN" --rounds 1 -- -m "$tmp/missing" --component unet

"$BIN" init-random --pipeline tiny --out "$tmp/tiny" > /dev/null 2>&1 || { echo "FAIL: init-random"; exit 1; }
bash "$AB" --a "$BIN" --b "$BIN" --env-b "LEANDIFF_PACK_CACHE=0" --rounds 2 -- -m "$tmp/tiny" --component unet \
  -W 64 -H 64 --runs 1 --warmup 0 --probe-seconds 0.05 -t 1 > "$tmp/out" 2> "$tmp/err"
status=$?
check "two rounds run (status $status, stderr: $(head -c 200 "$tmp/err"))" test "$status" = 0
check "one table row per round" test "$(grep -c '^| [12] |' "$tmp/out")" = 2
check "B's settings named" grep -q "^B: .*(LEANDIFF_PACK_CACHE=0)" "$tmp/out"
for what in "B/A" "B/A CPU-s"; do
  check "$what summary with a positive median over 2 rounds" python3 - "$tmp/out" "$what" <<'PY'
import re, sys
text, name = open(sys.argv[1]).read(), sys.argv[2]
m = re.search(r"^%s: median ([0-9.]+), range ([0-9.]+)-([0-9.]+) over 2 rounds; B lower in [0-2] of 2$" % re.escape(name),
              text, re.M)
sys.exit(0 if m and 0 < float(m.group(2)) <= float(m.group(1)) <= float(m.group(3)) else 1)
PY
done

echo "$((checks - fails)) passed, $fails failed"
[ "$fails" = 0 ]
