#!/usr/bin/env bash
# Embeddings of every LFW photo and every cfp_dev photo for one pipeline configuration, cached
# for bench/recog.py (which computes LFW 10-fold, TAR@FAR, cfp_dev, open-set identification
# and fusions from them without embedding again). One run of `mien eval pairs --dump` per set:
# the same face pick and retry as the evaluations. A fused embedder (A+B) dumps both parts at
# once (bench/recog.py splits them), so one run covers two embedders with these landmarks.
#
# usage: bench/recog_cache.sh EMBEDDER LANDMARKS flip|noflip [DETECTOR]   (writes out/recog/emb/)
# e.g.   bench/recog_cache.sh dlib+frfeature facemesh flip blazeface
# DETECTOR (default blazeface, the detector of the first tables) is part of the cache's name
# when it is not blazeface: LANDMARKS~DETECTOR with '@' written as ':'.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${MIEN_DATA:-../shared/data}
emb=$1 lm=$2 flip=$3 det=${4:-blazeface}
mkdir -p out/recog/emb
[ -s out/recog/lfw_all.tsv ] || /usr/bin/python3 bench/recog.py lists "$DATA" out/recog/lfw_all.tsv
tag="$emb@$lm@$flip"
[ "$det" = blazeface ] || tag="$emb@$lm~${det//@/:}@$flip"
for set in lfw cfp; do
  dump=out/recog/emb/$tag.$set.jsonl
  [ -e "$dump.done" ] && continue
  if [ $set = lfw ]; then pairs=out/recog/lfw_all.tsv root=$DATA/lfw
  else pairs=$DATA/cfp_dev/pairs.tsv root=$DATA/cfp_dev; fi
  /usr/bin/time -f "%e %U %S" -o "$dump.time" ${MIEN_BIN:-build/mien} eval pairs --pairs "$pairs" --root "$root" --embedder "$emb" --landmarks "$lm" --detector "$det" \
    $([ "$flip" = noflip ] && echo --no-flip) --json --quiet --threads "${THREADS:-2}" \
    --dump "$dump" > "$dump.json"
  /usr/bin/python3 bench/recog.py pack "$dump" && rm -f "$dump" && touch "$dump.done"
done
