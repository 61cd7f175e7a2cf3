#!/usr/bin/python3
"""Python vs the C command line: embedding the same 100 LFW photos with the same threads.

    /usr/bin/python3 bench/python_embed.py [--photos 100] [--threads 1,2] [--runs 5]

For each thread count T, alternately (runs times each, the median kept):
  C       build/mien embed --json --threads T PHOTO...        (T files at a time, one session
          and one intra-op thread each)
  Python  a new python3 process: import mien, Models(threads=1), T threads each embedding
          photos with Models.faces(path) (decode, detect, align, embed every face: what `mien
          embed` does, the same library calls)
  drop-in the same with mien.face_recognition: load_image_file + face_encodings per photo
Each figure is the whole process, from start to exit (the interpreter, NumPy and the models
loading included), wall clock and CPU (user + system). The Python embeddings are checked
against the CLI's before timing. Writes out/bench_python.json and prints a Markdown table.
Reads LFW from $MIEN_DATA/lfw (default ../shared/data/lfw); photos: the first photo of each
of the first N people, by name.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIEN = os.path.join(ROOT, "build", "mien")

WORKER = r"""
import sys, json
from concurrent.futures import ThreadPoolExecutor
sys.path.insert(0, %(pkg)r)
mode, threads, out, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
if mode == "python":
    import mien
    m = mien.Models(threads=1)
    def one(p):
        return [f.embedding for f in m.faces(p)]
else:
    import mien.face_recognition as face_recognition
    def one(p):
        return face_recognition.face_encodings(face_recognition.load_image_file(p))
with ThreadPoolExecutor(max_workers=threads) as pool:
    res = list(pool.map(one, paths))
if out != "-":
    json.dump([[e.tolist() for e in r] for r in res], open(out, "w"))
"""


def photos(root, n):
    people = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    out = []
    for d in people[:n]:
        out.append(os.path.join(root, d, sorted(os.listdir(os.path.join(root, d)))[0]))
    return out


def timed(cmd, env=None):
    """Wall and CPU seconds (user + system, all threads) of one child process."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--photos", type=int, default=100)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    data = os.environ.get("MIEN_DATA") or os.path.join(ROOT, "..", "shared", "data")
    paths = photos(os.path.join(data, "lfw"), a.photos)
    worker = os.path.join(ROOT, "out", "bench_python_worker.py")
    os.makedirs(os.path.dirname(worker), exist_ok=True)
    with open(worker, "w") as f:
        f.write(WORKER % {"pkg": os.path.join(ROOT, "python")})
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    py = [sys.executable, worker]

    # Same answers first: every embedding of Python equals the CLI's.
    cli = subprocess.run([MIEN, "embed", "--json", "--threads", "1"] + paths, check=True,
                         capture_output=True, text=True).stdout.splitlines()
    emb_path = os.path.join(ROOT, "out", "bench_python_emb.json")
    subprocess.run(py + ["python", "1", emb_path] + paths, check=True, env=env)
    mine = json.load(open(emb_path))
    n_faces, worst = 0, 0.0
    for line, faces in zip(cli, mine):
        ref = json.loads(line)["faces"]
        assert len(ref) == len(faces), line[:200]
        for r, e in zip(ref, faces):
            worst = max(worst, max(abs(x - y) for x, y in zip(r["embedding"], e)))
            n_faces += 1
    assert worst < 1e-5, worst
    print("%d photos, %d faces; Python's embeddings equal the CLI's (max difference %.1e)"
          % (len(paths), n_faces, worst), file=sys.stderr)

    results = []
    for t in [int(x) for x in a.threads.split(",")]:
        runs = {"C": [], "Python": [], "drop-in": []}
        for _ in range(a.runs):  # alternate, so that load on the machine hits all alike
            runs["C"].append(timed([MIEN, "embed", "--json", "--quiet", "--threads", str(t)] + paths))
            runs["Python"].append(timed(py + ["python", str(t), "-"] + paths, env))
            runs["drop-in"].append(timed(py + ["dropin", str(t), "-"] + paths, env))
        row = {"threads": t}
        for k, v in runs.items():
            row[k] = {"wall_s": statistics.median(w for w, _ in v),
                      "cpu_s": statistics.median(c for _, c in v),
                      "wall_runs": [round(w, 3) for w, _ in v], "cpu_runs": [round(c, 3) for _, c in v]}
        results.append(row)
        print("threads %d done" % t, file=sys.stderr)

    load = os.getloadavg()[0]
    out = {"photos": len(paths), "faces": n_faces, "runs": a.runs, "load_average": load,
           "results": results}
    with open(os.path.join(ROOT, "out", "bench_python.json"), "w") as f:
        json.dump(out, f, indent=1)
    print("| threads | `mien embed` wall / CPU s | Python `Models.faces` wall / CPU s | Python / C (wall, CPU) "
          "| drop-in `face_encodings` wall / CPU s | drop-in / C (wall, CPU) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in results:
        c, p, d = r["C"], r["Python"], r["drop-in"]
        print("| %d | %.2f / %.2f | %.2f / %.2f | %.3f, %.3f | %.2f / %.2f | %.3f, %.3f |" % (
            r["threads"], c["wall_s"], c["cpu_s"], p["wall_s"], p["cpu_s"],
            p["wall_s"] / c["wall_s"], p["cpu_s"] / c["cpu_s"], d["wall_s"], d["cpu_s"],
            d["wall_s"] / c["wall_s"], d["cpu_s"] / c["cpu_s"]))
    print("(%d LFW photos, %d faces, median of %d runs; load average %.1f)" % (
        len(paths), n_faces, a.runs, load))


if __name__ == "__main__":
    main()
