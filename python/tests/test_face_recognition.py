"""The face_recognition drop-in (mien.face_recognition) and its two command-line tools, used the
way face_recognition's README shows, on the known-people photos of ../shared/data/people."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest

import mien
import mien.face_recognition as face_recognition
from conftest import DATA, HERE, PEOPLE, TRAIN, labels

PYTHON_DIR = os.path.dirname(HERE)
OBAMA = os.path.join(PEOPLE, "examples", "obama.jpg")
OBAMA2 = os.path.join(PEOPLE, "examples", "obama2.jpg")
BIDEN = os.path.join(PEOPLE, "examples", "biden.jpg")
TWO = os.path.join(PEOPLE, "examples", "two_people.jpg")
DOGS = os.path.join(DATA, "dlib_faces", "dogs.jpg")


def run_py(args, **kw):
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR)
    return subprocess.run([sys.executable] + args, capture_output=True, text=True, env=env, **kw)


# ---- a face_recognition program with only its import changed --------------------------------

def test_program_names_every_labelled_face(tmp_path):
    """recognize_people.py is written against face_recognition's API; with its import line
    changed (and nothing else) it names every labelled face of people/labels.tsv, left to
    right. A person with no photo among the known people (lin_manuel_miranda) must come out
    as "unknown"."""
    src = open(os.path.join(HERE, "recognize_people.py")).read().splitlines(True)
    changed = [l.replace("import face_recognition\n",
                         "import mien.face_recognition as face_recognition\n") for l in src]
    assert sum(a != b for a, b in zip(src, changed)) == 1
    prog = tmp_path / "recognize_people.py"
    prog.write_text("".join(changed))
    cases = labels()
    known = set(os.listdir(TRAIN))
    r = run_py([str(prog), TRAIN] + [os.path.join(PEOPLE, p) for p, _ in cases], timeout=600)
    assert r.returncode == 0, r.stderr
    got = dict(line.split("\t") for line in r.stdout.splitlines())
    wrong = []
    for path, who in cases:
        want = ",".join(w if w in known else "unknown" for w in who)
        if got.get(os.path.join(PEOPLE, path)) != want:
            wrong.append("%s: %s, want %s" % (path, got.get(os.path.join(PEOPLE, path)), want))
    assert not wrong, "\n".join(wrong)
    assert len(got) == len(cases) == 22


# ---- the API, function by function ------------------------------------------------------------

def test_load_image_file():
    img = face_recognition.load_image_file(TWO)
    assert img.dtype == np.uint8 and img.shape == (661, 1126, 3)
    gray = face_recognition.load_image_file(TWO, mode="L")
    assert gray.shape == (661, 1126) and gray.dtype == np.uint8
    expect = (img[:, :, 0] * 0.299 + img[:, :, 1] * 0.587 + img[:, :, 2] * 0.114)
    assert np.abs(gray.astype(float) - expect).max() <= 1
    with open(TWO, "rb") as f:
        assert np.array_equal(face_recognition.load_image_file(f), img)
    with pytest.raises(ValueError):
        face_recognition.load_image_file(TWO, mode="CMYK")
    with pytest.raises(mien.MienError):
        face_recognition.load_image_file(os.path.join(PEOPLE, "labels.tsv"))


def test_face_locations():
    img = face_recognition.load_image_file(TWO)
    locs = face_recognition.face_locations(img)
    assert len(locs) == 2
    for loc in locs:
        assert isinstance(loc, tuple) and len(loc) == 4 and all(isinstance(v, int) for v in loc)
        top, right, bottom, left = loc
        assert 0 <= top < bottom <= img.shape[0] and 0 <= left < right <= img.shape[1]
    # model="cnn" (the SSD) finds the same two faces.
    cnn = face_recognition.face_locations(img, model="cnn")
    assert len(cnn) == 2
    for loc in locs:
        assert max(face_recognition._iou(loc, c) for c in cnn) > 0.5
    # A gray image works too.
    assert len(face_recognition.face_locations(img.mean(axis=2).astype(np.uint8))) == 2
    # A face cut by the border is trimmed to the image.
    part = face_recognition.load_image_file(os.path.join(PEOPLE, "tests", "test_images",
                                                         "obama_partial_face.jpg"))
    for top, right, bottom, left in face_recognition.face_locations(part):
        assert top >= 0 and left >= 0 and bottom <= part.shape[0] and right <= part.shape[1]
    assert face_recognition.face_locations(face_recognition.load_image_file(DOGS)) == []
    with pytest.raises(ValueError):
        face_recognition.face_locations(img, model="retina")


def test_upsample_finds_smaller_faces():
    """number_of_times_to_upsample n keeps faces from 80 / 2**n pixels: the 56-pixel face of
    the 240p photo needs n >= 1, as with dlib's detector."""
    small = face_recognition.load_image_file(os.path.join(PEOPLE, "examples", "obama-240p.jpg"))
    assert face_recognition.face_locations(small, number_of_times_to_upsample=0) == []
    assert len(face_recognition.face_locations(small, number_of_times_to_upsample=1)) == 1
    assert len(face_recognition.face_locations(small, number_of_times_to_upsample=2)) == 1


