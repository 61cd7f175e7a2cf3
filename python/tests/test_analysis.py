"""Face analysis from Python (Models(analyze=...), Models.analyze): the same answers as the C
library's own command (`mien analyze --json`), on files and on arrays; tasks chosen per call;
errors for tasks not loaded; liveness on real and printed faces of the antispoof dev set."""

import json
import os
import subprocess

import numpy as np
import pytest

import mien
from conftest import CHECKOUT, DATA, PEOPLE

OBAMA = os.path.join(PEOPLE, "examples", "obama.jpg")
TWO = os.path.join(PEOPLE, "examples", "two_people.jpg")
ANTISPOOF = os.path.join(DATA, "analysis", "antispoof")
MIEN = os.environ.get("MIEN_BIN_FAST") or os.path.join(CHECKOUT, "build", "mien")
FIVE = ["age", "gender", "expression", "liveness", "pose", "quality"]


@pytest.fixture(scope="module")
def am():
    with mien.Models(analyze=FIVE) as m:
        yield m


def close(py, cli, path=""):
    """py (full precision) against the command's JSON (rounded to 0.1, 0.01 or 0.001)."""
    if isinstance(cli, dict):
        assert set(cli) <= set(py), "%s: %s missing" % (path, set(cli) - set(py))
        for k in cli:
            close(py[k], cli[k], path + "." + k)
    elif isinstance(cli, list):
        assert len(py) == len(cli), path
        for i, (a, b) in enumerate(zip(py, cli)):
            close(a, b, "%s[%d]" % (path, i))
    elif isinstance(cli, (bool, str)):
        assert py == cli, "%s: %r, the command %r" % (path, py, cli)
    else:
        assert abs(py - cli) <= 0.051 + 1e-6 * abs(cli), "%s: %r, the command %r" % (path, py, cli)


def test_tasks_loaded(am):
    assert am.analysis_tasks == tuple(FIVE)
    assert am.analysis_models["age"] == "faceapi"
    assert am.analysis_models["pose"] == "landmarks"
    assert mien.EXPRESSIONS == ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


@pytest.mark.parametrize("photo", [OBAMA, TWO])
def test_same_as_the_command(am, photo):
    cli = json.loads(subprocess.run([MIEN, "analyze", "--json", "--tasks", ",".join(FIVE), photo],
                                    check=True, capture_output=True, text=True).stdout)
    py = am.analyze(photo)
    assert len(py) == len(cli["faces"]) >= 1
    for p, c in zip(py, cli["faces"]):
        for k in ("landmarks", "points", "mouth_corners"):
            c.pop(k, None)
        close(p, c)
        assert abs(sum(p["expression"]["scores"].values()) - 1) < 1e-4
        assert 0 <= p["quality"]["score"] <= 1


def test_array_and_file_agree(am):
    img = am.load_image(OBAMA)
    faces = am.detect(img)
    a = am.analyze(img, faces)
    b = am.analyze(OBAMA, faces)
    assert len(a) == len(b) == 1
    assert a[0]["gender"]["value"] == b[0]["gender"]["value"] == "male"
    assert abs(a[0]["age"] - b[0]["age"]) < 1e-3
    assert np.allclose(list(a[0]["expression"]["scores"].values()),
                       list(b[0]["expression"]["scores"].values()), atol=1e-5)
    # a mirrored photo: the same person, the yaw and roll change sign
    m = am.analyze(np.ascontiguousarray(img[:, ::-1]))[0]
    assert abs(m["age"] - a[0]["age"]) < 3
    # (a face within a few degrees of frontal may keep the sign: the five points' noise)
    assert m["pose"]["yaw"] * a[0]["pose"]["yaw"] <= 0 or abs(a[0]["pose"]["yaw"]) < 5


def test_tasks_per_call(am):
    r = am.analyze(OBAMA, tasks="age,liveness")[0]
    assert set(r) == {"box", "score", "age", "liveness"}
    r = am.analyze(OBAMA, tasks=["pose"])[0]
    assert set(r) == {"box", "score", "pose"}
    r = am.analyze(OBAMA, tasks=["quality"])[0]
    assert set(r) == {"box", "score", "pose", "quality"}  # quality implies the pose


def test_errors(am):
    with pytest.raises(ValueError, match="unknown analysis task"):
        am.analyze(OBAMA, tasks="age,wisdom")
    with mien.Models(analyze="age") as m:
        assert m.analysis_tasks == ("age",)
        with pytest.raises(mien.MienError) as e:
            m.analyze(OBAMA, tasks="liveness")
        assert e.value.code == "EINVAL" and "liveness" in str(e.value)
    with mien.Models() as m:
        with pytest.raises(ValueError, match="no analysis task"):
            m.analyze(OBAMA)
    with pytest.raises(mien.MienError):
        mien.Models(analyze="age", analysis="age=no_such_model")


def test_liveness_prints_refused(am):
    rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(ANTISPOOF, "labels.tsv"))
            if not l.startswith("#")]
    real = [r[0] for r in rows if r[1] == "real"][:3]
    spoof = [r[0] for r in rows if r[1] == "spoof"][:3]
    for path, want in [(p, True) for p in real] + [(p, False) for p in spoof]:
        faces = am.analyze(os.path.join(ANTISPOOF, path), tasks="liveness")
        assert faces, path
        assert max(faces, key=lambda f: f["box"][2] * f["box"][3])["liveness"]["real"] is want, path


def test_gear_race_same_as_the_command():
    """GEAR's race (only when GEAR runs) answers as the command's JSON."""
    assert mien.RACES == ("white", "black", "asian", "indian", "other")
    cli = json.loads(subprocess.run([MIEN, "analyze", "--json", "--tasks", "age", "--analysis", "age=gear",
                                     OBAMA], check=True, capture_output=True, text=True).stdout)
    with mien.Models(analyze="age", analysis="age=gear") as m:
        py = m.analyze(OBAMA)
    assert len(py) == len(cli["faces"]) == 1
    c = cli["faces"][0]
    assert "race" in c and "race" in py[0]
    close(py[0]["race"], c["race"])
    assert abs(sum(py[0]["race"]["scores"].values()) - 1) < 1e-4
    with mien.Models(analyze="age") as m:
        assert "race" not in m.analyze(OBAMA)[0]
