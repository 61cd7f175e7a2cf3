#!/usr/bin/python3
"""A CompreFace client written from CompreFace's docs/Rest-API-description.md alone, the way
its SDKs call the service: x-api-key header, multipart/form-data uploads (field `file`, or
`source_image` and `target_image`), JSON bodies with base64 images, query options. It enrolls
the people of $MIEN_DATA/people/examples/knn_examples/train/<name>/ and checks that every
labelled face of people/labels.tsv is named right (similarity >= the threshold, applied by
the client as CompreFace clients do); people who are not enrolled must stay below it.

    compreface_client.py --url http://127.0.0.1:8000 --key ADMIN_KEY --read-key READ_KEY \
                         --data ../shared/data [--threshold 0.5]

Standard library only. Exits 1 on the first mismatch, printing what was expected and got."""
import argparse, base64, json, os, sys, urllib.error, urllib.parse, urllib.request, uuid

ARGS = None
CHECKS = 0


def fail(msg):
    print("compreface_client: FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    global CHECKS
    CHECKS += 1
    if not cond:
        fail(msg)


def multipart(fields):
    """fields: list of (name, filename, bytes). Returns (content type, body)."""
    boundary = "----mien" + uuid.uuid4().hex
    out = bytearray()
    for name, filename, data in fields:
        out += b"--" + boundary.encode() + b"\r\n"
        out += ('Content-Disposition: form-data; name="%s"; filename="%s"\r\n' % (name, filename)).encode()
        out += b"Content-Type: application/octet-stream\r\n\r\n"
        out += data + b"\r\n"
    out += b"--" + boundary.encode() + b"--\r\n"
    return "multipart/form-data; boundary=" + boundary, bytes(out)


def call(method, path, query=None, key=None, json_body=None, files=None, raw=None, ctype=None):
    """One request; returns (status, parsed JSON or None, raw bytes)."""
    url = ARGS.url.rstrip("/") + path
    if isinstance(query, str):  # as the Python SDK builds it: "?&key=value&..."
        url += query
    elif query:
        url += "?" + urllib.parse.urlencode(query)
    headers = {}
    if key is not None:
        headers["x-api-key"] = key
    body = None
    if files is not None:
        ctype, body = multipart(files)
    elif json_body is not None:
        ctype, body = "application/json", json.dumps(json_body).encode()
    elif raw is not None:
        body = raw
    if ctype:
        headers["Content-Type"] = ctype
    req = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            status, data = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, data = e.code, e.read()
    try:
        parsed = json.loads(data) if data else None
    except ValueError:
        fail("%s %s: status %d, body is not JSON: %r" % (method, path, status, data[:200]))
    return status, parsed, data


def ok(method, path, **kw):
    status, body, raw = call(method, path, key=kw.pop("key", ARGS.key), **kw)
    check(status in (200, 201), "%s %s: expected 200 or 201, got %d: %s" % (method, path, status, raw[:300]))
    return body


def read(path):
    with open(path, "rb") as f:
        return f.read()


def check_box(box, where):
    for k in ("probability", "x_max", "y_max", "x_min", "y_min"):
        check(k in box, "%s: box lacks %s: %s" % (where, k, box))
    for k in ("x_max", "y_max", "x_min", "y_min"):
        check(isinstance(box[k], int), "%s: box.%s is not an integer: %s" % (where, k, box))
    check(box["x_min"] < box["x_max"] and box["y_min"] < box["y_max"], "%s: empty box %s" % (where, box))
    check(0.0 <= box["probability"] <= 1.0, "%s: probability out of [0,1]: %s" % (where, box))


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--key", required=True, help="admin API key")
    ap.add_argument("--read-key", required=True, help="read-only API key")
    ap.add_argument("--data", default=os.environ.get("MIEN_DATA", "../shared/data"))
    ap.add_argument("--threshold", type=float, default=0.5)
    ARGS = ap.parse_args()
    people = os.path.join(ARGS.data, "people")
    train = os.path.join(people, "examples", "knn_examples", "train")
    thr = ARGS.threshold
    R = "/api/v1/recognition"

    # ---- keys ----
    st, body, _ = call("GET", R + "/subjects", key=None)
    check(st == 401, "no x-api-key: expected 401, got %d" % st)
    st, body, _ = call("GET", R + "/subjects", key="not-a-key")
    check(st == 401, "wrong x-api-key: expected 401, got %d" % st)
    check(isinstance(body, dict) and "message" in body, "error body lacks message: %s" % body)
    st, body, _ = call("POST", R + "/subjects", key=ARGS.read_key, json_body={"subject": "x"})
    check(st == 403, "read key adding a subject: expected 403, got %d" % st)

    # ---- start empty ----
    body = ok("DELETE", R + "/subjects")
    check(isinstance(body.get("deleted"), int), "delete all subjects: %s" % body)
    check(ok("GET", R + "/subjects", key=ARGS.read_key) == {"subjects": []}, "subjects not empty")

    # ---- enroll: subjects first (as the SDK's subject service), then examples ----
    names = sorted(os.listdir(train))
    image_ids = {}
    for i, name in enumerate(names):
        if i % 2 == 0:  # the other half is created implicitly by its first example
            check(ok("POST", R + "/subjects", json_body={"subject": name}) == {"subject": name},
                  "add subject %s" % name)
        for j, fn in enumerate(sorted(os.listdir(os.path.join(train, name)))):
            data = read(os.path.join(train, name, fn))
            q = {"subject": name, "det_prob_threshold": "0.6"}
            if j == 1:  # base64 JSON, as the doc allows for every image input
                body = ok("POST", R + "/faces", query=q,
                          json_body={"file": base64.b64encode(data).decode()})
            else:
                body = ok("POST", R + "/faces", query=q, files=[("file", fn, data)])
            check(body.get("subject") == name and isinstance(body.get("image_id"), str)
                  and len(body["image_id"]) == 36, "add example %s/%s: %s" % (name, fn, body))
            image_ids.setdefault(name, []).append(body["image_id"])
    got = ok("GET", R + "/subjects", key=ARGS.read_key)["subjects"]
    check(sorted(got) == names, "subjects: expected %s, got %s" % (names, got))
    n_faces = sum(len(v) for v in image_ids.values())

    # ---- list examples, paginated ----
    body = ok("GET", R + "/faces", query={"page": 0, "size": 3}, key=ARGS.read_key)
    check(body["page_number"] == 0 and body["page_size"] == 3 and body["total_elements"] == n_faces
          and body["total_pages"] == (n_faces + 2) // 3 and len(body["faces"]) == 3,
          "list faces page 0: %s" % body)
    seen = []
    for p in range(body["total_pages"]):
        seen += ok("GET", R + "/faces", query={"page": p, "size": 3}, key=ARGS.read_key)["faces"]
    want = sorted((i, n) for n, ids in image_ids.items() for i in ids)
    check(sorted((f["image_id"], f["subject"]) for f in seen) == want, "all pages: %s" % seen)
    body = ok("GET", R + "/faces", query={"subject": "biden"}, key=ARGS.read_key)
    check(sorted(f["image_id"] for f in body["faces"]) == sorted(image_ids["biden"]),
          "faces of biden: %s" % body)

    # ---- recognize every labelled photo ----
    n_checked = 0
    for line in open(os.path.join(people, "labels.tsv")):
        if line.startswith("#") or not line.strip():
            continue
        path, who = line.rstrip("\n").split("\t")
        who = who.split(",")
        body = ok("POST", R + "/recognize", query={"prediction_count": 2, "det_prob_threshold": 0.6},
                  files=[("file", os.path.basename(path), read(os.path.join(people, path)))])
        res = body["result"]
        check("plugins_versions" not in body, "%s: status=false gives plugins_versions" % path)
        check(len(res) >= len(who), "%s: expected %d faces, got %d" % (path, len(who), len(res)))
        # the labelled identities, left to right: the len(who) largest faces, sorted by x
        big = sorted(res, key=lambda f: -(f["box"]["x_max"] - f["box"]["x_min"]))[:len(who)]
        big.sort(key=lambda f: f["box"]["x_min"])
        for face, expect in zip(big, who):
            check_box(face["box"], path)
            subj = face["subjects"]
            check(1 <= len(subj) <= 2, "%s: prediction_count=2 gave %d subjects" % (path, len(subj)))
            check(all(subj[k]["similarity"] >= subj[k + 1]["similarity"] for k in range(len(subj) - 1)),
                  "%s: subjects not sorted by similarity" % path)
            check(all(0.0 <= s["similarity"] <= 1.0 for s in subj), "%s: similarity out of [0,1]" % path)
            top = subj[0]
            name = top["subject"] if top["similarity"] >= thr else "unknown"
            if expect not in names:
                expect = "unknown"
            check(name == expect, "%s: expected %s, got %s (similarity %.4f)"
                  % (path, expect, top["subject"], top["similarity"]))
            n_checked += 1
    print("compreface_client: %d labelled faces recognised right" % n_checked)

    # ---- recognize options: limit, plugins, status; base64 ----
    two = read(os.path.join(people, "examples", "two_people.jpg"))
    body = ok("POST", R + "/recognize", query={"limit": 1}, files=[("file", "two.jpg", two)])
    check(len(body["result"]) == 1 and len(body["result"][0]["subjects"]) == 1,
          "limit=1, default prediction_count: %s" % body)
    body = ok("POST", R + "/recognize", query="?&limit=0&face_plugins=landmarks,calculator,age&status=True",
              json_body={"file": base64.b64encode(two).decode()})
    f0 = body["result"][0]
    check(len(body["result"]) == 2, "two_people: %d faces" % len(body["result"]))
    check(len(f0.get("landmarks", [])) == 5 and all(len(p) == 2 for p in f0["landmarks"]),
          "landmarks plugin: %s" % f0.get("landmarks"))
    check(len(f0.get("embedding", [])) >= 64, "calculator plugin: no embedding")
    check("age" not in f0, "unsupported age plugin must be ignored")
    check("plugins_versions" in body and "execution_time" in f0, "status=true: %s" % list(body))

    # ---- verify an image against a stored example ----
    obama_id = image_ids["obama"][0]
    body = ok("POST", R + "/faces/%s/verify" % obama_id, files=[("file", "o.jpg", read(os.path.join(people, "examples", "obama.jpg")))])
    check(body["result"][0]["similarity"] >= thr, "verify obama vs obama example: %s" % body)
    check_box(body["result"][0]["box"], "verify")
    body = ok("POST", R + "/faces/%s/verify" % obama_id, files=[("file", "b.jpg", read(os.path.join(people, "examples", "biden.jpg")))])
    check(body["result"][0]["similarity"] < thr, "verify biden vs obama example: %s" % body)
    st, body, _ = call("POST", R + "/faces/00000000-0000-0000-0000-00000000ffff/verify", key=ARGS.key,
                       files=[("file", "b.jpg", read(os.path.join(people, "examples", "biden.jpg")))])
    check(st == 404, "verify against an unknown image id: expected 404, got %d" % st)

    # ---- detection service ----
    body = ok("POST", "/api/v1/detection/detect", key=ARGS.read_key, files=[("file", "two.jpg", two)],
              query={"det_prob_threshold": 0.6, "face_plugins": "landmarks"})
    check(len(body["result"]) == 2, "detect two_people: %s" % body)
    for f in body["result"]:
        check_box(f["box"], "detect")
        check("subjects" not in f and len(f["landmarks"]) == 5, "detect result: %s" % f)
    body = ok("POST", "/api/v1/detection/detect", query={"limit": 1}, files=[("file", "two.jpg", two)])
    check(len(body["result"]) == 1, "detect limit=1: %s" % body)

    # ---- verification service ----
    body = ok("POST", "/api/v1/verification/verify",
              files=[("source_image", "o.jpg", read(os.path.join(people, "examples", "obama.jpg"))),
                     ("target_image", "two.jpg", two)])
    r0 = body["result"][0]
    check_box(r0["source_image_face"]["box"], "verification source")
    m = sorted(r0["face_matches"], key=lambda f: f["box"]["x_min"])
    check(len(m) == 2, "verification face_matches: %s" % r0)
    # two_people.jpg: obama on the left, biden on the right
    check(m[0]["similarity"] >= thr > m[1]["similarity"], "verification similarities: %s" % m)
    check(r0["face_matches"][0]["similarity"] >= r0["face_matches"][1]["similarity"],
          "face_matches not sorted by similarity")
    body = ok("POST", "/api/v1/verification/verify",
              json_body={"source_image": base64.b64encode(read(os.path.join(people, "examples", "biden.jpg"))).decode(),
                         "target_image": base64.b64encode(two).decode()})
    m = sorted(body["result"][0]["face_matches"], key=lambda f: f["box"]["x_min"])
    check(m[1]["similarity"] >= thr > m[0]["similarity"], "verification base64: %s" % m)

    # ---- errors: no face, not an image, missing file, missing subject ----
    st, body, _ = call("POST", R + "/recognize", key=ARGS.key, files=[("file", "x.jpg", b"not an image")])
    check(st == 400 and "message" in body, "recognize garbage: expected 400 with message, got %d %s" % (st, body))
    st, body, _ = call("POST", R + "/faces", key=ARGS.key, query={"subject": "x"}, files=[("other", "x.jpg", two)])
    check(st == 400, "add example without file field: expected 400, got %d" % st)
    st, body, _ = call("POST", R + "/faces", key=ARGS.key, files=[("file", "x.jpg", two)])
    check(st == 400, "add example without subject: expected 400, got %d" % st)
    st, body, _ = call("POST", R + "/recognize", key=ARGS.key, raw=b"{not json", ctype="application/json")
    check(st == 400, "bad JSON: expected 400, got %d" % st)

    # ---- rename, merge, delete examples and subjects ----
    body = ok("PUT", R + "/subjects/alex_lacamoire", json_body={"subject": "alex"})
    check(body.get("updated") is True, "rename: %s" % body)
    body = ok("POST", R + "/recognize", files=[("file", "a.png", read(os.path.join(people, "examples", "alex-lacamoire.png")))])
    check(body["result"][0]["subjects"][0]["subject"] == "alex", "after rename: %s" % body)
    body = ok("PUT", R + "/subjects/rose_leslie", json_body={"subject": "kit_harington"})
    check(body.get("updated") is True, "merge: %s" % body)
    got = ok("GET", R + "/subjects")["subjects"]
    check("rose_leslie" not in got and "kit_harington" in got, "after merge: %s" % got)
    kit = ok("GET", R + "/faces", query={"subject": "kit_harington"})["faces"]
    check(len(kit) == len(image_ids["kit_harington"]) + len(image_ids["rose_leslie"]),
          "merged faces: %s" % kit)
    st, _, _ = call("PUT", R + "/subjects/nobody", key=ARGS.key, json_body={"subject": "z"})
    check(st == 404, "rename unknown subject: expected 404, got %d" % st)

    bid = image_ids["biden"][0]
    check(ok("DELETE", R + "/faces/" + bid) == {"image_id": bid, "subject": "biden"}, "delete example")
    st, _, _ = call("DELETE", R + "/faces/" + bid, key=ARGS.key)
    check(st == 404, "delete a deleted example: expected 404, got %d" % st)
    body = ok("DELETE", R + "/faces", query={"subject": "biden"})
    check(body == {"deleted": len(image_ids["biden"]) - 1}, "delete examples of biden: %s" % body)
    check("biden" in ok("GET", R + "/subjects")["subjects"], "a subject stays when its examples go")
    check(ok("DELETE", R + "/subjects/biden") == {"subject": "biden"}, "delete subject")
    st, _, _ = call("DELETE", R + "/subjects/biden", key=ARGS.key)
    check(st == 404, "delete a deleted subject: expected 404, got %d" % st)
    left = ok("GET", R + "/subjects")["subjects"]
    # more predictions asked than there are subjects: every subject once, real names
    body = ok("POST", R + "/recognize", query={"prediction_count": 10}, files=[("file", "two.jpg", two)])
    for f in body["result"]:
        check(sorted(x["subject"] for x in f["subjects"]) == sorted(left),
              "prediction_count=10 with %d subjects: %s" % (len(left), f["subjects"]))
    check(ok("DELETE", R + "/subjects") == {"deleted": len(left)}, "delete all subjects")
    check(ok("GET", R + "/subjects")["subjects"] == [], "subjects after delete all")
    print("compreface_client: OK (%d checks)" % CHECKS)


if __name__ == "__main__":
    main()
