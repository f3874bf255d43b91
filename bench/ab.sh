#!/bin/bash
# Paired A/B timing of two builds (or two settings) of `leandiff bench`, for
# changes smaller than the drift of a shared machine. On the project's VM the
# same evaluation drifts by 5-10 % over minutes, so two suites taken minutes
# apart cannot show a 2 % change. Here A and B alternate in ABBA order, round
# after round, each run a fresh `leandiff bench --json` with the same
# arguments; every round gives the ratio B/A of the two medians it timed, and
# slow drift cancels in the pairs. Printed: each round's seconds and ratio (and
# the ratio of the CPU-seconds of those runs, which time spent descheduled does
# not inflate), then the median ratio, its range, and in how many rounds B was
# the faster.
#
#     bench/ab.sh --a BIN_A --b BIN_B [--env-a "K=V ..."] [--env-b "K=V ..."] [--rounds 6] -- BENCH_ARGS...
#
# BIN_A and BIN_B are leandiff executables (the same one to compare settings
# through --env-a / --env-b); BENCH_ARGS go to `leandiff bench` as they are
# (e.g. -m DIR --component prior --precision bf16 --warmup 2 --runs 3).
# Example, a change against the commit before it, built in a git worktree at $OLD:
#     bench/ab.sh --a $OLD/build/leandiff --b build/leandiff -- -m $MODELS/cascade-prior-lite \
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

one() {  # which (a|b), round: prints the median seconds and CPU-seconds of one bench run
  local bin=$a env=$env_a
  [ "$1" = b ] && bin=$b env=$env_b
  # shellcheck disable=SC2086 # env holds K=V words
  env $env "$bin" bench "${@:3}" --json > "$tmp/out.txt" 2> "$tmp/err.txt" ||
    { echo "ab.sh: $1 failed in round $2: $(tail -1 "$tmp/err.txt")" >&2; exit 1; }
  tail -1 "$tmp/out.txt" | python3 -c 'import json, sys; j = json.load(sys.stdin); print(j["seconds"], j["cpu_seconds"])'
}

echo "A: $a ${env_a:+($env_a)}"
echo "B: $b ${env_b:+($env_b)}"
echo "bench $*"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| round | A s | B s | B/A | A CPU-s | B CPU-s | B/A CPU-s |"
echo "|---|---|---|---|---|---|---|"
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then ta=$(one a "$r" "$@"); tb=$(one b "$r" "$@")
  else tb=$(one b "$r" "$@"); ta=$(one a "$r" "$@"); fi
  echo "$r $ta $tb" >> "$tmp/pairs.txt"
  echo "$r $ta $tb" | awk 'function q(b, a) { return a > 0 ? sprintf("%.4f", b / a) : "-" }
    { printf "| %d | %.3f | %.3f | %s | %.2f | %.2f | %s |\n", $1, $2, $4, q($4, $2), $3, $5, q($5, $3) }'
done
echo
python3 - "$tmp/pairs.txt" <<'EOF'
import statistics, sys
rows = [list(map(float, l.split()[1:])) for l in open(sys.argv[1])]
for name, ia, ib in (("B/A", 0, 2), ("B/A CPU-s", 1, 3)):
    q = sorted(r[ib] / r[ia] for r in rows if r[ia] > 0)
    if not q:
        print("%s: no round with A above 0" % name)
        continue
    faster = sum(1 for r in rows if r[ia] > 0 and r[ib] < r[ia])
    print("%s: median %.4f, range %.4f-%.4f over %d rounds; B lower in %d of %d" % (
        name, statistics.median(q), q[0], q[-1], len(q), faster, len(q)))
EOF
