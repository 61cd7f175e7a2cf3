#!/usr/bin/env bash
# The README's fine-tuning figures: adapt fr_feature (faceplugin's 512-d MobileFaceNet-size
# ArcFace model, models/faceplugin/fr_feature.onnx, loaded and trained as it is) to profile
# faces with CFP (../shared/data/cfp_dev): the 50 people of its protocol's fold 1 (001-050, 580
# photos, frontal and profile) train, the 50 of fold 2 (051-100) test, on fold 2's 700
# frontal-profile pairs (CFP's own, 350 same + 350 different) split into 10 identity-disjoint
# groups of 5 people (70 pairs each; the threshold is chosen on the other 9: mean +- std over
# the groups). Before and after for the softmax, CosFace and ArcFace losses with one recipe
# (AdamW, lr 2e-5, 2 epochs of batch 32, class centres from the data), each with LFW (View 2,
# 6,000 pairs) to check that the general case does not fall. Every evaluation is
# `mien eval pairs ... --flip --json` through the ordinary pipeline (the default detection
# stage, ArcFace crop); photos without a face count as "different".
#
# usage: bench/train_cfp.sh [LOSS ...]     (default: softmax cosface arcface)
# Writes out/train_cfp/ (checkpoints, loss curves, evaluations); an evaluation whose JSON is
# already there is not run again (delete the folder to start over). On 2 shared cores: about
# 5 minutes per training, 1 per CFP evaluation and 15-30 per LFW evaluation.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${MIEN_DATA:-../shared/data}
CFP=$DATA/cfp_dev
BASE=models/faceplugin/fr_feature.onnx
out=out/train_cfp
mkdir -p "$out"
make -s build/mien
losses=${*:-"softmax cosface arcface"}

# Training folders: one per person of fold 1, links to its frontal (f*) and profile (p*)
# photos; the test pairs: fold 2's lines of pairs.tsv with the group as the fold.
/usr/bin/python3 - "$CFP" "$out" <<'PY'
import os, sys
cfp, out = sys.argv[1], sys.argv[2]
root = os.path.join(out, "fold1")
for p in range(1, 51):
    pid = f"{p:03d}"
    os.makedirs(os.path.join(root, pid), exist_ok=True)
    for kind in ("frontal", "profile"):
        src = os.path.join(cfp, "Data/Images", pid, kind)
        for f in sorted(os.listdir(src)):
            dst = os.path.join(root, pid, kind[0] + f)
            if not os.path.lexists(dst):
                os.symlink(os.path.abspath(os.path.join(src, f)), dst)
with open(os.path.join(out, "fold2_pairs.tsv"), "w") as o:
    for line in open(os.path.join(cfp, "pairs.tsv")):
        a, b, same, fold = line.rstrip("\n").split("\t")
        if fold == "1":
            o.write(f"{a}\t{b}\t{same}\t{(int(a.split('/')[2]) - 51) // 5}\n")
PY

evaluate() { # NAME MODEL-ARGS...: fold 2 and LFW, unless already there
  local name=$1; shift
  [ -s "$out/$name.cfp.json" ] || build/mien eval pairs --pairs "$out/fold2_pairs.tsv" --root "$CFP" \
      --flip --json --quiet "$@" > "$out/$name.cfp.json"
  [ -s "$out/$name.lfw.json" ] || build/mien eval pairs --pairs "$DATA/lfw/pairs.txt" --root "$DATA/lfw" \
      --flip --json --quiet "$@" > "$out/$name.lfw.json"
}

evaluate base --embedder "arcface:$BASE"
for loss in $losses; do
  if [ ! -s "$out/$loss.train.json" ]; then
    build/mien train --data "$out/fold1" --init "$BASE" --loss "$loss" --head-init data \
      --batch 32 --epochs 2 --optimizer adamw --lr 2e-5 --json --quiet \
      --cache "$out/crops-fold1.bin" --out "$out/$loss.ckpt" > "$out/$loss.train.json"
  fi
  evaluate "$loss" --model-file "$out/$loss.ckpt"
done

/usr/bin/python3 - "$out" $losses <<'PY'
import json, os, sys
out, losses = sys.argv[1], sys.argv[2:]
def ev(name, kind):  # None when that evaluation has not finished
    f = os.path.join(out, f"{name}.{kind}.json")
    return json.load(open(f)) if os.path.exists(f) and os.path.getsize(f) else None
def acc(r):
    return f"{100 * r['accuracy']:.2f}% +- {100 * r['accuracy_std']:.2f}" if r else "not run"
b_cfp, b_lfw = ev("base", "cfp"), ev("base", "lfw")
print("| model | steps | loss first -> last | CFP fold 2, frontal-profile | LFW |")
print("|---|---:|---|---:|---:|")
print(f"| fr_feature as shipped | - | - | {acc(b_cfp)} | {acc(b_lfw)} |")
res = {"base": {"cfp": b_cfp and b_cfp["accuracy"], "cfp_std": b_cfp and b_cfp["accuracy_std"],
                "lfw": b_lfw and b_lfw["accuracy"]}}
for loss in losses:
    f = os.path.join(out, f"{loss}.train.json")
    if not (os.path.exists(f) and os.path.getsize(f)):
        print(f"| fine-tuned, {loss} | not run | | | |")
        continue
    s = json.loads(open(f).read().strip().splitlines()[-1])
    c, l = ev(loss, "cfp"), ev(loss, "lfw")
    print(f"| fine-tuned, {loss} | {s['steps']} | {s['loss_first']:.2f} -> {s['loss_last']:.2f} "
          f"| {acc(c)} | {acc(l)} |")
    res[loss] = {"cfp": c and c["accuracy"], "cfp_std": c and c["accuracy_std"], "lfw": l and l["accuracy"],
                 "gain": c and b_cfp and c["accuracy"] - b_cfp["accuracy"],
                 "lfw_change": l and b_lfw and l["accuracy"] - b_lfw["accuracy"],
                 "checkpoint": os.path.join(out, f"{loss}.ckpt"), "loss_curve": os.path.join(out, f"{loss}.ckpt.loss.png")}
print(json.dumps(res))
PY
