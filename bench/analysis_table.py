#!/usr/bin/python3
"""Every face analysis model on the labelled dev sets: the README's tables ("Face analysis").

    /usr/bin/python3 bench/analysis_table.py [--data DIR] [--out DIR] [--no-timing] [--resume]
                                      [--only TASK,...]

For each task and each candidate model (and the default, marked), runs

    build/mien eval analysis --set DIR --tasks TASK --analysis TASK=MODEL --json

on ../shared/data/analysis/{age_gender,antispoof,emotion,mask} and on cfp_dev (frontal and
profile photos, a labels.tsv written to OUT/cfp_pose), and times the task alone on one face
with build/mien bench --analysis-only --analysis TASK=MODEL (1 thread, CPU ms, median). The
mask head is measured on the half of the mask set it never saw (--part 1; make mask-model
trains it on part 0). Prints Markdown; the raw JSON of every run is left in OUT/ (--resume
takes a run's figures from there when its file exists, for a run that was stopped part way).
--only measures those tasks' candidates and prints nothing (a second process can share the
work; a later --resume run prints the tables). $MIEN_BIN_FAST names the mien binary
(default build/mien).
"""
import json
import os
import subprocess
import sys

CANDIDATES = {
    "age": ["faceapi", "fr_age", "ssrnet-age", "gear", "faceres", "faceapi+gear", "faceapi+faceres"],
    "gender": ["faceapi", "fr_gender", "gender", "gear", "faceres", "faceapi+gear", "faceapi+faceres"],
    "expression": ["emotion+faceapi-expression", "emotion", "faceapi-expression", "fr_expression",
                   "emotion+faceapi-expression+fr_expression"],
    "liveness": ["fr_liveness", "antispoof", "liveness", "fr_liveness+antispoof", "expo-antispoof"],
    "pose": ["landmarks", "fr_pose", "landmarks+fr_pose", "mesh"],
}
DEFAULT = {"age": "faceapi", "gender": "faceapi", "expression": "emotion",
           "liveness": "fr_liveness", "pose": "landmarks"}
SETS = {"age": "age_gender", "gender": "age_gender", "expression": "emotion",
        "liveness": "antispoof", "pose": "cfp_pose", "mask": "mask"}


def run(args):
    p = subprocess.run([os.environ.get("MIEN_BIN_FAST", "build/mien")] + args, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit("mien %s: exit %d\n%s" % (" ".join(args), p.returncode, p.stderr[-2000:]))
    return json.loads(p.stdout)


def cfp_labels(data, out):
    root = os.path.join(data, "cfp_dev", "Data", "Images")
    d = os.path.join(out, "cfp_pose")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "labels.tsv"), "w") as f:
        f.write("#path\tview\n")
        for person in sorted(os.listdir(root)):
            for view in ("frontal", "profile"):
                vd = os.path.join(root, person, view)
                for name in sorted(os.listdir(vd)):
                    f.write("%s\t%s\n" % (os.path.abspath(os.path.join(vd, name)), view))
    return d


