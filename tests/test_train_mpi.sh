#!/usr/bin/env bash
# Data-parallel training under `mpirun -np 2` (Open MPI) on the tiny KOALA
# pipeline: 2 processes x batch 1 end with the weights of 1 process x
# batch 2 (full fine-tuning with gradient accumulation, LoRA, and KOALA
# distillation from the tiny SDXL teacher), within the training tolerance;
# a process killed mid-run ends the run with a clear error and the newest
# checkpoint complete; --resume on 2 processes then ends bit for bit where
# the run that never stopped ended, and on 1 process with the same global
# batch within float tolerance; data-free distillation samples the
# teacher's latents once; --replay is refused under mpirun.
set -u
bin="${LEANDIFF_BIN:?}"
td="${LEANDIFF_TESTDATA:-${LEANDIFF_SOURCE_DIR:?}/../shared/testdata}"
model="$td/models/koala-700m-tiny"
[ -d "$model/unet" ] || { echo "SKIP: no testdata"; exit 77; }
command -v mpirun >/dev/null || { echo "SKIP: mpirun (openmpi-bin) not installed"; exit 77; }
dir="${LEANDIFF_BUILD_DIR:-/tmp}/test-tmp/train_mpi"
rm -rf "$dir"; mkdir -p "$dir/data" "$dir/teacher"
fail=0; n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=$((fail + 1)); fi; }

# CI runs as root; the processes share this machine's two cores.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# Under ASan: Open MPI keeps its own allocations until exit (not ours).
export OMPI_MCA_mca_base_component_disable_dlclose=1  # keeps its plugins loaded, so their frames have names
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0"  # whole stacks through its libraries
export LSAN_OPTIONS="suppressions=${LEANDIFF_SOURCE_DIR:?}/tests/lsan-openmpi.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
mpi2=(mpirun -np 2)

for i in 1 2 3 4; do
  "$bin" generate -m "$model" -p "picture $i" --seed $i --steps 2 -q -o "$dir/data/img$i.png" >/dev/null 2>&1
  echo "a photo of sks toy, view $i" > "$dir/data/img$i.txt"
done
common=(-m "$model" --data "$dir/data" --resolution 64 --lr 1e-3 --flip --caption-dropout 0.25 -q -t 1)

# relative L2 distance of the updates (final - initial) of two weight files,
# worst over tensors (the tolerance is testdata/README.md's for parameter
# changes after training steps, 1e-2: Adam's m/sqrt(v) turns rounding in
# near-zero gradients into visible steps), and of the loss columns
cat > "$dir/cmp.py" <<'PY'
import array, json, struct, sys
def load(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n]); h.pop('__metadata__', None); d = b[8 + n:]
    out = {}
    for k, v in h.items():
        raw = d[v['data_offsets'][0]:v['data_offsets'][1]]
        if v['dtype'] == 'F32': out[k] = array.array('f', raw)
        elif v['dtype'] == 'F16': out[k] = [x[0] for x in struct.iter_unpack('<e', raw)]
        else: out[k] = [struct.unpack('<f', b'\0\0' + raw[i:i + 2])[0] for i in range(0, len(raw), 2)]
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
init = load(sys.argv[3]) if len(sys.argv) > 3 else {}
worst = 0
for k in a:
    x0 = init.get(k, [0.0] * len(a[k]))
    da = [x - y for x, y in zip(a[k], x0)]; db = [x - y for x, y in zip(b[k], x0)]
    num = sum((x - y) ** 2 for x, y in zip(da, db)) ** 0.5; den = sum(x * x for x in da) ** 0.5
    if den > 0: worst = max(worst, num / den)
    elif num > 0: worst = float('inf')
