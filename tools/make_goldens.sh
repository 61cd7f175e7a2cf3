#!/usr/bin/env bash
# Regenerates the golden outputs of the TFJS graph models (tests/golden/*.f32): the C side
# writes the input tensors of real photos (tests/golden_inputs.c), the TFJS oracle
# (tools/tfjs_oracle.js, tfjs-core + backend-cpu 4.22) runs the original models on them.
# Only the small outputs are committed; the inputs are rebuilt by the test from the photos.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build/libmien.a
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cc -std=c11 -O2 -D_POSIX_C_SOURCE=200809L -Iinclude -Isrc tools/golden_inputs_main.c tests/golden_inputs.c \
   build/libmien.a $(pkg-config --libs libjpeg libpng libwebp libcjson) -lXNNPACK -lpthreadpool -lm -lpthread \
   -o "$tmp/golden_inputs"
"$tmp/golden_inputs" models "$tmp" | while read -r name model side; do
  node tools/tfjs_oracle.js --model "models/$model" --input "$tmp/$name.in.f32" \
       --shape "1,$side,$side,3" --out "tests/golden/$name" 2>/dev/null > "tests/golden/$name.json"
  echo "golden: $name" >&2
done
