#!/usr/bin/env bash
# Regenerate the face-api golden outputs (tests/golden/faceapi_*) with the real face-api
# running under Node (tools/faceapi_oracle.js); tests/test_faceapi.c compares mien's coded
# architectures (src/nn/faceapi.c) with them. No input is stored:
#   - faceapi_<net>_s<seed>: the synthetic face picture that the oracle and the test both
#     compute from an integer formula (seeds 0 and 1; the SSD detector seed 0 only);
#   - faceapi_ssd_sample1: models/demo/sample1.jpg, decoded by mien (tools/faceapi_image.c,
#     built here against build/libmien.a) and handed to face-api as a tensor, so both sides
#     start from the same pixels; face-api pads and resizes it to 512x512 itself.
# Needs models/ (make setup), tools/node_modules (cd tools && npm install) and a C compiler.
#   tools/make_goldens_faceapi.sh [recognition landmarks68 landmarks68tiny ssd expression agegender]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v node >/dev/null || { echo "node is required" >&2; exit 1; }
[ -d tools/node_modules/@vladmandic/face-api ] || { echo "run: cd tools && npm install" >&2; exit 1; }
out=tests/golden
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

oracle() { # TFJS prints a banner suggesting tfjs-node: keep stderr for real errors only
  node tools/faceapi_oracle.js --models models/faceapi "$@" 2> >(grep -v -e '^=*$' -e '^Hi, looks like' >&2)
}

for net in ${*:-recognition landmarks68 landmarks68tiny ssd expression agegender}; do
  case $net in
  ssd)
    oracle --net ssd --synth 0 --min-confidence 0.05 --out "$out/faceapi_ssd_s0"
    rm -f "$out/faceapi_ssd_s0".{2,3}.f32 "$out/faceapi_ssd_s0.dets.json"
    make -s build/libmien.a
    # shellcheck disable=SC2046
    cc -std=c11 -Iinclude -Isrc tools/faceapi_image.c build/libmien.a \
      $(pkg-config --libs libjpeg libpng libwebp libcjson) -lm -o "$tmp/faceapi_image"
    read -r w h < <("$tmp/faceapi_image" models/demo/sample1.jpg "$tmp/sample1.f32")
    oracle --net ssd --input "$tmp/sample1.f32" --size "$w,$h" --min-confidence 0.3 \
      --out "$out/faceapi_ssd_sample1"
    rm -f "$out/faceapi_ssd_sample1.dets.json"
    ;;
  *)
    for seed in 0 1; do oracle --net "$net" --synth "$seed" --out "$out/faceapi_${net}_s${seed}"; done
    ;;
  esac
done
