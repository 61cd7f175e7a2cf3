"""face_recognition's command-line tool on mien, with its arguments and output lines:

    face_recognition [--cpus N] [--tolerance 0.6] [--show-distance BOOL] KNOWN_PEOPLE_FOLDER IMAGE_TO_CHECK
    python3 -m mien.face_recognition_cli ...

KNOWN_PEOPLE_FOLDER holds one photo per person, named after them (obama.jpg -> "obama").
IMAGE_TO_CHECK is a photo or a folder of photos (.jpg, .jpeg, .png). For each face found it
prints "FILE,NAME" for every known person within the tolerance (or "FILE,unknown_person"),
and "FILE,no_persons_found" for a photo without a face; --show-distance true adds ",DISTANCE"
(None for unknown_person).
"""

import argparse
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor

import mien.face_recognition as face_recognition

_IMAGE = re.compile(r".*\.(jpg|jpeg|png)", re.IGNORECASE)


def image_files_in_folder(folder):
    return [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if _IMAGE.match(f)]


def scan_known_people(folder):
    names, encodings = [], []
    for path in image_files_in_folder(folder):
        name = os.path.splitext(os.path.basename(path))[0]
        found = face_recognition.face_encodings(face_recognition.load_image_file(path))
        if len(found) > 1:
            print("WARNING: More than one face found in {}. Only considering the first face.".format(path))
        if not found:
            print("WARNING: No faces found in {}. Ignoring file.".format(path))
        else:
            names.append(name)
            encodings.append(found[0])
    return names, encodings


def _result(path, name, distance, show_distance):
    if show_distance:
        return "{},{},{}".format(path, name, distance)
    return "{},{}".format(path, name)


def check_image(path, names, encodings, tolerance, show_distance):
    """The output lines of one photo."""
    lines = []
    found = face_recognition.face_encodings(face_recognition.load_image_file(path))
    for enc in found:
        distances = face_recognition.face_distance(encodings, enc)
        matches = [(n, d) for n, d in zip(names, distances) if d <= tolerance]
        if matches:
            lines += [_result(path, n, d, show_distance) for n, d in matches]
        else:
            lines.append(_result(path, "unknown_person", None, show_distance))
    if not found:
        lines.append(_result(path, "no_persons_found", None, show_distance))
    return lines


def _bool(v):
    t = v.strip().lower()
    if t in ("1", "true", "t", "yes", "y", "on"):
        return True
    if t in ("0", "false", "f", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError("%r is not a valid boolean" % v)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="face_recognition",
                                 description="Recognise the faces of photos from a folder of known people (mien).")
    ap.add_argument("known_people_folder")
    ap.add_argument("image_to_check")
    ap.add_argument("--cpus", type=int, default=1,
                    help="number of CPU cores to use in parallel (-1 uses all of them)")
    ap.add_argument("--tolerance", type=float, default=0.6,
                    help="distance between faces to consider a match; lower is stricter (default 0.6)")
    ap.add_argument("--show-distance", type=_bool, default=False,
                    help="print the face distance of each match (true/false)")
    a = ap.parse_args(argv)
    if not os.path.isdir(a.known_people_folder):
        ap.error("KNOWN_PEOPLE_FOLDER %r is not a folder" % a.known_people_folder)
    if not os.path.exists(a.image_to_check):
        ap.error("IMAGE_TO_CHECK %r does not exist" % a.image_to_check)
    try:
        names, encodings = scan_known_people(a.known_people_folder)
        if os.path.isdir(a.image_to_check):
            paths = image_files_in_folder(a.image_to_check)
        else:
            paths = [a.image_to_check]
        cpus = (os.cpu_count() or 1) if a.cpus == -1 else max(1, a.cpus)
        run = lambda p: check_image(p, names, encodings, a.tolerance, a.show_distance)
        if cpus > 1 and len(paths) > 1:
            with ThreadPoolExecutor(max_workers=cpus) as pool:
                results = pool.map(run, paths)
                for lines in results:
                    for line in lines:
                        print(line, flush=True)
        else:
            for p in paths:
                for line in run(p):
                    print(line, flush=True)
    except Exception as e:  # mien.MienError, OSError: a message, not a traceback
        print("face_recognition: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
