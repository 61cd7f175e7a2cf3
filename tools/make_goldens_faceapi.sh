#!/usr/bin/env bash
# Regenerate the face-api golden outputs (tests/golden/faceapi_*) with the real face-api
# running under Node (tools/faceapi_oracle.js). The inputs are not stored: they are the
# synthetic face pictures that both the oracle and tests/test_faceapi.c compute from an integer
# formula (seed 0 and 1). Needs models/faceapi (make setup) and tools/node_modules
# (cd tools && npm install).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v node >/dev/null || { echo "node is required" >&2; exit 1; }
[ -d tools/node_modules/@vladmandic/face-api ] || { echo "run: cd tools && npm install" >&2; exit 1; }
out=tests/golden
mkdir -p "$out"
nets=${*:-recognition}
for net in $nets; do
  for seed in 0 1; do
    node tools/faceapi_oracle.js --net "$net" --models models/faceapi --synth "$seed" \
      --out "$out/faceapi_${net}_s${seed}" 2> >(grep -v -e '^=*$' -e '^Hi, looks like' -e '^$' >&2)
  done
done
