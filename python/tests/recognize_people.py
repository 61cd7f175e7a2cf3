"""A program written against face_recognition's documented API (its README and API docs), as a
face_recognition user would write it: known people from a folder per person, then every face
of each unknown picture named, left to right, by the nearest known face within the usual
tolerance, with its landmarks checked to sit inside its box.

    python3 recognize_people.py KNOWN_DIR PICTURE...

prints one line per picture: "PICTURE<TAB>name,name,..." ("unknown" for a face nobody
matches). The tests run it with only its import line changed to
`import mien.face_recognition as face_recognition`.
"""

import os
import sys

import face_recognition
import numpy as np


def known_people(folder):
    names, encodings = [], []
    for person in sorted(os.listdir(folder)):
        for photo in sorted(os.listdir(os.path.join(folder, person))):
            image = face_recognition.load_image_file(os.path.join(folder, person, photo))
            found = face_recognition.face_encodings(image)
            if len(found) != 1:
                sys.exit("%s/%s: expected one face, found %d" % (person, photo, len(found)))
            names.append(person)
            encodings.append(found[0])
    return names, encodings


def main():
    names, encodings = known_people(sys.argv[1])
    for picture in sys.argv[2:]:
        image = face_recognition.load_image_file(picture)
        locations = face_recognition.face_locations(image)
        faces = face_recognition.face_encodings(image, locations)
        landmarks = face_recognition.face_landmarks(image, locations)
        if not (len(locations) == len(faces) == len(landmarks)):
            sys.exit("%s: %d boxes, %d encodings, %d landmark sets" % (
                picture, len(locations), len(faces), len(landmarks)))
        found = []
        for (top, right, bottom, left), encoding, marks in zip(locations, faces, landmarks):
            # Every feature of the face lies in (or near) its box.
            for feature in ("left_eye", "right_eye", "nose_tip", "top_lip", "chin"):
                for x, y in marks[feature]:
                    h, w = bottom - top, right - left
                    if not (left - w / 2 <= x <= right + w / 2 and top - h / 2 <= y <= bottom + h / 2):
                        sys.exit("%s: %s point %s far outside the box %s" % (
                            picture, feature, (x, y), (top, right, bottom, left)))
            distances = face_recognition.face_distance(encodings, encoding)
            best = int(np.argmin(distances))
            matches = face_recognition.compare_faces(encodings, encoding)
            name = names[best] if matches[best] else "unknown"
            found.append((left, name))
        print("%s\t%s" % (picture, ",".join(n for _, n in sorted(found))))


if __name__ == "__main__":
    main()
