#!/usr/bin/env bash
# Alignment of profile faces: every landmark source behind each detector, measured on cfp_dev
# (CFP's frontal-vs-profile protocol, ../shared/data/cfp_dev) with one recognizer: accuracy,
# TAR at FAR 1e-3, photos without a face (after the evaluation's low-threshold retry) and the
# pairs they leave without a score. Prints a Markdown table (also out/cfp_landmarks.md).
#
#   bench/cfp_landmarks.sh [EMBEDDER]        (default: the default recognizer)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${MIEN_DATA:-../shared/data}
MIEN=${MIEN_BIN:-build/mien}
[ -n "${MIEN_BIN:-}" ] || make -s build/mien
emb=${1:-}
mkdir -p out
out=out/cfp_landmarks.jsonl
: > "$out"
for det in blazeface ultraface@320+ultraface@640; do
  for lm in facemesh 68 facemesh+68 onet; do
    "$MIEN" eval pairs --pairs "$DATA/cfp_dev/pairs.tsv" --root "$DATA/cfp_dev" --json --quiet \
      --detector "$det" --landmarks "$lm" ${emb:+--embedder "$emb"} | tail -1 >> "$out"
    echo "done: $det $lm" >&2
  done
done
/usr/bin/python3 - "$out" <<'PY' | tee out/cfp_landmarks.md
import json, sys
print("| detector | landmarks | cfp_dev accuracy | TAR@FAR 1e-3 | photos without a face | pairs without a score |")
print("|---|---|---|---|---|---|")
for line in open(sys.argv[1]):
    r = json.loads(line)
    print("| %s | %s | %.2f%% ± %.2f | %.2f%% | %d of %d | %d of %d |" % (
        r["detector"], r["landmarks"], 100 * r["accuracy"], 100 * r["accuracy_std"],
        100 * r["tar_at_far_1e-3"], r["images_no_face"], r["images"], r["pairs_missing"], r["pairs"]))
PY
