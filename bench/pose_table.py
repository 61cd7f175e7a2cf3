#!/usr/bin/python3
"""Head pose on cfp_dev under each detection stage: the README's pose table ("Face analysis").

    /usr/bin/python3 bench/pose_table.py [--data DIR] [--out DIR] [--mean-face]

For each detection stage (detector and landmark source, passed explicitly) and each pose
model that stage can feed, runs

    build/mien eval analysis --set OUT/cfp_pose --tasks pose --analysis pose=MODEL \\
        --detector DET --landmarks LM --json

on cfp_dev's 1,170 photos (780 frontal, 390 profile; right: |yaw| <= 15 degrees on a frontal
photo, >= 45 on a profile) and prints a Markdown table. "landmarks" is the fit of the five
alignment points, "landmarks68" the fit of the 68 points (stages with a 68-point net),
"fr_pose" faceplugin's HopeNet, "mesh" the axes of the face mesh's 3-D points. With --mean-face it first learns the 68-point mean face
again (tools/mean_face68.py on every 6th LFW photo and the 300 WIDER FACE photos) and prints
its table to OUT/mean_face68.c: the one in src/face/analyze.c. $MIEN_BIN_FAST names the mien
binary (default build/mien).
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from analysis_table import cfp_labels  # noqa: E402

ULTRA = "ultraface@320+ultraface@640"
STAGES = [  # (detector, landmarks, pose models)
    ("blazeface", "facemesh", ["landmarks", "fr_pose", "landmarks+fr_pose", "mesh"]),
    (ULTRA, "onet", ["landmarks", "fr_pose", "landmarks+fr_pose", "mesh"]),
    ("blazeface", "facemesh+68", ["landmarks", "landmarks68"]),
    ("blazeface", "68", ["landmarks", "landmarks68"]),
    (ULTRA, "68", ["landmarks", "landmarks68"]),
]


def mien(args, out=None):
    cmd = [os.environ.get("MIEN_BIN_FAST", "build/mien")] + args
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit("%s: exit %d\n%s" % (" ".join(cmd), p.returncode, p.stderr[-2000:]))
    if out:
        with open(out, "w") as f:
            f.write(p.stdout)
    return p.stdout


def mean_face(data, out):
    lfw = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(os.path.join(data, "lfw")) for f in fs
                 if f.endswith(".jpg"))[::6]
    wider = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(os.path.join(data, "wider_train")) for f in fs
                   if f.endswith(".jpg"))
    a, b = os.path.join(out, "lfw68.jsonl"), os.path.join(out, "wider68.jsonl")
    mien(["detect", "--landmarks", "68", "--json", "--quiet"] + lfw, a)
    mien(["detect", "--landmarks", "68", "--json", "--quiet"] + wider, b)
    with open(os.path.join(out, "mean_face68.c"), "w") as f:
        subprocess.run(["/usr/bin/python3", os.path.join(os.path.dirname(__file__), "..", "tools", "mean_face68.py"),
                        a, b], stdout=f, check=True)


def main():
    args = sys.argv[1:]
    data = os.environ.get("MIEN_DATA", "../shared/data")
    out = "out/pose"
    learn = False
    while args:
        k = args.pop(0)
        if k == "--data":
            data = args.pop(0)
        elif k == "--out":
            out = args.pop(0)
        elif k == "--mean-face":
            learn = True
        else:
            raise SystemExit(__doc__)
    os.makedirs(out, exist_ok=True)
    if learn:
        mean_face(data, out)
    labels = cfp_labels(data, out)
    print("Head pose on cfp_dev (1,170 photos: 780 frontal, 390 profile) by detection stage and pose model\n")
    print("| detector | landmarks | pose model | photos without a face | frontal: \\|yaw\\| <= 15 | "
          "profile: \\|yaw\\| >= 45 | right, of the faces found | right, of every photo |")
    print("|---|---|---|---|---|---|---|---|")
    for det, lm, models in STAGES:
        for m in models:
            r = json.loads(mien(["eval", "analysis", "--set", labels, "--tasks", "pose", "--analysis", "pose=" + m,
                                 "--detector", det, "--landmarks", lm, "--json", "--quiet"]))
            found = r["images"] - r["faces_missing"]
            print("| %s | %s | %s | %d | %.2f%% | %.2f%% | %.2f%% | %.2f%% |" % (
                det, lm, m, r["faces_missing"], 100 * r["pose_frontal_within15"], 100 * r["pose_profile_beyond45"],
                100 * r["pose_accuracy"], 100 * r["pose_accuracy"] * found / r["images"]), flush=True)


if __name__ == "__main__":
    main()