print(worst)
PY
upd() { python3 "$dir/cmp.py" "$@"; }
losses() { python3 -c '
import sys
a = [l.split(",") for l in open(sys.argv[1]).read().split("\n")[1:] if l]
b = [l.split(",") for l in open(sys.argv[2]).read().split("\n")[1:] if l]
ok = len(a) == len(b) and all(abs(float(x[1]) - float(y[1])) <= 1e-5 * abs(float(x[1])) for x, y in zip(a, b))
print("same" if ok else "differ")' "$1" "$2"; }
w=unet/diffusion_pytorch_model.safetensors

# full fine-tuning with gradient accumulation: 1 x (batch 2, accum 2) against 2 x (batch 1, accum 2)
"$bin" train "${common[@]}" --batch 2 --accum 2 --steps 3 --out "$dir/one" 2>"$dir/err1"; rc1=$?
# (small buckets: most are summed while the backward still runs, each as its last tensor is final)
"${mpi2[@]}" "$bin" train "${common[@]/-q/-vv}" --batch 1 --accum 2 --steps 3 --bucket-mb 0.05 --out "$dir/two" >"$dir/out2" 2>"$dir/err2"; rc2=$?
check "full: both runs end" '[ $rc1 -eq 0 ] && [ $rc2 -eq 0 ] && [ -f "$dir/two/$w" ]'
d=$(upd "$dir/one/$w" "$dir/two/$w" "$model/$w" 2>&1)
echo "     full: updates differ by $d (relative L2, worst tensor)"
check "full: 2 processes x batch 1 = 1 process x batch 2 (updates within 1e-2)" 'python3 -c "import sys; sys.exit(0 if float(\"$d\") <= 1e-2 else 1)"'
check "buckets are summed during the backward" 'grep "gradient sums:" "$dir/err2" | tail -1 | awk "{ exit !(\$5 > 50 && \$5 < \$7) }"'
check "full: the same losses" '[ "$(losses "$dir/one/loss.csv" "$dir/two/loss.csv")" = same ]'
check "process 0 alone reports" '[ $(grep -c "steps, final loss" "$dir/out2") -eq 1 ] && [ $(grep -c "step 3/3" "$dir/err2") -eq 1 ] && grep -q "process 1 of 2: batch 1 of a global batch of 4" "$dir/err2"'

# LoRA: the adapters' buckets are summed after the backward
"$bin" train "${common[@]}" --lora 4 --batch 2 --steps 3 --out "$dir/lora1" 2>/dev/null
"${mpi2[@]}" "$bin" train "${common[@]}" --lora 4 --batch 1 --steps 3 --out "$dir/lora2" >/dev/null 2>&1
l=pytorch_lora_weights.safetensors
d=$(upd "$dir/lora1/$l" "$dir/lora2/$l" 2>&1)
echo "     LoRA: weights differ by $d"
check "LoRA: 2 processes x batch 1 = 1 process x batch 2 (within 1e-2)" '[ -f "$dir/lora2/$l" ] && python3 -c "import sys; sys.exit(0 if float(\"$d\") <= 1e-2 else 1)"'

# KOALA distillation from the tiny SDXL teacher (a pipeline made of koala-700m-tiny's parts and its U-Net)
for x in "$model"/*; do ln -s "$(cd "$(dirname "$x")" && pwd)/$(basename "$x")" "$dir/teacher/"; done
rm "$dir/teacher/unet"; ln -s "$(cd "$td/models/sdxl-teacher-tiny" && pwd)/unet" "$dir/teacher/unet"
dist=(--teacher "$dir/teacher" --student koala-700m --data "$dir/data" --resolution 64 --lr 1e-3 --steps 3 -q -t 1)
"$bin" distill "${dist[@]}" --batch 2 --out "$dir/d1" 2>"$dir/errd1"; rc1=$?
"${mpi2[@]}" "$bin" distill "${dist[@]}" --batch 1 --bucket-mb 0.1 --out "$dir/d2" >/dev/null 2>"$dir/errd2"; rc2=$?
check "distill: both runs end" '[ $rc1 -eq 0 ] && [ $rc2 -eq 0 ]'
"$bin" distill --teacher "$dir/teacher" --student koala-700m --out "$dir/d0" --init-only 2>/dev/null
d=$(upd "$dir/d1/$w" "$dir/d2/$w" "$dir/d0/$w" 2>&1)
echo "     distill: updates differ by $d"
check "distill: 2 processes x batch 1 = 1 process x batch 2 (within 1e-2)" 'python3 -c "import sys; sys.exit(0 if float(\"$d\") <= 1e-2 else 1)"'
check "distill: the same four losses" '[ "$(losses "$dir/d1/loss.csv" "$dir/d2/loss.csv")" = same ] && head -1 "$dir/d2/loss.csv" | grep -q loss_feat'

# data-free: process 0 samples the teacher's latents, the others read them
printf 'a red koala\na koala reading a book\nblue trees\na snowy street\n' > "$dir/prompts.txt"
free=(--teacher "$dir/teacher" --student koala-700m --prompts "$dir/prompts.txt" --resolution 64 --gen-steps 2 --lr 1e-3 --steps 3 -q -t 1)
"$bin" distill "${free[@]}" --batch 2 --out "$dir/f1" 2>/dev/null; rc1=$?
"${mpi2[@]}" "$bin" distill "${free[@]}" --batch 1 --out "$dir/f2" -v >/dev/null 2>"$dir/errf2"; rc2=$?
d=$(upd "$dir/f1/$w" "$dir/f2/$w" "$dir/d0/$w" 2>&1)
echo "     data-free: updates differ by $d"
check "data-free: process 1 reads process 0's latents; 2 x batch 1 = 1 x batch 2 (within 1e-2)" '[ $rc1 -eq 0 ] && [ $rc2 -eq 0 ] && [ $(grep -c "teacher latents read from" "$dir/errf2") -eq 1 ] && python3 -c "import sys; sys.exit(0 if float(\"$d\") <= 1e-2 else 1)"'

# a process killed mid-run
steps=40
"${mpi2[@]}" "$bin" train "${common[@]}" --batch 1 --steps $steps --out "$dir/ref" >/dev/null 2>&1
( "${mpi2[@]}" sh -c 'echo $$ > "$0/pid.$OMPI_COMM_WORLD_RANK"; exec "$@"' "$dir" "$bin" train "${common[@]}" \
    --batch 1 --steps $steps --save-every 1 --out "$dir/killed" >/dev/null 2>"$dir/errk"; echo $? > "$dir/rck" ) &
for _ in $(seq 400); do [ -d "$dir/killed/checkpoint-3" ] && break; sleep 0.05; done
kill -9 "$(cat "$dir/pid.1")" 2>/dev/null
wait
rck=$(cat "$dir/rck")
check "a killed process ends the run with an error" '[ "$rck" -ne 0 ] && grep -q "exited on signal 9" "$dir/errk"'
last=$(ls "$dir/killed" | sed -n 's/^checkpoint-\([0-9]*\)$/\1/p' | sort -n | tail -1)
echo "     killed after checkpoint-$last of $steps steps"
check "the newest checkpoint is complete" '[ -n "$last" ] && [ "$last" -lt $steps ] && [ -f "$dir/killed/checkpoint-$last/trainer_state.json" ] && [ -f "$dir/killed/checkpoint-$last/adam_v.safetensors" ] && [ ! -d "$dir/killed/unet" ]'
"${mpi2[@]}" "$bin" train "${common[@]}" --batch 1 --steps $steps --save-every 1 --out "$dir/killed" \
    --resume "$dir/killed/checkpoint-$last" >/dev/null 2>"$dir/errr"; rc=$?
check "--resume on 2 processes ends where the uninterrupted run ended, bit for bit" '[ $rc -eq 0 ] && cmp -s "$dir/ref/$w" "$dir/killed/$w"'
check "loss.csv holds each step once" '[ $(tail -n +2 "$dir/killed/loss.csv" | cut -d, -f1 | sort -n | uniq | wc -l) -eq $steps ] && [ $(wc -l < "$dir/killed/loss.csv") -eq $((steps + 1)) ]'
# (a few steps: at this learning rate rounding differences grow over tens of steps, as they would on any engine)
"${mpi2[@]}" "$bin" train "${common[@]}" --batch 1 --steps $((last + 3)) --out "$dir/two3" --resume "$dir/killed/checkpoint-$last" >/dev/null 2>&1
"$bin" train "${common[@]}" --batch 2 --steps $((last + 3)) --out "$dir/alone" --resume "$dir/killed/checkpoint-$last" 2>"$dir/erra"; rc=$?
d=$(upd "$dir/two3/$w" "$dir/alone/$w" "$model/$w" 2>&1)
echo "     resumed on 1 process x batch 2: updates differ by $d"
check "--resume on 1 process with the same global batch" '[ $rc -eq 0 ] && python3 -c "import sys; sys.exit(0 if float(\"$d\") <= 1e-2 else 1)"'
"$bin" train "${common[@]}" --batch 1 --steps $steps --out "$dir/x" --resume "$dir/killed/checkpoint-$last" 2>"$dir/err"; rc=$?
check "--resume with another global batch is refused" '[ $rc -ne 0 ] && grep -q "x 2 processes" "$dir/err"'

"${mpi2[@]}" "$bin" train -m "$model" --replay "$td/train/koala-700m-tiny.safetensors" --dump "$dir/dump.safetensors" >/dev/null 2>"$dir/err"; rc=$?
check "--replay under mpirun is refused" '[ $rc -ne 0 ] && grep -q "one process" "$dir/err"'

echo "$((n - fail)) passed, $fail failed"
[ $fail -eq 0 ]
