#!/usr/bin/env bash
# The README's training figures: fine-tune human's MobileFaceNet on LFW people with at least
# 10 photos (at most 40 each; 40 identities held out, evenly spaced by name), one run per loss,
# and train the small network from scratch on the same data. Each run prints held-out
# verification accuracy before and after (10 identity-disjoint folds, 1,000 pairs).
# usage: bench/train_lfw.sh [LOSS|scratch ...]    (default: every loss, then scratch)
# About 15 minutes per MobileFaceNet run and 7 for scratch on 2 cores. Writes out/train/.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${MIEN_DATA:-../shared/data}
make -s all
mkdir -p out/train
common=(--data "$DATA/lfw" --min-images 10 --max-per-class 40 --holdout 40
        --pairs-out out/train/holdout_pairs.txt --batch 32 --json --quiet)
runs=${*:-"arcface cosface sphereface normface softmax scratch"}
for r in $runs; do
  if [ "$r" = scratch ]; then
    build/mien train "${common[@]}" --arch small --init none --loss cosface --epochs 6 --lr 0.1 \
      --out out/train/small-cosface.ckpt > out/train/small-cosface.json
    name=small-cosface
  else
    build/mien train "${common[@]}" --arch mobilefacenet --init mobilefacenet --head-init data \
      --loss "$r" --epochs 1 --lr 0.05 --out "out/train/mfn-$r.ckpt" > "out/train/mfn-$r.json"
    name=mfn-$r
  fi
  /usr/bin/python3 - "out/train/$name.json" <<'PY'
import json, sys
s = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(f"| {s['arch']} | {s['loss']} | {s['steps']} | {s['loss_first']:.2f} -> {s['loss_last']:.2f} "
      f"| {100*s['holdout_accuracy_before']:.1f}% | {100*s['holdout_accuracy_after']:.1f}% |")
PY
done
