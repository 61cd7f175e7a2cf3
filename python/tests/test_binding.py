"""The binding of libmien (module mien): images in and out, faces, embeddings, errors, handles,
threads, the gallery and clustering, against the C library's own command-line answers."""

import gc
import json
import os
import subprocess
import threading

import numpy as np
import pytest

import mien
from conftest import CHECKOUT, PEOPLE, TRAIN

OBAMA = os.path.join(PEOPLE, "examples", "obama.jpg")
OBAMA2 = os.path.join(PEOPLE, "examples", "obama2.jpg")
BIDEN = os.path.join(PEOPLE, "examples", "biden.jpg")
TWO = os.path.join(PEOPLE, "examples", "two_people.jpg")
RGBA = os.path.join(PEOPLE, "tests", "test_images", "32bit.png")
MIEN = os.environ.get("MIEN_BIN_FAST") or os.path.join(CHECKOUT, "build", "mien")


def test_version():
    assert mien.version() == mien.__version__
    assert mien.version().count(".") == 2


def test_models_properties(models):
    assert models.embedder == "mobilefacenet-tflite"
    assert models.embedding_dim == 192
    assert 0.3 < models.threshold < 0.45
    assert models.threshold < models.cluster_threshold < 1
    assert os.path.isdir(os.path.join(models.dir, "faceapi"))


def test_load_image(models):
    img = models.load_image(TWO)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert img.shape[:2] == (661, 1126)
    with open(TWO, "rb") as f:
        assert np.array_equal(models.decode_image(f.read()), img)
    rgba = models.load_image(RGBA)  # a 32-bit PNG comes back as RGB
    assert rgba.shape[2] == 3


def test_detect_matches_cli(models):
    """Boxes, scores and embeddings of every face equal `mien embed --json` on the same photo."""
    out = subprocess.run([MIEN, "embed", "--json", "--threads", "1", TWO], check=True,
                         capture_output=True, text=True).stdout
    cli = json.loads(out)["faces"]
    faces = models.faces(TWO)
    assert len(faces) == len(cli) == 2
    for f, c in zip(faces, cli):
        assert np.allclose(f.box, c["box"], atol=0.01)
        assert abs(f.score - c["score"]) < 1e-4
        assert f.embedding.dtype == np.float32 and f.embedding.shape == (models.embedding_dim,)
        assert np.allclose(f.embedding, np.array(c["embedding"], dtype=np.float32), atol=1e-6)


def test_array_and_file_agree(models):
    img = models.load_image(TWO)
    by_file = models.faces(TWO)
    by_array = models.faces(img)
    with open(TWO, "rb") as f:
        by_bytes = models.faces(f.read())
    for a, b, c in zip(by_file, by_array, by_bytes):
        assert a.box == b.box == c.box
        assert np.array_equal(a.embedding, b.embedding) and np.array_equal(a.embedding, c.embedding)
        assert abs(float(np.linalg.norm(a.embedding)) - 1) < 1e-5
    # A gray image and an RGBA image are accepted as arrays.
    gray = img.mean(axis=2).astype(np.uint8)
    assert len(models.detect(gray)) == 2
    rgba = np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])
    assert [f.box for f in models.detect(rgba)] == [f.box for f in by_array]
    # A non-contiguous view is copied, not misread.
    assert [f.box for f in models.detect(img[:, ::-1][:, ::-1])] == [f.box for f in by_array]


def test_face_fields(models):
    f = models.detect(OBAMA)[0]
    # The default stage (UltraFace, O-Net) gives the five points and no dense landmarks;
    # BlazeFace gives its six keypoints.
    assert f.landmarks.shape == (0, 2) and f.points.shape == (5, 2)
    with mien.Models(detector="blazeface", landmarks="none") as bm:
        assert bm.detect(OBAMA)[0].landmarks.shape == (6, 2)
    x, y, w, h = f.box
    assert all(x <= px <= x + w and y <= py <= y + h for px, py in f.points)
    top, right, bottom, left = f.css
    assert (top, left) == (round(y), round(x)) and bottom > top and right > left
    assert "Face(" in repr(f)


def test_detect_options(models):
    img = models.load_image(TWO)
    assert len(models.detect(img, max_faces=1)) == 1
    assert len(models.detect(img, min_size=1000)) == 0
    # UltraFace's scores sit close to 1 on clear faces: a cut between the group photo's
    # lowest and highest keeps some of its faces, not all.
    group = os.path.join(PEOPLE, "examples", "knn_examples", "test", "obama_and_biden.jpg")
    scores = sorted(f.score for f in models.detect(group))
    assert len(scores) >= 2 and scores[0] < scores[-1]
    assert 0 < len(models.detect(group, min_score=(scores[0] + scores[-1]) / 2)) < len(scores)


