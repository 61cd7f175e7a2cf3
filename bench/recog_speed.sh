#!/usr/bin/env bash
# Photos per second end to end (decode, detect, landmarks, embed every face) over all 13,233
# LFW photos with `mien embed --threads 2`, for each recognizer given
# (EMBEDDER:LANDMARKS[:flip|noflip[:DETECTOR]], DETECTOR blazeface when not given).
# On a shared machine the wall clock counts other people's work too, so the CPU time of the
# run is measured as well: photos / ((user + sys) / 2) is the rate on two cores of our own
# (the two workers are independent, one photo each). Results merge into out/recog/speed.json
# (read by bench/recog.py for the README table).
# usage: bench/recog_speed.sh dlib:facemesh frfeature:facemesh:noflip \
#            frfeature+mobilefacenet-tflite:onet:flip:ultraface@320+ultraface@640 ...
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${MIEN_DATA:-../shared/data}
make -s build/mien
mkdir -p out/recog
for c in "$@"; do
  IFS=: read -r emb lm flag det <<< "$c"
  flag=${flag:-flip} det=${det:-blazeface}
  tag="$emb@$lm@$flag"  # the cache name of bench/recog_cache.sh
  [ "$det" = blazeface ] || tag="$emb@$lm~${det//@/:}@$flag"
  t="out/recog/speed-$tag.time"
  /usr/bin/time -f '%e %U %S' -o "$t" build/mien embed --threads 2 --json --embedder "$emb" \
    --landmarks "$lm" --detector "$det" $([ "$flag" = noflip ] && echo --no-flip) \
    $(find "$DATA/lfw" -name '*.jpg' | sort) > out/recog/speed-embed.jsonl
  n=$(wc -l < out/recog/speed-embed.jsonl)
  /usr/bin/python3 - "$t" "$tag" "$n" <<'PY'
import json, os, sys
e, u, s = map(float, open(sys.argv[1]).read().split()[-3:])
n = int(sys.argv[3]); path = 'out/recog/speed.json'
d = json.load(open(path)) if os.path.exists(path) else {}
d[sys.argv[2]] = {'photos': n, 'wall_s': e, 'cpu_s': u + s, 'photos_per_s_wall': n / e,
                  'photos_per_s_2cores': n / ((u + s) / 2)}
json.dump(d, open(path, 'w'), indent=1)
print(sys.argv[2], json.dumps(d[sys.argv[2]]))
PY
done