def test_batch_face_locations():
    imgs = [face_recognition.load_image_file(p) for p in (TWO, OBAMA, DOGS)]
    batch = face_recognition.batch_face_locations(imgs, number_of_times_to_upsample=1, batch_size=2)
    assert batch == [face_recognition.face_locations(i, 1, model="cnn") for i in imgs]
    assert [len(b) for b in batch] == [2, 1, 0]
    assert face_recognition.batch_face_locations([]) == []


def test_face_landmarks():
    img = face_recognition.load_image_file(TWO)
    marks = face_recognition.face_landmarks(img)
    assert len(marks) == 2
    sizes = {"chin": 17, "left_eyebrow": 5, "right_eyebrow": 5, "nose_bridge": 4, "nose_tip": 5,
             "left_eye": 6, "right_eye": 6, "top_lip": 12, "bottom_lip": 12}
    locs = face_recognition.face_locations(img)
    given = face_recognition.face_landmarks(img, locs)
    for m in marks + given:
        assert {k: len(v) for k, v in m.items()} == sizes
        assert all(isinstance(p, tuple) and len(p) == 2 and all(isinstance(c, int) for c in p)
                   for v in m.values() for p in v)
    # With the boxes given, the landmarks of each box in the boxes' order; the left eye (as
    # face_recognition names it) is on the image's left, the chin below the eyes.
    for (top, right, bottom, left), m in zip(locs, given):
        lx = np.mean([p[0] for p in m["left_eye"]])
        rx = np.mean([p[0] for p in m["right_eye"]])
        assert left < lx < rx < right
        assert max(p[1] for p in m["chin"]) > max(p[1] for p in m["left_eye"])
    small = face_recognition.face_landmarks(img, locs, model="small")
    assert [{k: len(v) for k, v in m.items()} for m in small] == [
        {"nose_tip": 1, "left_eye": 2, "right_eye": 2}] * 2
    for s, g in zip(small, given):
        assert s["nose_tip"][0] == g["nose_tip"][2]
        assert set(s["left_eye"]) <= set(g["left_eye"])


def test_encodings_and_distance():
    """face_distance is 0.6 * sqrt((1 - cos) / (1 - t)): 0.6 exactly at mien's threshold t, so
    compare_faces agrees with mien's own same/different decision."""
    m = mien.Models(detector="blazeface", landmarks="facemesh", embedder="dlib")  # the layer's
    t = m.threshold
    paths = [OBAMA, OBAMA2, BIDEN, os.path.join(PEOPLE, "tests", "test_images", "biden.jpg"),
             os.path.join(PEOPLE, "examples", "alex-lacamoire.png")]
    enc = []
    for p in paths:
        found = face_recognition.face_encodings(face_recognition.load_image_file(p))
        assert len(found) == 1
        e = found[0]
        assert e.shape == (128,) and e.dtype == np.float64
        assert abs(np.linalg.norm(e) - 0.6 / math.sqrt(2 - 2 * t)) < 1e-5
        enc.append(e)
    for i in range(len(paths)):
        d = face_recognition.face_distance(enc, enc[i])
        assert d.shape == (len(paths),) and d[i] < 1e-6
        for j in range(len(paths)):
            v = m.verify(paths[i], paths[j]) if i != j else None
            if v is None:
                continue
            assert abs(d[j] - 0.6 * math.sqrt(max(0.0, 1 - v.similarity) / (1 - t))) < 0.01
            assert face_recognition.compare_faces([enc[j]], enc[i])[0] == v.same
    m.close()
    same = face_recognition.face_distance([enc[0]], enc[1])[0]
    other = face_recognition.face_distance([enc[0]], enc[2])[0]
    assert same < 0.6 < other
    assert face_recognition.compare_faces([enc[0], enc[2]], enc[1]) == [True, False]
    assert face_recognition.compare_faces([enc[0]], enc[2], tolerance=other + 0.01) == [True]
    assert face_recognition.face_distance([], enc[0]).shape == (0,)


