"""pip install ./python  (from the checkout, after `make`)

Installs the module `mien` (a ctypes binding, no compiled extension) with a copy of the
checkout's build/libmien.so inside the package (or of $MIEN_LIB when set), and records where
the checkout's models are, so that an installed package runs from any folder. Without a
built library the package still installs and looks for libmien.so at import (mien/_lib.py:
$MIEN_LIB, the checkout, the loader's path, /usr/local/lib ...).

Offline: with a venv made by `python3 -m venv --system-site-packages` (Debian's python3-venv),
NumPy comes from Debian's python3-numpy and nothing is fetched.
"""

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(HERE)


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        dst = os.path.join(self.build_lib, "mien")
        lib = os.environ.get("MIEN_LIB") or os.path.join(CHECKOUT, "build", "libmien.so")
        if os.path.exists(lib):
            shutil.copy2(lib, os.path.join(dst, "libmien.so"))
        else:
            print("mien: %s not found: the package will look for libmien.so at import" % lib)
        with open(os.path.join(dst, "_where.py"), "w") as f:
            f.write("# Written by setup.py: the checkout this package was installed from.\n")
            f.write("CHECKOUT_MODELS = %r\n" % os.path.join(CHECKOUT, "models"))


setup(
    name="mien",
    version="0.1.0",
    description="Face detection, alignment and recognition (libmien) from Python, and a "
                "drop-in for face_recognition",
    packages=["mien"],
    python_requires=">=3.8",
    install_requires=["numpy"],
    cmdclass={"build_py": BuildWithLibrary},
    entry_points={"console_scripts": [
        "face_recognition = mien.face_recognition_cli:main",
        "face_detection = mien.face_detection_cli:main",
    ]},
    zip_safe=False,
)