def test_verify(models):
    v = models.verify(OBAMA, OBAMA2)
    assert v.same and v.similarity >= v.threshold == pytest.approx(models.threshold)
    v = models.verify(OBAMA, BIDEN)
    assert not v.same and v.similarity < models.threshold
    out = subprocess.run([MIEN, "verify", "--json", OBAMA, BIDEN], check=True,
                         capture_output=True, text=True).stdout
    assert abs(json.loads(out)["similarity"] - v.similarity) < 1e-4


def test_landmarks_from_box(models):
    img = models.load_image(OBAMA)
    det = models.detect(img)[0]
    f = models.landmarks(img, det.box)
    assert f.points.shape == (5, 2) and np.abs(f.points - det.points).max() < 5
    # 0.987: the default's tight ArcFace crop moves more with the points than dlib's chip
    assert mien.similarity(models.embed(img, f), models.embed(img, det)) > 0.98
    with pytest.raises(mien.MienError) as e:
        models.landmarks(img, (10, 10, 0, 0))
    assert e.value.code == "EINVAL" and "box" in str(e.value)


def test_align(models):
    img = models.load_image(OBAMA)
    chip = models.align(img, models.detect(img)[0])
    assert chip.shape == (112, 112, 3) and chip.dtype == np.uint8  # the ArcFace crop
    e = models.embed_aligned(chip)
    assert e.shape == (models.embedding_dim,) and abs(float(np.linalg.norm(e)) - 1) < 1e-5


def test_errors(models, tmp_path):
    with pytest.raises(mien.MienError) as e:
        models.faces(b"this is not a photo")
    assert e.value.code == "EFORMAT" and "JPEG" in str(e.value)
    with pytest.raises(mien.MienError) as e:
        models.load_image(str(tmp_path / "missing.jpg"))
    assert e.value.code == "EIO" and "missing.jpg" in str(e.value)
    with pytest.raises(TypeError):
        models.detect(np.zeros((10, 10, 3), dtype=np.float32))
    with pytest.raises(ValueError):
        models.detect(np.zeros((10, 10, 2), dtype=np.uint8))
    with pytest.raises(mien.MienError) as e:
        mien.Models(detector="nosuchdetector")
    assert e.value.code == "ENOTFOUND" and "nosuchdetector" in str(e.value)
    with pytest.raises(mien.MienError) as e:
        mien.Models(str(tmp_path))
    assert e.value.code == "EIO" and str(tmp_path) in str(e.value)
    with pytest.raises(mien.MienError) as e:
        models.verify(OBAMA, np.zeros((64, 64, 3), np.uint8))
    assert e.value.code == "ENOFACE"


def test_search_order(tmp_path, monkeypatch):
    """$MIEN_MODELS is searched first; a folder without the models is named in the message."""
    monkeypatch.setenv("MIEN_MODELS", str(tmp_path / "nothing"))
    with mien.Models() as m:  # falls through to the checkout's models
        assert os.path.isdir(m.dir)
    monkeypatch.setenv("MIEN_MODELS", os.path.join(CHECKOUT, "models"))
    assert mien.find_models() == os.path.join(CHECKOUT, "models")
    with mien.Models() as m:
        assert m.dir == os.path.join(CHECKOUT, "models")


def test_close_and_context(models):
    m = mien.Models()
    m.detect(OBAMA)
    m.close()
    m.close()  # twice is fine
    with pytest.raises(ValueError):
        m.detect(OBAMA)
    with mien.Models() as m2:
        assert len(m2.detect(OBAMA)) == 1
    assert m2._h is None
    m3 = mien.Models()
    m3.detect(OBAMA)
    del m3
    gc.collect()


def test_threads(models):
    """Several threads at once (a session each) give the one-thread answers."""
    paths = [OBAMA, OBAMA2, BIDEN, TWO]
    want = [[f.embedding for f in models.faces(p)] for p in paths]
    got, errors = {}, []

    def work(i):
        try:
            for _ in range(2):
                got[i] = [f.embedding for f in models.faces(paths[i])]
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(len(paths))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    for i in range(len(paths)):
        assert all(np.array_equal(a, b) for a, b in zip(want[i], got[i]))
    assert len(models._sessions) >= 2


