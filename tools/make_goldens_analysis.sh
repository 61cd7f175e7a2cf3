#!/usr/bin/env bash
# Regenerates the golden outputs of the face analysis models (tests/golden/analysis_*.f32):
# the C side writes each model's input tensor, its crop of a fixed face of demo/sample1.jpg
# (tests/golden_inputs.c: golden_analysis_input; tools/analysis_inputs_main.c), then the
# original model runs on it in its own framework:
#   - Human's TFJS graph models in TensorFlow.js under Node (tools/tfjs_oracle.js);
#   - faceplugin's ONNX models in PyTorch, op by op from the ONNX file
#     (tools/onnx_torch_oracle_simple.py);
#   - expo's TFLite anti-spoofing model in PyTorch, op by op from the flatbuffer
#     (tools/tflite_oracle.py).
# tests/test_analysis.c compares mien's graphs with them on both backends (1e-4).
# Needs models/ (make setup), tools/node_modules (make tools) and /usr/bin/python3 with torch
# and onnx (Debian python3-torch, python3-onnx).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build/libmien.a
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# shellcheck disable=SC2046
cc -std=c11 -O2 -D_POSIX_C_SOURCE=200809L -Iinclude -Isrc tools/analysis_inputs_main.c tests/golden_inputs.c \
   build/libmien.a $(pkg-config --libs libjpeg libpng libwebp libcjson libprotobuf-c) -lXNNPACK -lpthreadpool \
   -lopenblas -lstdc++ -lm -lpthread -o "$tmp/analysis_inputs"
"$tmp/analysis_inputs" models "$tmp" | while read -r name file shape outputs; do
  out="tests/golden/analysis_$name"
  case $file in
    *.onnx) /usr/bin/python3 tools/onnx_torch_oracle_simple.py "models/$file" "$tmp/$name.in.f32" "$shape" "$out" >/dev/null ;;
    *.tflite) /usr/bin/python3 tools/tflite_oracle.py --model "models/$file" --input "$tmp/$name.in.f32" \
                   --shape "$shape" --out "$out" >/dev/null ;;
    *.json) node tools/tfjs_oracle.js --model "models/$file" --input "$tmp/$name.in.f32" --shape "$shape" \
                 --outputs "$outputs" --out "$out" 2>/dev/null >/dev/null ;;
    *) echo "make_goldens_analysis: $name: no oracle for $file" >&2; exit 1 ;;
  esac
  echo "golden: $name ($file)" >&2
done
