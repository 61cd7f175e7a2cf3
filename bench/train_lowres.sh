#!/usr/bin/env bash
# A fine-tune that helps: fr_feature (faceplugin's 512-d ArcFace model, loaded and trained as
# it is) adapted to small, blurred faces, the faces of crowds and of surveillance cameras.
#
# The domain, assembled from the data here: a face about 17 pixels wide, enlarged back to the
# photo's size (INTER_AREA down, bilinear up, JPEG quality 95). LFW's photos are reduced to
# 0.2 of their side (their faces are about 85 pixels wide); each cfp_dev photo by 17 / the
# width of its face's box (`mien detect`; photos without a face are left out of the small
# copies).
#   train: the 100 people of cfp_dev (1,170 photos, frontal and profile), each photo as it is
#          and its small copy (2,337 photos);
#   test:  LFW View 2 (6,000 pairs of other people, 10 folds) on the small copies, before and
#          after; and LFW View 2 as it is, which must not fall by more than 0.1 point.
# The recipe is bench/train_cfp.sh's, unchanged (AdamW, lr 2e-5, 2 epochs of batch 32, class
# centres from the data, random flips), for the softmax, CosFace and ArcFace losses. Every
# figure is `mien eval pairs --json` through the ordinary pipeline (default detection stage,
# mirrored face); the base model runs as `--embedder arcface:models/faceplugin/fr_feature.onnx`
# (the input normalisation `mien train` gives it), the fine-tunes as `--model-file`.
#
# usage: bench/train_lowres.sh [LOSS ...]     (default: softmax cosface arcface)
#        BASE=models/expo/MobileFaceNet.tflite bench/train_lowres.sh arcface
#        (the default embedder instead, (x - 127.5) / 128 as `mobilefacenet-tflite`; its
#        files are named mfn-*)
# Writes out/train_lowres/ (the small copies, checkpoints, loss curves, evaluations); what is
# there already is not made again (delete the folder to start over). On 2 cores: about 2
# minutes for the copies, 1-2 per training, 1-2 per evaluation.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${MIEN_DATA:-../shared/data}
BASE=${BASE:-models/faceplugin/fr_feature.onnx}
out=out/train_lowres
tag="" base_emb="arcface:$BASE" input=()
case $BASE in *.tflite) tag=mfn- base_emb=mobilefacenet-tflite input=(--input-scale 0.0078125) ;; esac
mkdir -p "$out"
make -s build/mien
losses=${*:-"softmax cosface arcface"}

[ -s "$out/cfp_det.jsonl" ] || build/mien detect --json $(find "$DATA/cfp_dev/Data/Images" -name '*.jpg' | sort) \
    > "$out/cfp_det.jsonl" 2>/dev/null
/usr/bin/python3 - "$DATA" "$out" <<'PY'
import json, os, sys
import cv2
data, out = sys.argv[1], sys.argv[2]