def _train_embeddings(models):
    out = []
    for person in sorted(os.listdir(TRAIN)):
        for photo in sorted(os.listdir(os.path.join(TRAIN, person))):
            f = models.faces(os.path.join(TRAIN, person, photo))
            assert len(f) == 1
            out.append((person, photo, f[0]))
    return out


def test_gallery(models, tmp_path):
    train = _train_embeddings(models)
    path = tmp_path / "people.db"
    with mien.Gallery(str(path), model=models.embedder, dim=models.embedding_dim) as g:
        assert g.count() == (0, 0) and g.model == ("", 0)
        for person, photo, f in train:
            assert g.enroll(person, f.embedding, models.embedder, boxes=[f.box],
                            image_sha256="%064x" % abs(hash(photo + person))) == 1
        # The same photo again adds nothing.
        person, photo, f = train[0]
        assert g.enroll(person, f.embedding, models.embedder,
                        image_sha256="%064x" % abs(hash(photo + person))) == 0
        subjects = g.subjects()
        assert [s.name for s in subjects] == sorted({p for p, _, _ in train})
        assert sum(s.n_faces for s in subjects) == len(train) == g.count()[1]
        assert g.model == (models.embedder, models.embedding_dim)
        # The group photo's two people are named; the girl at its right is a stranger.
        found = [g.identify(f.embedding, models.threshold)
                 for f in models.faces(os.path.join(PEOPLE, "examples", "knn_examples", "test",
                                                    "obama_and_biden.jpg"))]
        assert sorted(m.name for m in found if m.known) == ["biden", "obama"]
        assert len(found) <= 3
        lin = models.faces(os.path.join(PEOPLE, "examples", "lin-manuel-miranda.png"))[0]
        m = g.identify(lin.embedding, models.threshold)
        assert not m.known and m.similarity < models.threshold
        top = g.search(train[0][2].embedding, k=3)
        assert top[0].name == train[0][0] and top[0].similarity > 0.999 and len(top) == 3
        assert len(g.faces("obama")) == 2
        g.rename("obama", "barack_obama")
        g.export(str(tmp_path / "g.jsonl"))
        g.forget("barack_obama")
        assert "barack_obama" not in [s.name for s in g.subjects()]
        with pytest.raises(mien.MienError) as e:
            g.forget("barack_obama")
        assert e.value.code == "ENOTFOUND"
        with pytest.raises(mien.MienError) as e:
            g.enroll("x", np.ones(64, np.float32) / 8, "other-model")
        assert e.value.code == "EMISMATCH"
        assert g.import_file(str(tmp_path / "g.jsonl"))[1] == 2
        assert "barack_obama" in [s.name for s in g.subjects()]
    with pytest.raises(mien.MienError) as e:
        mien.Gallery(str(tmp_path / "absent.db"), read_only=True)
    assert e.value.code == "ENOTFOUND"


def test_gallery_collections(models, tmp_path):
    """Two face collections of one gallery file keep their people apart."""
    train = _train_embeddings(models)
    path = str(tmp_path / "two.db")
    person, _, f = train[0]
    with mien.Gallery(path, collection="a") as a, mien.Gallery(path, collection="b") as b:
        assert a.enroll(person, f.embedding, models.embedder) == 1
        assert [s.name for s in a.subjects()] == [person] and b.subjects() == []
        assert b.identify(f.embedding, models.threshold) is None  # b holds nobody
        assert a.identify(f.embedding, models.threshold).known
    with pytest.raises(mien.MienError) as e:
        mien.Gallery(path, collection="absent", create=False)
    assert e.value.code == "ENOTFOUND"
    with pytest.raises(mien.MienError) as e:
        mien.Gallery(path, collection="../x")
    assert e.value.code == "EINVAL"


def test_cluster(models):
    train = _train_embeddings(models)
    emb = np.stack([f.embedding for _, _, f in train])
    labels, n = mien.cluster(emb, models.threshold)
    assert labels.dtype == np.int32 and labels.shape == (len(train),)
    people = [p for p, _, _ in train]
    assert n == len(set(people))
    # Same person <=> same cluster.
    for i in range(len(train)):
        for j in range(len(train)):
            assert (labels[i] == labels[j]) == (people[i] == people[j])
    assert mien.cluster(np.zeros((0, 128), np.float32), 0.9)[1] == 0
