#!/usr/bin/env bash
# The GPU run of `rsfuse benchmark train`, as one prepared script for the `device` tool
# (one H100/H200; budget: about 7 minutes of the command's own time, so a whole call with
# start and transfers fits a 15-minute device allowance with room for one rerun).
#
# Before (here, with internet):   bash benchmarks/gpu_wheels.sh       # .whl/, ~52 MB
# Then, device tool `run`:        carry [".whl"], timeout_s 540,
#                                 command "bash benchmarks/gpu_train_check.sh"
#
# What comes back under $OUT (at most 8 files): train_gpu.json (every workload's figures,
# the format of rsfuse benchmark train), train_gpu.txt (its table), switches.json (ViT-B
# fine-tune and CromSS with each fast-default switch off in turn, if time is left), run.log.
# Workloads run one per process, most important first, each under its own time limit, so a
# slow compile or a failure costs that workload only; a workload that fails with
# torch.compile is retried without it (the JSON says so). Results are merged into $OUT after
# every workload, so a run cut short still returns what it measured.
# A smoke test of this script's logic on a CPU (rsfuse's environment active): SKIP_WHEELS=1
#   DEVICE=cpu SIZE=tiny STEPS=2 WARMUP=1 WORKLOADS="seg_pspnet:200" SWITCHES="seg_pspnet"
#   BUDGET=330 OUT=/tmp/gout bash benchmarks/gpu_train_check.sh
set -uo pipefail
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
OUT="${OUT:-/tmp/rsfuse-gpu-out}"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1
START=$SECONDS
BUDGET=${BUDGET:-420}          # seconds for everything below
left() { echo $((BUDGET - (SECONDS - START))); }

if [ -z "${SKIP_WHEELS:-}" ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || { echo "wheel install failed"; exit 1; }
  export PYTHONPATH="$PWD/src:/tmp/site"
else
  export PYTHONPATH="$PWD/src"
fi
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv || true
python3 -c "import torch, lightning, rsfuse; print('torch', torch.__version__, 'lightning',
lightning.__version__, 'rsfuse', rsfuse.__file__, torch.cuda.is_available()
and torch.cuda.get_device_name(0))" || exit 1

DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-full}
DATA=/tmp/rsfuse-bench-$SIZE
PARTS=/tmp/rsfuse-parts; rm -rf "$PARTS"; mkdir -p "$PARTS"
WORKERS=${WORKERS:-12}
WORKLOADS=${WORKLOADS:-"vit_b_finetune:90 cromss_midf:90 mgsvit_pretrain:80 dino_mm:80 seg_pspnet:60 seg_upernet_vit:60 seg_deeplabv3plus:50 moco_mm:60"}
SWITCHES=${SWITCHES:-"vit_b_finetune cromss_midf"}
COMMON=(--device "$DEVICE" --size "$SIZE" --steps "${STEPS:-20}" --warmup "${WARMUP:-6}"
        --workers "$WORKERS" --data "$DATA" --prepare-workers "$(nproc)" --no-fixed
        --data-batches 15 --gpu-busy 4 --audit-syncs 2)

combine() {  # merge the parts into $OUT/train_gpu.{json,txt} and $OUT/switches.json
python3 - "$PARTS" "$OUT" <<'PY'
import json, sys
from pathlib import Path
from rsfuse.benchmarks.train_throughput import table
parts, out = Path(sys.argv[1]), Path(sys.argv[2])
main, switches = None, []
for f in sorted(parts.glob("*.json"), key=lambda f: f.stat().st_mtime):
    r = json.loads(f.read_text())
    if f.name.startswith("switch-"):
        switches.append({"file": f.name, "speed": r["args"].get("speed"), **r["results"][0]})
        continue
    if main is None:
        main = r
        continue
    have = {x["workload"]: i for i, x in enumerate(main["results"])}
    for x in r["results"]:  # a retry without compile replaces the failed run
        x["speed_args"] = r["args"].get("speed")
        if x["workload"] in have:
            main["results"][have[x["workload"]]] = x
        else:
            main["results"].append(x)
if main is not None:
    (out / "train_gpu.json").write_text(json.dumps(main, indent=2))
    (out / "train_gpu.txt").write_text(table(main) + "\n")
(out / "switches.json").write_text(json.dumps(switches, indent=2))
PY
}

# synthetic data first (written once, ~1 min on 16 cores), outside the workloads' limits
python3 -m rsfuse.benchmarks.train_throughput --prepare-only --size "$SIZE" --data "$DATA" \
  --prepare-workers "$(nproc)" || echo "data preparation failed (each workload retries it)"
echo "data ready after $((SECONDS - START)) s"

run_one() {  # name, limit seconds, extra args...
  local name=$1 limit=$2; shift 2
  timeout "$limit" python3 -m rsfuse.benchmarks.train_throughput --workloads "$name" \
    "${COMMON[@]}" --json "$PARTS/$name.json" "$@" >"$PARTS/$name.log" 2>&1
  local rc=$?
  tail -n 25 "$PARTS/$name.log"
  if [ $rc -ne 0 ] || grep -q '"error"' "$PARTS/$name.json" 2>/dev/null; then
    return 1
  fi
}

for spec in $WORKLOADS; do
  name=${spec%%:*}; limit=${spec##*:}
  if [ "$(left)" -lt $((limit + 20)) ]; then echo "skip $name: $(left) s left"; continue; fi
  echo "=== $name (limit $limit s, $(left) s left)"
  if ! run_one "$name" "$limit"; then
    if [ "$(left)" -gt $((limit + 20)) ]; then
      echo "=== $name again without torch.compile"
      run_one "$name" "$limit" --speed compile=false || echo "$name failed twice"
    fi
  fi
  combine
done

# switches, one off at a time, while time is left (ViT-B fine-tune, then CromSS)
for name in $SWITCHES; do
  for sw in compile=false channels_last=false fused_optimizer=false pin_memory=false \
            tf32=false; do
    if [ "$(left)" -lt 60 ]; then break 2; fi
    tag="switch-$name-${sw%%=*}"
    timeout 55 python3 -m rsfuse.benchmarks.train_throughput --workloads "$name" \
      "${COMMON[@]}" --data-batches 0 --gpu-busy 0 --audit-syncs 0 --speed "$sw" \
      --json "$PARTS/$tag.json" >"$PARTS/$tag.log" 2>&1 || echo "$tag did not finish"
    combine
  done
done

combine
cat "$OUT/train_gpu.txt" 2>/dev/null
python3 - "$OUT/switches.json" <<'PY'
import json, sys
for s in json.load(open(sys.argv[1])):
    if "error" in s:
        print(f"{s['file']:45s} FAILED {s['error'][:80]}")
    else:
        print(f"{s['file']:45s} {s['rsfuse']['samples_per_s']:9.1f} samples/s (rsfuse), "
              f"{s['bare']['samples_per_s']:9.1f} (bare)")
PY
echo "done in $((SECONDS - START)) s"
