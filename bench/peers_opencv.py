#!/usr/bin/python3
"""OpenCV's Haar cascade face detector (Debian python3-opencv 4.6 + opencv-data) on a list of
photos: median ms per photo of detection alone (photos decoded and turned grey beforehand,
scaleFactor 1.1, minNeighbors 5, minSize 30x30: the usual settings), over 4 timed passes after
one untimed, with cv2.setNumThreads(THREADS). Part of bench/peers.sh.

  peers_opencv.py LIST THREADS      -> one JSON object
"""
import json
import statistics
import sys
import time

import cv2


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    threads = int(sys.argv[2])
    cv2.setNumThreads(threads)
    paths = [p.strip() for p in open(sys.argv[1]) if p.strip()]
    grey = [cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2GRAY) for p in paths]
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml") \
        if hasattr(cv2, "data") else \
        cv2.CascadeClassifier("/usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml")
    if cascade.empty():
        raise SystemExit("haarcascade_frontalface_default.xml not found (apt-get install opencv-data)")
    t, c, faces = [], [], 0
    for p in range(5):
        t0, c0 = time.perf_counter(), time.thread_time()
        found = 0
        for g in grey:
            found += len(cascade.detectMultiScale(g, scaleFactor=1.1, minNeighbors=5, minSize=(30, 30)))
        if p:
            t.append((time.perf_counter() - t0) * 1e3 / len(grey))
            c.append((time.thread_time() - c0) * 1e3 / len(grey))
        faces = found
    print(json.dumps({"tool": "opencv %s Haar" % cv2.__version__, "threads": threads,
                      "images": len(grey), "ms_per_image": round(statistics.median(t), 4),
                      "cpu_ms_per_image": round(statistics.median(c), 4),
                      "faces": faces}))


if __name__ == "__main__":
    main()
