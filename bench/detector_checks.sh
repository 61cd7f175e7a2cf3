#!/usr/bin/env bash
# The "no face lost" checks of a detector setting (the README's detection checks table):
#   - cfp_dev: how many of its 1,170 photos (780 frontal, 390 profile) give at least one face;
#   - dlib_faces/dogs.jpg: faces found on a photo of dogs (should be 0);
#   - people/labels.tsv: labelled faces found (a photo counts its detections up to the number
#     of people labelled in it; photos where fewer faces than people are found are listed).
#
#   bench/detector_checks.sh [mien detect options...]     e.g. --detector blazeface
# Prints one JSON object (also appended to out/detector_checks.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${MIEN_DATA:-../shared/data}
MIEN=${MIEN_BIN:-build/mien}
[ -n "${MIEN_BIN:-}" ] || make -s build/mien
mkdir -p out
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

(cd "$DATA/cfp_dev" && find Data/Images -name '*.jpg' | sort) > "$tmp/cfp.txt"
(cd "$DATA/cfp_dev" && xargs "$OLDPWD/$MIEN" detect --json --models "$OLDPWD/models" "$@" < "$tmp/cfp.txt") > "$tmp/cfp.jsonl"
"$MIEN" detect --json "$@" "$DATA/dlib_faces/dogs.jpg" > "$tmp/dogs.jsonl"
grep -v '^#' "$DATA/people/labels.tsv" | cut -f1 > "$tmp/people.txt"
(cd "$DATA/people" && xargs "$OLDPWD/$MIEN" detect --json --models "$OLDPWD/models" "$@" < "$tmp/people.txt") > "$tmp/people.jsonl"

/usr/bin/python3 - "$tmp" "$DATA/people/labels.tsv" "$*" <<'EOF' | tee -a out/detector_checks.jsonl
import json, sys
tmp, labels, opts = sys.argv[1], sys.argv[2], sys.argv[3]
def rows(name):
    return [json.loads(l) for l in open("%s/%s.jsonl" % (tmp, name))]
cfp = rows("cfp")
res = {"options": opts}
for kind in ("frontal", "profile"):
    r = [x for x in cfp if "/%s/" % kind in x["image"]]
    res["cfp_%s_with_face" % kind] = sum(1 for x in r if x["faces"])
    res["cfp_%s_photos" % kind] = len(r)
res["cfp_with_face"] = sum(1 for x in cfp if x["faces"])
res["cfp_photos"] = len(cfp)
res["cfp_without_face"] = [x["image"] for x in cfp if not x["faces"]][:20]
res["dogs_faces"] = len(rows("dogs")[0]["faces"])
want = {}
for line in open(labels):
    if line.startswith("#") or not line.strip():
        continue
    path, ids = line.rstrip("\n").split("\t")[:2]
    want[path] = len(ids.split(","))
found = labelled = 0
short = []
for x in rows("people"):
    n = want[x["image"]]
    labelled += n
    found += min(n, len(x["faces"]))
    if len(x["faces"]) < n:
        short.append("%s: %d of %d" % (x["image"], len(x["faces"]), n))
res["people_labelled_faces"] = labelled
res["people_faces_found"] = found
res["people_short"] = short
print(json.dumps(res))
EOF
