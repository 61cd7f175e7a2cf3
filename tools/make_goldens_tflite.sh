#!/usr/bin/env bash
# Regenerates the golden outputs of the TFLite models (tests/golden/tflite_*.f32): the C side
# writes the input tensors of real photos (tests/golden_inputs.c, golden_tflite_cases), the
# independent PyTorch interpreter tools/tflite_oracle.py runs the .tflite files on them. Only
# the small outputs are committed; the test rebuilds the inputs from the photos.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build/libmien.a
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cc -std=c11 -O2 -D_POSIX_C_SOURCE=200809L -Iinclude -Isrc tools/golden_inputs_main.c tests/golden_inputs.c \
   build/libmien.a $(pkg-config --libs libjpeg libpng libwebp libcjson sqlite3 libmicrohttpd libprotobuf-c libcrypto libpq) \
   -lXNNPACK -lpthreadpool -lopenblas -lm -lpthread -lstdc++ -o "$tmp/golden_inputs"
"$tmp/golden_inputs" models "$tmp" --tflite | while read -r name model h w; do
  /usr/bin/python3 tools/tflite_oracle.py --model "models/$model" --input "$tmp/$name.in.f32" \
       --shape "1,$h,$w,3" --out "tests/golden/$name" > "tests/golden/$name.json"
  echo "golden: $name" >&2
done
