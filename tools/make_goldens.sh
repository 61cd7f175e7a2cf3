#!/usr/bin/env bash
# Regenerates the golden outputs of the TFJS graph models (tests/golden/*.f32): the C side
# writes the input tensors of real photos (tests/golden_inputs.c), the TFJS oracle
# (tools/tfjs_oracle.js, tfjs-core + backend-cpu 4.22) runs the original models on them.
# ONNX models get theirs from PyTorch running the ONNX file (tools/onnx_torch_oracle.py).
# Only the small outputs are committed; the inputs are rebuilt by the test from the photos.
#   tools/make_goldens.sh [CASE...]     all cases, or only those named
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build/libmien.a
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cc -std=c11 -O2 -D_POSIX_C_SOURCE=200809L -Iinclude -Isrc tools/golden_inputs_main.c tests/golden_inputs.c \
   build/libmien.a $(pkg-config --libs libjpeg libpng libwebp libcjson sqlite3 libmicrohttpd libprotobuf-c \
   libcrypto libpq) -lXNNPACK -lpthreadpool -lopenblas -lm -lpthread -lstdc++ \
   -o "$tmp/golden_inputs"
"$tmp/golden_inputs" models "$tmp" | while read -r name model height width outputs; do
  if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then continue; fi
  case $model in
  *.onnx) # the PyTorch oracle, run from the ONNX file itself
    /usr/bin/python3 tools/onnx_torch_oracle.py --model "models/$model" --input "$tmp/$name.in.f32" \
         --shape "1,$height,$width,3" --outputs "$outputs" --out "tests/golden/$name" > "tests/golden/$name.json" ;;
  *)
    sel=(); [ "$outputs" = "-" ] || sel=(--outputs "$outputs")
    node tools/tfjs_oracle.js --model "models/$model" --input "$tmp/$name.in.f32" \
         --shape "1,$height,$width,3" "${sel[@]}" --out "tests/golden/$name" 2>/dev/null > "tests/golden/$name.json" ;;
  esac
  echo "golden: $name" >&2
done
