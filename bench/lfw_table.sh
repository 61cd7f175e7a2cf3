#!/usr/bin/env bash
# The README's accuracy tables: LFW 10-fold verification for each detector x landmarks x
# embedder combination, and landmark error on lfw_5pt_test.txt for each landmark source.
# Writes out/lfw_table.md (and the JSON of every run in out/lfw_runs/). Takes a while:
# about 2-5 minutes per combination on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${MIEN_DATA:-../shared/data}
make -s all
mkdir -p out/lfw_runs
combos=${COMBOS:-"blazeface:none:mobilefacenet blazeface:facemesh:mobilefacenet blazeface:facemesh:mobileface
  blazeface:facemesh:faceres blazeface:none:dlib blazeface:68:dlib blazeface:facemesh:dlib
  blazeface-front:facemesh:dlib"}
{
  echo "| detector | landmarks | embedder | LFW accuracy | TAR@FAR=1e-3 | ROC AUC | images without a face | images/s |"
  echo "|---|---|---|---|---|---|---|---|"
  for c in $combos; do
    IFS=: read -r det lm emb <<< "$c"
    out=out/lfw_runs/$det-$lm-$emb.json
    build/mien eval pairs --pairs "$DATA/lfw/pairs.txt" --root "$DATA/lfw" --json --quiet \
      --detector "$det" --landmarks "$lm" --embedder "$emb" > "$out"
    /usr/bin/python3 - "$out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"| {r['detector']} | {r['landmarks']} | {r['embedder']} | {100*r['accuracy']:.2f}% ± {100*r['accuracy_std']:.2f} "
      f"| {100*r['tar_at_far_1e-3']:.2f}% | {r['auc']:.5f} | {r['images_no_face']} of {r['images']} | {r['images_per_second']:.0f} |")
PY
  done
  echo
  echo "| landmark source | NME (5 points) | eyes | nose | mouth | failures (NME > 10%) |"
  echo "|---|---|---|---|---|---|"
  for lm in none facemesh 68 68-tiny; do
    out=out/lfw_runs/landmarks-$lm.json
    build/mien eval landmarks --list "$DATA/lfw_5pt/lfw_5pt_test.txt" --root "$DATA/lfw" --json --quiet \
      --landmarks "$lm" > "$out"
    /usr/bin/python3 - "$out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); p = r['nme_per_point']
mouth = "centre" if not r['mouth_corners'] else "corners"
print(f"| {r['landmarks']} | {100*r['nme']:.2f}% | {50*(p['eye_a']+p['eye_b']):.2f}% | {100*p['nose']:.2f}% "
      f"| {50*(p['mouth_a']+p['mouth_b']):.2f}% ({mouth}) | {100*r['failure_rate_0.10']:.2f}% |")
PY
  done
} | tee out/lfw_table.md
