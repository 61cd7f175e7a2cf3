#!/usr/bin/env bash
# The README's detection table: `mien eval detection` for every detector on dlib's annotated
# photos (testing.xml and training.xml: 9 photos, 43 faces, most 37-53 px), AP at IoU 0.5
# and precision/recall at the default score threshold. Writes out/detection_table.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${MIEN_DATA:-../shared/data}
make -s all
mkdir -p out
{
  echo "| detector | annotations | faces | AP@IoU0.5 | precision | recall | at score |"
  echo "|---|---|---|---|---|---|---|"
  for det in blazeface blazeface-front ssd; do
    for gt in testing training; do
      build/mien eval detection --gt "$DATA/dlib_faces/$gt.xml" --root "$DATA/dlib_faces" \
        --detector "$det" --landmarks none --json --quiet |
      /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)
print("| %s | %s.xml | %d | %.1f%% | %.1f%% | %.1f%% | %.2f |" % (r["detector"], sys.argv[1], r["faces"],
      100 * r["ap"], 100 * r["precision"], 100 * r["recall"], r["score_threshold"]))' "$gt"
    done
  done
} | tee out/detection_table.md
