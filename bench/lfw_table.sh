#!/usr/bin/env bash
# The README's accuracy tables: LFW 10-fold verification for each detector x landmarks x
# embedder combination, and landmark error on lfw_5pt_test.txt for each landmark source.
# Writes out/lfw_table.md (and the JSON of every run in out/lfw_runs/). Takes a while:
# about 3-20 minutes per combination on 2 cores. The ms column is the models' time for one
# LFW photo on one thread (detector + landmarks + embedder, twice with the mirrored face),
# from `mien bench --json` (out/bench.json, run first when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${MIEN_DATA:-../shared/data}
make -s all
mkdir -p out/lfw_runs
[ -s out/bench.json ] || build/mien bench --json > out/bench.json
combos=${COMBOS:-"blazeface:facemesh:mobilefacenet-tflite blazeface:none:mobilefacenet blazeface:facemesh:mobilefacenet blazeface:facemesh:mobileface
  blazeface:facemesh:faceres blazeface:none:dlib blazeface:68:dlib blazeface:facemesh+68:dlib
  blazeface:facemesh:dlib:noflip blazeface:facemesh:dlib blazeface-front:facemesh:dlib"}
{
  echo "| detector | landmarks | embedder | flip | LFW accuracy | TAR@FAR=1e-3 | ROC AUC | images without a face | ms per photo (1 thread) |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for c in $combos; do
    IFS=: read -r det lm emb flag <<< "$c"
    out=out/lfw_runs/$det-$lm-$emb${flag:+-$flag}.json
    build/mien eval pairs --pairs "$DATA/lfw/pairs.txt" --root "$DATA/lfw" --json --quiet \
      --detector "$det" --landmarks "$lm" --embedder "$emb" ${flag:+--no-flip} > "$out"
    /usr/bin/python3 - "$out" out/bench.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ms = {m['name']: m['ms'] for m in json.load(open(sys.argv[2]))['models']}
lm = sum(ms[x] for x in r['landmarks'].split('+') if x != 'none')
t = ms[r['detector']] + lm + ms[r['embedder']] * (2 if r['flip'] else 1)
print(f"| {r['detector']} | {r['landmarks']} | {r['embedder']} | {'yes' if r['flip'] else 'no'} "
      f"| {100*r['accuracy']:.2f}% ± {100*r['accuracy_std']:.2f} "
      f"| {100*r['tar_at_far_1e-3']:.2f}% | {r['auc']:.5f} | {r['images_no_face']} of {r['images']} | {t:.1f} |")
PY
  done
  echo
  echo "| landmark source | NME (5 points) | eyes | nose | mouth | failures (NME > 10%) |"
  echo "|---|---|---|---|---|---|"
  for lm in none facemesh 68 68-tiny facemesh+68; do
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
