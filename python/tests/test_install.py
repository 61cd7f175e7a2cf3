"""`pip install ./python` into a fresh venv (Debian's python3-venv, NumPy from python3-numpy),
then, from another folder: the package imports with its own copy of libmien.so, finds the
models, runs the face_recognition program with only its import changed, and the console
scripts face_recognition and face_detection work."""

import os
import subprocess
import sys

from conftest import CHECKOUT, HERE, PEOPLE, TRAIN


def test_pip_install_in_fresh_venv(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, timeout=300)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "--no-index", "--quiet",
                          os.path.join(CHECKOUT, "python")],
                         capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    py = str(venv / "bin" / "python")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MIEN_LIB", "MIEN_MODELS")}
    run = lambda args: subprocess.run(args, cwd=str(elsewhere), env=env, capture_output=True,
                                      text=True, timeout=600)

    r = run([py, "-c", "import mien, mien._lib as l; print(l.LIB_PATH); print(mien.Models().dir)"])
    assert r.returncode == 0, r.stderr
    lib, models = r.stdout.split()
    assert lib.startswith(str(venv)) and lib.endswith("mien/libmien.so")
    assert os.path.isdir(models)

    src = open(os.path.join(HERE, "recognize_people.py")).read()
    prog = elsewhere / "recognize_people.py"
    prog.write_text(src.replace("import face_recognition\n",
                                "import mien.face_recognition as face_recognition\n", 1))
    probe = os.path.join(PEOPLE, "examples", "knn_examples", "test", "obama_and_biden.jpg")
    r = run([py, str(prog), TRAIN, probe])
    assert r.returncode == 0, r.stderr
    assert r.stdout == probe + "\tbiden,obama\n"

    known = elsewhere / "known"
    known.mkdir()
    os.symlink(os.path.join(TRAIN, "obama", "obama.jpg"), known / "Barack Obama.jpg")
    r = run([str(venv / "bin" / "face_recognition"), str(known), os.path.join(PEOPLE, "examples", "obama2.jpg")])
    assert r.returncode == 0, r.stderr
    assert r.stdout == os.path.join(PEOPLE, "examples", "obama2.jpg") + ",Barack Obama\n"
    r = run([str(venv / "bin" / "face_detection"), os.path.join(PEOPLE, "examples", "obama.jpg")])
    assert r.returncode == 0 and len(r.stdout.strip().split(",")) == 5, r.stderr
