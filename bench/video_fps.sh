#!/usr/bin/env bash
# The README's video speed table: `mien video` on the test clip (275 frames, 640x360) with
# the people/examples gallery (so faces are also embedded and named, as in real use), for 1
# and 2 threads, detection on every frame and on every third. Each row is the median of RUNS
# runs (default 5): frames per second of wall-clock time (the summary line's fps: decode,
# detect, track, embed, name; no --out), and CPU time per frame (user + system, from
# /usr/bin/time), and what that CPU time allows when each thread has a free core (threads x
# 1000 / CPU ms: an estimate). The machine's load average is printed next to them: on a busy
# machine the wall-clock figure drops, the CPU time per frame much less.
#   bash bench/video_fps.sh [RUNS]      writes out/video_fps.md (THREADS="1 2" by default)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${MIEN_DATA:-../shared/data}
RUNS=${1:-5}
CLIP=$DATA/people/video/short_hamilton_clip.mp4
EX=$DATA/people/examples
make -s all
mkdir -p out
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
G=$tmp/g.db
build/mien enroll --gallery "$G" --from-dir "$EX/knn_examples/train" >/dev/null
build/mien enroll --gallery "$G" lin_manuel_miranda "$EX/lin-manuel-miranda.png" >/dev/null
build/mien enroll --gallery "$G" alex_lacamoire "$EX/alex-lacamoire.png" >/dev/null
build/mien enroll --gallery "$G" obama "$EX"/obama.jpg "$EX"/obama2.jpg "$EX"/obama-*p.jpg "$EX"/obama_small.jpg >/dev/null 2>&1
{
  echo "| threads | detection | fps (median of $RUNS) | CPU ms per frame | fps the CPU time allows on free cores | load average before |"
  echo "|---:|---|---:|---:|---:|---:|"
  for threads in ${THREADS:-1 2}; do
    for every in 1 3; do
      load=$(cut -d' ' -f1 /proc/loadavg)
      for r in $(seq "$RUNS"); do
        /usr/bin/time -f '%U %S' -o "$tmp/time" build/mien video "$CLIP" --gallery "$G" --json --quiet \
          --threads "$threads" --detect-every "$every" > "$tmp/out.jsonl"
        /usr/bin/python3 - "$tmp/out.jsonl" "$tmp/time" >> "$tmp/runs.$threads.$every" <<'EOF'
import json, sys
s = json.loads(open(sys.argv[1]).read().strip().split("\n")[-1])
u, k = map(float, open(sys.argv[2]).read().split()[-2:])
print(s["fps"], 1000 * (u + k) / s["frames"])
EOF
      done
      /usr/bin/python3 - "$tmp/runs.$threads.$every" "$threads" "$every" "$load" <<'EOF'
import statistics, sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1])]
fps = statistics.median(r[0] for r in rows)
cpu = statistics.median(r[1] for r in rows)
every = "every frame" if sys.argv[3] == "1" else "every %s frames" % sys.argv[3]
# An estimate: the work of a frame (CPU time) spread over as many free cores as threads.
print("| %s | %s | %.1f | %.1f | %.0f | %s |" % (sys.argv[2], every, fps, cpu,
      int(sys.argv[2]) * 1000 / cpu, sys.argv[4]))
EOF
    done
  done
} | tee out/video_fps.md
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)  ($(nproc) cores)"
