#!/bin/bash
# Side by side with peers, in one run (on demand: not part of `make test` or CI).
#
#   embedders  PyTorch 1.13 (Debian python3-torch, channels_last, torch.set_num_threads equal
#              to ours, eager and TorchScript-frozen, the faster kept) running MobileFaceNet and
#              dlib's ResNet-29 built from the very weight files mien loads, each first checked
#              to give mien's output to 1e-4 (bench/peers_torch.py), against mien's engine
#              (bench/peer_mien.c), on 1 thread and on all;
#   detectors  dlib 19.24's HOG detector (bench/peer_dlib_hog.cpp, compiled here against
#              Debian's libdlib-dev) and OpenCV 4.6's Haar cascade (bench/peers_opencv.py) against
#              mien's BlazeFace 256 and 128, detection alone on photos decoded beforehand, one
#              thread each, on LFW photos (250x250) and on the six 1920-pixel demo photos.
#
# The machine may be shared: the tools take turns for ROUNDS rounds and every figure is the
# median of its rounds; the ratios (peer ms / mien ms) come from the same run. One-thread
# figures are the thread's CPU time (the time the work holds a core; on a shared machine the
# wall clock adds the time others hold it), multi-thread ones wall-clock time. Writes every
# measurement, both clocks, to out/peers.jsonl and prints the table.
#
#   bench/peers.sh [-t THREADS] [-r ROUNDS] [-n LFW_PHOTOS] [-s SECONDS]
# Benchmark-only Debian packages (installed here when missing): python3-torch, python3-numpy,
# python3-opencv, opencv-data, libdlib-dev.
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS=$(nproc)
ROUNDS=3
N_LFW=100
SECS=2
while getopts "t:r:n:s:h" o; do
    case $o in
        t) THREADS=$OPTARG ;;
        r) ROUNDS=$OPTARG ;;
        n) N_LFW=$OPTARG ;;
        s) SECS=$OPTARG ;;
        *) sed -n '2,21p' "$0"; exit 2 ;;
    esac
done
MODELS=${MIEN_MODELS:-models}
DATA=${MIEN_DATA:-../shared/data}
PY=/usr/bin/python3

# ---- packages ------------------------------------------------------------------------------
missing=()
for p in python3-torch python3-numpy python3-opencv opencv-data libdlib-dev; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "peers: installing ${missing[*]}" >&2
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >&2
fi

# ---- builds --------------------------------------------------------------------------------
make -s build/mien build/peer_mien >&2
# dlib's detector is templates compiled here: the flags matter, so the best this CPU takes.
g++ -O3 -march=native -std=c++14 bench/peer_dlib_hog.cpp $(pkg-config --cflags --libs dlib-1) \
    -o build/peer_dlib_hog

# ---- photos --------------------------------------------------------------------------------
mkdir -p out
LFW_LIST=out/peers_lfw.txt
DEMO_LIST=out/peers_demo.txt
# LFW: the first photo of each person (NAME_0001.jpg), people in name order.
: > "$LFW_LIST"
if [ -d "$DATA/lfw" ]; then
    find "$DATA/lfw" -name '*_0001.jpg' | sort > out/peers_lfw_all.txt
    head -n "$N_LFW" out/peers_lfw_all.txt > "$LFW_LIST"
    rm -f out/peers_lfw_all.txt
fi
ls "$MODELS"/demo/sample*.jpg > "$DEMO_LIST"

# ---- rounds --------------------------------------------------------------------------------
OUT=out/peers.jsonl
: > "$OUT"
tag() { sed "s/^{/{\"round\":$1,\"set\":\"$2\",/" >> "$OUT"; }
T_LIST="1"
[ "$THREADS" -gt 1 ] && T_LIST="1 $THREADS"
for r in $(seq 1 "$ROUNDS"); do
    echo "peers: round $r/$ROUNDS" >&2
    for t in $T_LIST; do
        for m in mobilefacenet dlib; do
            build/peer_mien time "$MODELS" "$m" "$t" "$SECS" | tag "$r" model
        done
        $PY bench/peers_torch.py "$MODELS" build/peer_mien "$t" "$SECS" mobilefacenet dlib | tag "$r" model
    done
    for set in lfw demo; do
        list=out/peers_$set.txt
        [ -s "$list" ] || continue
        # One thread each: dlib's HOG detector has no threads of its own.
        build/peer_mien detect "$MODELS" blazeface 1 "$list" | tag "$r" "$set"
        build/peer_mien detect "$MODELS" blazeface-front 1 "$list" | tag "$r" "$set"
        $PY bench/peers_opencv.py "$list" 1 | tag "$r" "$set"
        build/peer_dlib_hog "$list" | tag "$r" "$set"
    done
done

# ---- table ---------------------------------------------------------------------------------
$PY - "$OUT" "$THREADS" <<'EOF'
import collections, json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
import os
load = open("/proc/loadavg").read().split()[:3]
print("peers: %s, %d cores, %s rounds (medians); load average now %s\n"
      % (cpu, os.cpu_count(), max(r["round"] for r in rows), " ".join(load)))
med = collections.defaultdict(list)
for r in rows:  # one thread: CPU time; more: wall clock
    if r["set"] == "model":
        key = ("model", r["model"], r["threads"], r["tool"] + (" " + r["mode"] if "mode" in r else ""))
        med[key].append(r["cpu_ms"] if r["threads"] == 1 else r["ms"])
    else:
        key = (r["set"], r["tool"], r["threads"], r["faces"], r["images"])
        med[key].append(r["cpu_ms_per_image"] if r["threads"] == 1 else r["ms_per_image"])
m = {k: statistics.median(v) for k, v in med.items()}
print("embedders (ms per face, batch 1):")
print("  %-14s %7s %10s %-34s %10s %8s" % ("model", "threads", "mien ms", "peer", "peer ms", "ratio"))
for key, ms in sorted((k, v) for k, v in m.items() if k[0] == "model"):
    _, model, t, tool = key
    if tool == "mien":
        continue
    ours = m.get(("model", model, t, "mien"))
    print("  %-14s %7d %10.2f %-34s %10.2f %7.2fx" % (model, t, ours, tool, ms, ms / ours))
for s in ("lfw", "demo"):
    keys = [k for k in m if k[0] == s]
    if not keys:
        continue
    print("\ndetectors on %s photos (ms per photo, detection alone; faces found):" % s)
    print("  %-28s %7s %10s %7s %12s" % ("tool", "threads", "ms/photo", "faces", "vs BlazeFace"))
    for k in sorted(keys, key=lambda k: (k[2], k[1])):
        ref = [v for kk, v in m.items() if kk[0] == s and kk[1] == "mien blazeface" and kk[2] == k[2]]
        ratio = m[k] / ref[0] if ref else float("nan")
        print("  %-28s %7d %10.2f %7d %11.2fx" % (k[1], k[2], m[k], k[3], ratio))
print("\nratio = peer time / mien time (above 1: mien is faster); 1 thread: CPU time, more:"
      " wall clock. Raw rows: %s" % sys.argv[1])
EOF
