#!/usr/bin/env bash
# Every detector mien can run, measured the same way (the README's detector table):
#   AP at IoU 0.5 on ../shared/data/wider_train (300 crowded WIDER FACE photos, faces of at least
#   32 px count, smaller ones are don't-care) and on dlib_faces (testing.xml + training.xml,
#   faces of at least 20 px), and the median CPU ms of one detection on a 640x480 photo (20
#   wider_train photos resized to 640x480, one thread, after a warm-up).
#
#   bench/detector_table.sh                  every row below
#   bench/detector_table.sh ROW...           only the rows whose label is given
#
# A row is "label|detector|landmarks|extra options". Landmarks "none" measures the detector's
# boxes alone; a landmark source measures the whole detection stage (the face mesh's presence
# check drops faces). Writes out/detector_table.jsonl (one eval JSON per row and data set) and
# prints the Markdown table (also out/detector_table.md). The machine's load average during
# each timing is in the JSON: times on a busy machine are only comparable within one run.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${MIEN_DATA:-../shared/data}
MIEN=${MIEN_BIN:-build/mien}
[ -n "${MIEN_BIN:-}" ] || make -s build/mien
mkdir -p out

ROWS=(
  "blazeface|blazeface|none|"
  "blazeface+mesh (the former default)|blazeface|facemesh|"
  "blazeface --tile|blazeface|none|--tile"
  "blazeface-front|blazeface-front|none|"
  "mediapipe-short|mediapipe-short|none|"
  "mediapipe-full|mediapipe-full|none|"
  "ssd|ssd|none|"
  "ultraface@320|ultraface@320|none|"
  "ultraface@480|ultraface@480|none|"
  "ultraface@640|ultraface@640|none|"
  "ultraface@800|ultraface@800|none|"
  "ultraface@960|ultraface@960|none|"
  "ultraface@320+ultraface@640|ultraface@320+ultraface@640|none|"
  "ultraface@480+ultraface@960|ultraface@480+ultraface@960|none|"
  "ultraface@640+mediapipe-full|ultraface@640+mediapipe-full|none|"
  "ultraface@480+blazeface|ultraface@480+blazeface|none|"
  "ultraface@320+ultraface@640+mesh|ultraface@320+ultraface@640|facemesh|"
  "blazeface+onet|blazeface|onet|"
  "ultraface@320+onet|ultraface@320|onet|"
  "ultraface@320+ultraface@640+onet (default)|ultraface@320+ultraface@640|onet|"
)

want() {
  [ $# -eq 0 ] && return 0
  local l=$1; shift
  for a in "${SELECT[@]}"; do [ "$a" = "$l" ] && return 0; done
  return 1
}
SELECT=("$@")

out=out/detector_table.jsonl
[ $# -eq 0 ] && : > "$out"
for row in "${ROWS[@]}"; do
  IFS='|' read -r label det lm extra <<< "$row"
  if [ ${#SELECT[@]} -gt 0 ] && ! want "$label" "${SELECT[@]}"; then continue; fi
  # shellcheck disable=SC2086
  w=$("$MIEN" eval detection --gt "$DATA/wider_train/wider_train_gt.txt" \
        --root "$DATA/wider_train/images" --min-size 32 --detector "$det" --landmarks "$lm" \
        --time 20 --json --quiet $extra)
  d1=$("$MIEN" eval detection --gt "$DATA/dlib_faces/testing.xml" --root "$DATA/dlib_faces" \
        --detector "$det" --landmarks "$lm" --json --quiet $extra)
  d2=$("$MIEN" eval detection --gt "$DATA/dlib_faces/training.xml" --root "$DATA/dlib_faces" \
        --detector "$det" --landmarks "$lm" --json --quiet $extra)
  for j in "$w" "$d1" "$d2"; do
    printf '%s\n' "$j" | /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin); r["label"]=sys.argv[1]; print(json.dumps(r))' "$label" >> "$out"
  done
  echo "done: $label" >&2
done

/usr/bin/python3 - "$out" <<'EOF' | tee out/detector_table.md
import json, sys
rows = {}
order = []
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["label"] not in rows:
        rows[r["label"]] = {}
        order.append(r["label"])
    key = "wider" if "wider" in r["gt"] else ("testing" if "testing" in r["gt"] else "training")
    rows[r["label"]][key] = r
print("| detector | landmark stage | AP wider_train (≥ 32 px) | AP dlib testing | AP dlib training | ms per 640x480 (load) | AP per ms |")
print("|---|---|---|---|---|---|---|")
for l in order:
    r = rows[l]
    w = r.get("wider", {})
    ms = w.get("ms_per_640x480", -1)
    ap = w.get("ap", 0)
    lm = "none (boxes)" if w.get("boxes_only") else "yes"
    print("| %s | %s | %.3f | %.3f | %.3f | %.1f (%.0f) | %.3f |" % (
        l, lm, ap, r.get("testing", {}).get("ap", 0), r.get("training", {}).get("ap", 0),
        ms, w.get("load_average", 0), ap / ms if ms > 0 else 0))
EOF
