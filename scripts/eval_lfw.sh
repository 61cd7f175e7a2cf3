#!/usr/bin/env bash
# LFW verification (View 2, 10 folds of 300 same + 300 different pairs) with the default
# pipeline, checked against the accuracy the README claims: fails if the measured mean
# accuracy is more than 0.2 points below it. Data: $MIEN_DATA (default ../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${MIEN_DATA:-../shared/data}
[ -f "$DATA/lfw/pairs.txt" ] || { echo "eval_lfw: no $DATA/lfw/pairs.txt (set MIEN_DATA)" >&2; exit 2; }
mkdir -p out
build/mien eval pairs --pairs "$DATA/lfw/pairs.txt" --root "$DATA/lfw" --json --roc out/lfw_roc.png \
  "$@" > out/lfw.json
claimed=$(sed -n 's/.*<!-- ci:lfw_accuracy=\([0-9.]*\) -->.*/\1/p' README.md | head -n1)
[ -n "$claimed" ] || { echo "eval_lfw: README has no <!-- ci:lfw_accuracy=... --> marker" >&2; exit 2; }
measured=$(sed -n 's/.*"accuracy":\([0-9.e-]*\),.*/\1/p' out/lfw.json)
awk -v m="$measured" -v c="$claimed" 'BEGIN {
  printf "LFW 10-fold accuracy %.2f%% (README claims %.2f%%; floor %.2f%%)\n", 100*m, c, c-0.2
  exit (100*m + 1e-9 >= c - 0.2) ? 0 : 1 }' || { echo "eval_lfw: accuracy below the claimed figure" >&2; exit 1; }
