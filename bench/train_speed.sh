#!/usr/bin/env bash
# Training speed: MobileFaceNet (batch 64, 112x112, ArcFace over 10,000 classes, SGD) in mien and
# in PyTorch 1.13 (Debian's python3-torch, bench/train_speed_torch.py: the same network, head
# and optimizer) side by side in one run, on 1 and 2 threads: whole training steps (forward,
# loss, backward, update) on random images, images/s of wall-clock time and the process's peak
# memory (ru_maxrss; PyTorch's includes the torch library itself).
#
# The two alternate (mien, PyTorch, mien, PyTorch, ...; ROUNDS rounds of STEPS timed steps after
# one warm-up step each), so that a machine shared with other work slows both alike; each
# figure is the median of its rounds, and the load average is printed beside it. The last line
# is one JSON object:
#   {"threads": [1, 2], "mien_images_per_s": [a, b], "torch_images_per_s": [c, d]}
#
# usage: bench/train_speed.sh            (ROUNDS=3 STEPS=4 by default; about 10 minutes on an
#                                        idle machine, an hour on a loaded one)
#        bench/train_speed.sh --report   the table again from out/train_speed, counting only the
#                                        rounds that finished (an interrupted run's too)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-4}
out=out/train_speed
if [ "${1:-}" != --report ]; then
make -s build/mien
mkdir -p "$out"
rm -f "$out"/*.json "$out/load.txt"
for t in 1 2; do
  for r in $(seq "$ROUNDS"); do
    l0=$(cut -d' ' -f1 /proc/loadavg)
    build/mien train --bench-step 10000 --batch 64 --steps "$STEPS" --threads "$t" --json \
      > "$out/mien-$t-$r.json"
    l1=$(cut -d' ' -f1 /proc/loadavg)
    OMP_NUM_THREADS=$t /usr/bin/python3 bench/train_speed_torch.py --threads "$t" --batch 64 \
      --classes 10000 --steps "$STEPS" > "$out/torch-$t-$r.json"
    l2=$(cut -d' ' -f1 /proc/loadavg)
    echo "$t $r $l0 $l1 $l2" >> "$out/load.txt"
  done
done
fi
/usr/bin/python3 - "$out" "$ROUNDS" <<'PY'
import json, os, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
cpus = os.cpu_count()
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
loads = [l.split() for l in open(os.path.join(out, "load.txt"))]
print(f"CPU: {model}, {cpus} cores; load average during the runs "
      f"{min(float(x) for l in loads for x in l[2:]):.1f}-{max(float(x) for l in loads for x in l[2:]):.1f}")
print("| threads | mien images/s | PyTorch images/s | mien / PyTorch | mien peak memory | PyTorch peak memory | rounds |")
print("|---:|---:|---:|---:|---:|---:|---:|")
res = {"threads": [], "mien_images_per_s": [], "torch_images_per_s": []}
for t in (1, 2):
    def rd(f):
        f = os.path.join(out, f)
        return json.load(open(f)) if os.path.exists(f) and os.path.getsize(f) else None
    # a round counts when both of its runs finished
    done = [r for r in range(1, 100) if rd(f"mien-{t}-{r}.json") and rd(f"torch-{t}-{r}.json")]
    if not done:
        continue
    m = [rd(f"mien-{t}-{r}.json") for r in done]
    p = [rd(f"torch-{t}-{r}.json") for r in done]
    mi = statistics.median(x["images_per_s"] for x in m)
    ti = statistics.median(x["images_per_s"] for x in p)
    mm = max(x["peak_rss_bytes"] for x in m) / 2**20
    tm = max(x["peak_rss_bytes"] for x in p) / 2**20
    print(f"| {t} | {mi:.2f} | {ti:.2f} | {mi / ti:.2f}x | {mm:.0f} MiB | {tm:.0f} MiB | {len(done)} |")
    res["threads"].append(t)
    res["mien_images_per_s"].append(round(mi, 2))
    res["torch_images_per_s"].append(round(ti, 2))
k = m[0]
print(f"mien kernels: {k['kernels']}; per step on {k['threads']} threads (first round): head {k['ms_head']:.0f} ms, "
      "forward " + ", ".join(f"{o} {v:.0f}" for o, v in k["ms_forward"].items() if v >= 1) +
      " ms; backward " + ", ".join(f"{o} {v:.0f}" for o, v in k["ms_backward"].items() if v >= 1) + " ms")
print(json.dumps(res))
PY
