#!/usr/bin/env bash
# The one prepared benchmark run on the accelerator machine (issue 6): device probe, then
# rmpl_jax's tools/bench.py (train, then decode, each in its own process so each peak memory
# is its own), then the shared HF reference, all on Qwen2.5-VL-7B shapes; then the ratio table.
#
# Needs device/ filled by benchmarks/prepare_device.sh (wheels + reference scripts) and
# carried. Writes to $OUT: probe.jsonl, ours.jsonl, hf.jsonl, ratios.md, summary.json, run.log.
# Every part has its own time limit (seconds, overridable by env) so the whole stays under
# ~9 minutes; a part that fails or runs out is logged and the next one still runs.
#   T_PROBE=60 T_TRAIN=180 T_DECODE=180 T_HF=120
#   BENCH_SIZE=7b  BENCH_ARGS="--remat full"  (extra flags for both tools/bench.py parts)
#   HF_DEVICE=cuda HF_ARGS=""                  (the reference's device and extra flags)
#   SKIP="hf"      (comma list of probe,train,decode,hf)
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/rmpl_bench_out}"
mkdir -p "$OUT"
LOG="$OUT/run.log"
: > "$LOG"
rm -f "$OUT"/probe.jsonl "$OUT"/ours.jsonl "$OUT"/hf.jsonl "$OUT"/ratios.md "$OUT"/summary.json
export PYTHONUNBUFFERED=1
# Let XLA take most of the card (default is 75%); peak figures come from the allocator's own
# high-water mark either way.
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.95}"
SIZE="${BENCH_SIZE:-7b}"
ARGS="${BENCH_ARGS:-}"
SKIP=",${SKIP:-},"
T0=$(date +%s)

say() { echo "[run_h200 +$(( $(date +%s) - T0 ))s] $*" | tee -a "$LOG"; }

if [ ! -f device/bench/hf_reference.py ]; then
  say "device/bench/hf_reference.py missing: run benchmarks/prepare_device.sh here and carry 'device'"
  exit 2
fi
if ls device/wheels/*.whl > /dev/null 2>&1; then
  if python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
       --target /tmp/rmpl_site device/wheels/*.whl >> "$LOG" 2>&1; then
    export PYTHONPATH="/tmp/rmpl_site${PYTHONPATH:+:$PYTHONPATH}"
  else
    say "wheel install failed (see run.log); continuing without grain/ml_collections"
  fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
[ -f device/revision.txt ] && say "revision: $(tr '\n' ' ' < device/revision.txt)"
python3 -c "import grain, ml_collections, rmpl_jax; print('imports ok: grain', getattr(grain, '__version__', '?'))" >> "$LOG" 2>&1 \
  || say "import check failed (see run.log)"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv,noheader >> "$LOG" 2>&1

# part NAME LIMIT JSONL CMD...: stdout (JSON lines) appended to $OUT/JSONL, stderr to run.log.
part() {
  local name="$1" limit="$2" jsonl="$3"
  shift 3
  if [[ "$SKIP" == *",$name,"* ]]; then say "skip $name"; return 0; fi
  say "start $name (limit ${limit}s): $*"
  local start rc
  start=$(date +%s)
  echo "=== $name: $*" >> "$LOG"
  timeout --kill-after=15 "$limit" "$@" 2>> "$LOG" | tee -a "$OUT/$jsonl" > /dev/null
  rc=${PIPESTATUS[0]}
  say "end $name: rc=$rc after $(( $(date +%s) - start ))s"
  if [ "$rc" != 0 ]; then
    echo "--- last lines of run.log ($name failed):"
    tail -n 25 "$LOG"
  fi
}

part probe "${T_PROBE:-60}" probe.jsonl python3 device/bench/device_probe.py
# shellcheck disable=SC2086  # ARGS is a list of flags
part train "${T_TRAIN:-180}" ours.jsonl python3 tools/bench.py --size "$SIZE" --what train $ARGS
# shellcheck disable=SC2086
part decode "${T_DECODE:-180}" ours.jsonl python3 tools/bench.py --size "$SIZE" --what decode $ARGS
# shellcheck disable=SC2086
part hf "${T_HF:-120}" hf.jsonl python3 device/bench/hf_reference.py --size "$SIZE" --device "${HF_DEVICE:-cuda}" ${HF_ARGS:-}

touch "$OUT/ours.jsonl" "$OUT/hf.jsonl" "$OUT/probe.jsonl"
python3 benchmarks/ratios.py "$OUT/ours.jsonl" "$OUT/hf.jsonl" --probe "$OUT/probe.jsonl" \
  --out "$OUT/ratios.md" --summary-out "$OUT/summary.json" > /dev/null 2>> "$LOG" \
  || say "ratios.py failed (see run.log)"
say "all parts done"
echo "--- probe"; cat "$OUT/probe.jsonl"
echo "--- ours (figure: value unit)"
python3 - "$OUT/ours.jsonl" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    if line.startswith("{"):
        r = json.loads(line)
        b = f" [batch {r['batch']}]" if r.get("figure", "").startswith("decode") else ""
        print(f"{r.get('figure')}{b}: {r.get('value')} {r.get('unit')}")
EOF
echo "--- hf"; cut -c1-400 "$OUT/hf.jsonl"
echo "--- ratios"; cat "$OUT/ratios.md" "$OUT/summary.json" 2> /dev/null