def main():
    args = sys.argv[1:]
    data = os.environ.get("MIEN_DATA", "../shared/data")
    out = "out/analysis"
    timing = True
    resume = False
    only = None
    while args:
        k = args.pop(0)
        if k == "--data":
            data = args.pop(0)
        elif k == "--out":
            out = args.pop(0)
        elif k == "--no-timing":
            timing = False
        elif k == "--resume":
            resume = True
        elif k == "--only":
            only = args.pop(0).split(",")
        else:
            raise SystemExit(__doc__)
    os.makedirs(out, exist_ok=True)
    sets = {k: os.path.join(data, "analysis", v) for k, v in SETS.items() if v != "cfp_pose"}
    sets["pose"] = cfp_labels(data, out)
    results = {}
    for task, models in CANDIDATES.items():
        if only and task not in only:
            continue
        for m in models:
            key = "%s=%s" % (task, m)
            path = os.path.join(out, key.replace("=", "_").replace("+", "_") + ".json")
            if resume and os.path.exists(path):
                results[key] = json.load(open(path))
                continue
            r = run(["eval", "analysis", "--set", sets[task], "--tasks", task, "--analysis", key,
                     "--json", "--quiet"])
            if timing:
                b = run(["bench", "--analysis-only", "--analysis", key, "--json", "--quiet"])
                r["ms"] = next((t["ms"] for t in b["analysis"]["tasks"] if t["task"] == task), None)
            results[key] = r
            json.dump(r, open(path, "w"))
            print("measured %s" % key, file=sys.stderr)
    if only:
        return
    mask = None
    if os.path.exists("models/mien/mask.ckpt"):
        mask = run(["eval", "analysis", "--set", sets["mask"], "--part", "1", "--json", "--quiet"])
        json.dump(mask, open(os.path.join(out, "mask.json"), "w"))
    speed = run(["bench", "--analysis-only", "--json", "--quiet"])["analysis"] if timing else None

    def ms(r):
        return "%.1f" % r["ms"] if r.get("ms") is not None else "-"

    def name(task, m):
        return "**%s** (default)" % m if DEFAULT.get(task) == m else m

    n = lambda r: "%d photos, %d without a face" % (r["images"], r["faces_missing"])
    print("Age and gender: `age_gender` (%s)\n" % n(results["age=faceapi"]))
    print("| task | model | age MAE (years) | within 5 years | gender accuracy | ms per face |")
    print("|---|---|---|---|---|---|")
    for m in CANDIDATES["age"]:
        r = results["age=" + m]
        print("| age | %s | %.2f | %.1f%% | | %s |" % (name("age", m), r["age_mae"], 100 * r["age_within5"], ms(r)))
    for m in CANDIDATES["gender"]:
        r = results["gender=" + m]
        print("| gender | %s | | | %.2f%% | %s |" % (name("gender", m), 100 * r["gender_accuracy"], ms(r)))
    g = results.get("age=gear", {})
    if "race_accuracy" in g:
        print("\nRace, GEAR's own output (its classes white, black, asian, indian, other; UTKFace's "
              "race labels of `age_gender`), where GEAR runs (`--analysis age=gear`): accuracy %.2f%% of %d faces"
              % (100 * g["race_accuracy"], g["images"] - g["faces_missing"]))
    print("\nExpression: `emotion` (%s)\n" % n(results["expression=emotion"]))
    print("| model | accuracy | ms per face |")
    print("|---|---|---|")
    for m in CANDIDATES["expression"]:
        r = results["expression=" + m]
        print("| %s | %.2f%% | %s |" % (name("expression", m), 100 * r["expression_accuracy"], ms(r)))
    r = results["expression=" + DEFAULT["expression"]]
    names = list(r["expression_confusion"].keys())
    print("\nConfusion of the default (rows: true, columns: predicted)\n")
    print("| | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for t in names:
        print("| %s | %s |" % (t, " | ".join(str(r["expression_confusion"][t][p]) for p in names)))
    print("\nLiveness: `antispoof` (%s; threshold 0.5)\n" % n(results["liveness=fr_liveness"]))
    print("| model | APCER | BPCER | ACER | AUC | ms per face |")
    print("|---|---|---|---|---|---|")
    for m in CANDIDATES["liveness"]:
        r = results["liveness=" + m]
        print("| %s | %.2f%% | %.2f%% | %.2f%% | %.4f | %s |" % (name("liveness", m), 100 * r["spoof_apcer"],
              100 * r["spoof_bpcer"], 100 * r["spoof_acer"], r["spoof_auc"], ms(r)))
    print("\nHead pose: cfp_dev, %d photos (780 frontal, 390 profile), %d without a face\n"
          % (results["pose=landmarks"]["images"], results["pose=landmarks"]["faces_missing"]))
    print("| model | frontal: \\|yaw\\| <= 15 | profile: \\|yaw\\| >= 45 | right, of the faces found | "
          "right, of every photo | ms per face |")
    print("|---|---|---|---|---|---|")
    for m in CANDIDATES["pose"]:
        r = results["pose=" + m]
        found = r["images"] - r["faces_missing"]
        print("| %s | %.2f%% | %.2f%% | %.2f%% | %.2f%% | %s |" % (name("pose", m), 100 * r["pose_frontal_within15"],
              100 * r["pose_profile_beyond45"], 100 * r["pose_accuracy"], 100 * r["pose_accuracy"] * found / r["images"], ms(r)))
    if mask:
        print("\nMask: the half of `mask` the head never saw (`--part 1`: %s): accuracy %.2f%%"
              % (n(mask), 100 * mask["mask_accuracy"]))
    if speed:
        print("\nOne face, every default model, 1 thread (`mien bench --analysis-only`): age + gender + "
              "expression + liveness + pose %.1f ms (median; fastest run %.1f ms)"
              % (speed["age_gender_expression_liveness_pose_ms"], speed["age_gender_expression_liveness_pose_fastest_ms"]))


if __name__ == "__main__":
    main()
