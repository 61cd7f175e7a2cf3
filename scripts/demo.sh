#!/usr/bin/env bash
# mien's main job on real photos: the group photos that come with face-api's package
# (fetched by the setup into models/demo/) -> faces found, drawn, embedded, compared.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p out/demo
echo "== mien detect: faces, scores and landmarks (pictures in out/demo/)"
build/mien detect models/demo/sample*.jpg --draw out/demo
echo
echo "== mien detect --json (first photo)"
build/mien detect --json models/demo/sample1.jpg | tee out/demo/sample1.json | cut -c1-300
echo "..."
echo
echo "== mien embed: one ${MIEN_EMBEDDER:-mobilefacenet-tflite} embedding per face (out/demo/embeddings.jsonl)"
build/mien embed --json models/demo/sample*.jpg > out/demo/embeddings.jsonl
echo "$(wc -l < out/demo/embeddings.jsonl) photos embedded"
echo
echo "== mien verify: the largest face of two different photos"
build/mien verify models/demo/sample1.jpg models/demo/sample3.jpg
