#!/usr/bin/env bash
# Would mixed precision (bf16 storage of activations and gradients, fp32 arithmetic and master
# weights) speed up mien's training on this CPU? One thread, MobileFaceNet, batch 64:
#   1. `mien train --bench-step` times whole steps and each op (forward and backward);
#   2. build/bench_mixed (bench/bench_mixed.c) times the memory-bound passes, batch norm's four
#      over every layer, with fp32 activations (mien's kernels) and with bf16 ones.
# The products (the own GEMM) run near the core's fp32 FMA peak: their operands' bytes do not
# bound them, so storage in bf16 could only speed up the passes; the projection is the step
# with those passes at bf16's time, before the conversions the products would then need.
# Prints a summary and one JSON line. About 3 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build/mien build/bench_mixed
out=out/mixed
mkdir -p "$out"
build/mien train --bench-step 10000 --batch 64 --steps 3 --threads 1 --json > "$out/step.json"
step_ms=$(/usr/bin/python3 -c "import json; print(json.load(open('$out/step.json'))['ms_per_step'])")
build/bench_mixed "$step_ms" > "$out/mixed.json"
/usr/bin/python3 - "$out/step.json" "$out/mixed.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); m = json.load(open(sys.argv[2]))
bn = s["ms_forward"].get("batchnorm_train", 0) + s["ms_backward"].get("batchnorm_train", 0)
gemm = s["ms_forward"].get("conv2d", 0) + s["ms_backward"].get("conv2d", 0) + s["ms_head"]
step = s["ms_per_step"]
# scale the bf16 saving measured on the isolated passes to the passes inside the step
ratio = m["bf16_storage_ms"] / m["fp32_kernels_ms"]
proj = step - bn * (1 - ratio)
print(f"one step, 1 thread: {step:.0f} ms; products (convolutions, head) {gemm:.0f} ms, "
      f"batch norm passes {bn:.0f} ms ({100 * bn / step:.0f}%)")
print(f"batch norm passes alone over {m['layers']} layers: fp32 {m['fp32_kernels_ms']:.0f} ms, "
      f"bf16 storage {m['bf16_storage_ms']:.0f} ms ({100 * (1 - ratio):.0f}% less)")
print(f"step with bf16 activations, projected: {proj:.0f} ms ({100 * (step - proj) / step:.1f}% less), "
      "before converting the products' operands")
print(json.dumps({"step_ms": round(step), "bn_ms": round(bn), "bn_bf16_saving": round(1 - ratio, 3),
                  "projected_step_saving": round((step - proj) / step, 3)}))
PY
