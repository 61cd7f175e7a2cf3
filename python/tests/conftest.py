"""Shared fixtures. The tests import `mien` from this checkout's python/ (or from wherever it is
installed) and read the shared data from $MIEN_DATA (default ../shared/data beside the
checkout)."""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))  # python/: the package under test

import mien  # noqa: E402


def data_dir():
    d = os.environ.get("MIEN_DATA") or "../shared/data"
    if not os.path.isabs(d):
        d = os.path.join(CHECKOUT, d)
    return os.path.abspath(d)


DATA = data_dir()
PEOPLE = os.path.join(DATA, "people")
TRAIN = os.path.join(PEOPLE, "examples", "knn_examples", "train")


def labels():
    """(path under people/, [names left to right]) of people/labels.tsv."""
    out = []
    with open(os.path.join(PEOPLE, "labels.tsv")) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            path, who = line.rstrip("\n").split("\t")
            out.append((path, who.split(",")))
    return out


@pytest.fixture(scope="session")
def models():
    with mien.Models() as m:
        yield m


@pytest.fixture(scope="session")
def people():
    if not os.path.isdir(PEOPLE):
        pytest.fail("no shared data in %s (set MIEN_DATA)" % DATA)
    return PEOPLE
