#!/bin/bash
# Paired A/B timing of two builds (or two settings) of `leandiff bench`, for
# changes smaller than the drift of a shared machine. On the project's VM the
# same evaluation drifts by 5-10 % over minutes, so two suites taken minutes
# apart cannot show a 2 % change. Here A and B alternate in ABBA order, round
# after round, each run a fresh `leandiff bench --json` with the same
# arguments; every round gives the ratio B/A of the two medians it timed, and
# slow drift cancels in the pairs. Printed: each round's seconds and ratio, then
# the median ratio, its range, and in how many rounds B was the faster.
#
#     bench/ab.sh --a BIN_A --b BIN_B [--env-a "K=V ..."] [--env-b "K=V ..."] [--rounds 6] -- BENCH_ARGS...
#
# BIN_A and BIN_B are leandiff executables (the same one to compare settings
# through --env-a / --env-b); BENCH_ARGS go to `leandiff bench` as they are
# (e.g. -m DIR --component prior --precision bf16 --warmup 2 --runs 3).
# Example, a change against the commit before it (a second build in a git worktree):
#     bench/ab.sh --a /tmp/before/build/leandiff --b build/leandiff -- -m $MODELS/cascade-prior-lite \
#         --component prior --precision bf16 --warmup 2 --runs 3
set -euo pipefail
a="" b="" env_a="" env_b="" rounds=6
usage() { echo "usage: bench/ab.sh --a BIN_A --b BIN_B [--env-a \"K=V ...\"] [--env-b \"K=V ...\"] [--rounds N] -- BENCH_ARGS..." >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --a) a=$2; shift 2 ;;
    --b) b=$2; shift 2 ;;
    --env-a) env_a=$2; shift 2 ;;
    --env-b) env_b=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --) shift; break ;;
    *) usage ;;
  esac
done
if [ -z "$a" ] || [ -z "$b" ] || [ $# -eq 0 ]; then usage; fi
[ -x "$a" ] || { echo "ab.sh: $a is not an executable" >&2; exit 2; }
[ -x "$b" ] || { echo "ab.sh: $b is not an executable" >&2; exit 2; }
case "$rounds" in ''|*[!0-9]*) usage ;; esac
[ "$rounds" -ge 1 ] || usage
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

one() {  # which (a|b), round: prints the median seconds of one bench run
  local bin=$a env=$env_a
  [ "$1" = b ] && bin=$b env=$env_b
  # shellcheck disable=SC2086 # env holds K=V words
  env $env "$bin" bench "${@:3}" --json > "$tmp/out.txt" 2> "$tmp/err.txt" ||
    { echo "ab.sh: $1 failed in round $2: $(tail -1 "$tmp/err.txt")" >&2; exit 1; }
  tail -1 "$tmp/out.txt" | python3 -c 'import json, sys; print(json.load(sys.stdin)["seconds"])'
}

echo "A: $a ${env_a:+($env_a)}"
echo "B: $b ${env_b:+($env_b)}"
echo "bench $*"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| round | A s | B s | B/A |"
echo "|---|---|---|---|"
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then sa=$(one a "$r" "$@"); sb=$(one b "$r" "$@")
  else sb=$(one b "$r" "$@"); sa=$(one a "$r" "$@"); fi
  echo "$r $sa $sb" >> "$tmp/pairs.txt"
  awk -v r="$r" -v a="$sa" -v b="$sb" 'BEGIN { printf "| %d | %.3f | %.3f | %.4f |\n", r, a, b, b / a }'
done
echo
python3 - "$tmp/pairs.txt" <<'EOF'
import statistics, sys
rows = [list(map(float, l.split()[1:])) for l in open(sys.argv[1])]
q = sorted(b / a for a, b in rows)
faster = sum(1 for a, b in rows if b < a)
print("B/A: median %.4f, range %.4f-%.4f over %d rounds; B faster in %d of %d" % (
    statistics.median(q), q[0], q[-1], len(q), faster, len(q)))
EOF
