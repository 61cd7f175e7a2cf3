"""face_recognition's face_detection tool on mien, with its arguments and output lines:

    face_detection [--cpus N] [--model hog|cnn] [--upsample N] IMAGE_TO_CHECK
    python3 -m mien.face_detection_cli ...

IMAGE_TO_CHECK is a photo or a folder of photos (.jpg, .jpeg, .png); one line per face:
"FILE,TOP,RIGHT,BOTTOM,LEFT" in pixels.
"""

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import mien.face_recognition as face_recognition
from mien.face_recognition_cli import image_files_in_folder


def detect_lines(path, model, upsample):
    img = face_recognition.load_image_file(path)
    return ["{},{},{},{},{}".format(path, *loc)
            for loc in face_recognition.face_locations(img, number_of_times_to_upsample=upsample,
                                                       model=model)]


def main(argv=None):
    ap = argparse.ArgumentParser(prog="face_detection",
                                 description="Find the faces of photos (mien): one line per face, top,right,bottom,left.")
    ap.add_argument("image_to_check")
    ap.add_argument("--cpus", type=int, default=1,
                    help="number of CPU cores to use in parallel (-1 uses all of them)")
    ap.add_argument("--model", default="hog", choices=("hog", "cnn"),
                    help="face detection model: hog (mien's default, fast) or cnn (SSD, more accurate)")
    ap.add_argument("--upsample", type=int, default=0,
                    help="how many times to upsample looking for faces; higher finds smaller faces")
    a = ap.parse_args(argv)
    if not os.path.exists(a.image_to_check):
        ap.error("IMAGE_TO_CHECK %r does not exist" % a.image_to_check)
    paths = image_files_in_folder(a.image_to_check) if os.path.isdir(a.image_to_check) else [a.image_to_check]
    cpus = (os.cpu_count() or 1) if a.cpus == -1 else max(1, a.cpus)
    try:
        run = lambda p: detect_lines(p, a.model, a.upsample)
        with ThreadPoolExecutor(max_workers=cpus) as pool:
            for lines in pool.map(run, paths):
                for line in lines:
                    print(line, flush=True)
    except Exception as e:
        print("face_detection: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