def test_encodings_with_boxes_jitters_and_models():
    img = face_recognition.load_image_file(OBAMA)
    ref = face_recognition.face_encodings(img)[0]
    top, right, bottom, left = face_recognition.face_locations(img)[0]
    # A box from elsewhere, a little off: the landmark net runs on it.
    h = bottom - top
    moved = (top + h // 10, right + h // 10, bottom + h // 10, left + h // 10)
    e = face_recognition.face_encodings(img, known_face_locations=[moved])[0]
    assert face_recognition.face_distance([ref], e)[0] < 0.25
    far = (0, 40, 40, 0)  # no face there: still an encoding, far from obama's
    assert face_recognition.face_distance([ref], face_recognition.face_encodings(img, [far])[0])[0] > 0.6
    # num_jitters: repeatable, close to the plain encoding but not the same.
    j1 = face_recognition.face_encodings(img, num_jitters=4)[0]
    j2 = face_recognition.face_encodings(img, num_jitters=4)[0]
    assert np.array_equal(j1, j2)
    assert 0 < face_recognition.face_distance([ref], j1)[0] < 0.15
    # model="large": aligned on the 68 points; same person within 0.6, others beyond.
    o1 = face_recognition.face_encodings(img, model="large")[0]
    o2 = face_recognition.face_encodings(face_recognition.load_image_file(OBAMA2), model="large")[0]
    b = face_recognition.face_encodings(face_recognition.load_image_file(BIDEN), model="large")[0]
    assert face_recognition.face_distance([o1], o2)[0] < 0.6 < face_recognition.face_distance([o1], b)[0]
    with pytest.raises(ValueError):
        face_recognition.face_encodings(img, model="huge")


# ---- the command-line tools -------------------------------------------------------------------

@pytest.fixture(scope="module")
def known_folder(tmp_path_factory):
    """face_recognition's layout: one photo per person, named after them."""
    d = tmp_path_factory.mktemp("known")
    for person in sorted(os.listdir(TRAIN)):
        photo = sorted(os.listdir(os.path.join(TRAIN, person)))[0]
        os.symlink(os.path.join(TRAIN, person, photo), d / (person + os.path.splitext(photo)[1]))
    return str(d)


def test_face_recognition_cli(known_folder, tmp_path):
    test_dir = os.path.join(PEOPLE, "examples", "knn_examples", "test")
    r = run_py(["-m", "mien.face_recognition_cli", known_folder, test_dir], timeout=600)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    want = {"alex_lacamoire1.jpg": ["alex_lacamoire"], "johnsnow_test1.jpg": ["kit_harington"],
            "kit_with_rose.jpg": ["kit_harington", "rose_leslie"], "obama1.jpg": ["obama"],
            "obama_and_biden.jpg": ["biden", "obama"]}
    got = {}
    for line in lines:
        path, name = line.split(",")
        got.setdefault(os.path.basename(path), []).append(name)
        assert os.path.dirname(path) == test_dir
    assert {k: sorted(v) for k, v in got.items()} == want
    # --show-distance true adds the distance; --tolerance 0.1 leaves everyone unknown;
    # --cpus -1 keeps the output in file order.
    r = run_py(["-m", "mien.face_recognition_cli", "--show-distance", "true", "--cpus", "-1",
                "--tolerance", "0.1", known_folder, test_dir], timeout=600)
    assert r.returncode == 0, r.stderr
    rows = [l.split(",") for l in r.stdout.splitlines()]
    assert len(rows) == 7 and all(row[1:] == ["unknown_person", "None"] for row in rows)
    assert [os.path.basename(r[0]) for r in rows] == sorted(os.path.basename(r[0]) for r in rows)
    r = run_py(["-m", "mien.face_recognition_cli", "--show-distance", "true", known_folder,
                os.path.join(test_dir, "obama1.jpg")], timeout=300)
    path, name, dist = r.stdout.strip().split(",")
    assert name == "obama" and 0 < float(dist) < 0.6
    r = run_py(["-m", "mien.face_recognition_cli", known_folder, DOGS], timeout=300)
    assert r.stdout.strip() == DOGS + ",no_persons_found"
    # A known photo without a face is reported and skipped.
    os.symlink(DOGS, tmp_path / "dog.jpg")
    os.symlink(OBAMA, tmp_path / "obama.jpg")
    r = run_py(["-m", "mien.face_recognition_cli", str(tmp_path), OBAMA2], timeout=300)
    assert r.stdout.splitlines() == [
        "WARNING: No faces found in %s. Ignoring file." % (tmp_path / "dog.jpg"),
        OBAMA2 + ",obama"]
    r = run_py(["-m", "mien.face_recognition_cli", known_folder, "/nonexistent.jpg"])
    assert r.returncode == 2 and "nonexistent" in r.stderr


def test_face_detection_cli():
    folder = os.path.join(PEOPLE, "examples")
    r = run_py(["-m", "mien.face_detection_cli", "--upsample", "1", folder], timeout=600)
    assert r.returncode == 0, r.stderr
    rows = [l.split(",") for l in r.stdout.splitlines()]
    images = [f for f in os.listdir(folder) if f.endswith((".jpg", ".png"))]
    assert len(rows) == len(images) + 1  # two_people.jpg has two
    for row in rows:
        assert len(row) == 5 and os.path.basename(row[0]) in images
        top, right, bottom, left = map(int, row[1:])
        assert top < bottom and left < right
    r = run_py(["-m", "mien.face_detection_cli", "--model", "cnn", TWO], timeout=300)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2
    r = run_py(["-m", "mien.face_detection_cli", "--model", "resnet", TWO])
    assert r.returncode == 2