def small(im, k):
    h, w = im.shape[:2]
    s = cv2.resize(im, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
    return cv2.resize(s, (w, h), interpolation=cv2.INTER_LINEAR)

q = [cv2.IMWRITE_JPEG_QUALITY, 95]
done = os.path.join(out, "lfw_small", ".done")
if not os.path.exists(done):  # the photos of pairs.txt
    lines = open(os.path.join(data, "lfw", "pairs.txt")).read().split("\n")[1:]
    photos = set()
    for l in lines:
        f = l.split()
        if len(f) == 3: photos |= {(f[0], int(f[1])), (f[0], int(f[2]))}
        elif len(f) == 4: photos |= {(f[0], int(f[1])), (f[2], int(f[3]))}
    for who, i in sorted(photos):
        rel = f"{who}/{who}_{i:04d}.jpg"
        os.makedirs(os.path.join(out, "lfw_small", who), exist_ok=True)
        cv2.imwrite(os.path.join(out, "lfw_small", rel), small(cv2.imread(os.path.join(data, "lfw", rel)), 0.2), q)
    open(done, "w").close()
done = os.path.join(out, "cfp_train", ".done")
if not os.path.exists(done):
    for line in open(os.path.join(out, "cfp_det.jsonl")):
        o = json.loads(line)
        pid, kind, f = o["image"].split("/")[-3:]
        os.makedirs(os.path.join(out, "cfp_train", pid), exist_ok=True)
        im = cv2.imread(o["image"])
        name = os.path.join(out, "cfp_train", pid, kind[0] + f[:-4])
        cv2.imwrite(name + ".jpg", im, q)
        if o.get("faces"):
            box = max(o["faces"], key=lambda x: x["box"][2] * x["box"][3])["box"]
            cv2.imwrite(name + "_small.jpg", small(im, min(1.0, 17.0 / max(box[2], 1.0))), q)
    open(done, "w").close()
PY

evaluate() { # NAME MODEL-ARGS...: LFW small and as it is, unless already there
  local name=$tag$1; shift
  [ -s "$out/$name.small.json" ] || build/mien eval pairs --pairs "$DATA/lfw/pairs.txt" --root "$out/lfw_small" \
      --json --quiet "$@" > "$out/$name.small.json"
  [ -s "$out/$name.lfw.json" ] || build/mien eval pairs --pairs "$DATA/lfw/pairs.txt" --root "$DATA/lfw" \
      --json --quiet "$@" > "$out/$name.lfw.json"
}

evaluate base --embedder "$base_emb"
for loss in $losses; do
  if [ ! -s "$out/$tag$loss.train.json" ]; then
    build/mien train --data "$out/cfp_train" --init "$BASE" "${input[@]}" --loss "$loss" --head-init data \
      --batch 32 --epochs 2 --optimizer adamw --lr 2e-5 --json --quiet \
      --cache "$out/${tag}crops.bin" --out "$out/$tag$loss.ckpt" > "$out/$tag$loss.train.json"
  fi
  evaluate "$loss" --model-file "$out/$tag$loss.ckpt"
done

/usr/bin/python3 - "$out" "$tag" "$(basename "$BASE")" $losses <<'PY'
import json, os, sys
out, tag, base, losses = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
def ev(name, kind):
    f = os.path.join(out, f"{tag}{name}.{kind}.json")
    return json.load(open(f)) if os.path.exists(f) and os.path.getsize(f) else None
def acc(r):
    return f"{100 * r['accuracy']:.2f}% ± {100 * r['accuracy_std']:.2f}" if r else "not run"
def tar(r):
    return f"{100 * r['tar_at_far_1e-3']:.2f}%" if r else "-"
bs, bl = ev("base", "small"), ev("base", "lfw")
print("| model | steps | loss first -> last | LFW, small faces | TAR@FAR 1e-3, small | LFW as it is |")
print("|---|---:|---|---:|---:|---:|")
print(f"| {base} as shipped | - | - | {acc(bs)} | {tar(bs)} | {acc(bl)} |")
res = {"base": {"small": bs and bs["accuracy"], "small_std": bs and bs["accuracy_std"], "lfw": bl and bl["accuracy"]}}
for loss in losses:
    t = [json.loads(l) for l in open(os.path.join(out, f"{tag}{loss}.train.json"))]
    s = t[-1]
    rs, rl = ev(loss, "small"), ev(loss, "lfw")
    print(f"| fine-tuned, {loss} | {s['steps']} | {s['loss_first']:.2f} -> {s['loss_last']:.2f} "
          f"| {acc(rs)} | {tar(rs)} | {acc(rl)} |")
    res[loss] = {"small": rs and rs["accuracy"], "lfw": rl and rl["accuracy"], "steps": s["steps"],
                 "loss_first": s["loss_first"], "loss_last": s["loss_last"]}
    if bs and rs and bl and rl:
        gain, fall = rs["accuracy"] - bs["accuracy"], bl["accuracy"] - rl["accuracy"]
        res[loss]["helps"] = bool(gain > max(bs["accuracy_std"], rs["accuracy_std"]) and fall <= 0.001)
print()
print(json.dumps(res))
PY
