#!/usr/bin/python3
"""A CompreFace client written from CompreFace's docs/Rest-API-description.md alone, the way
its SDKs call the service: x-api-key header, multipart/form-data uploads (field `file`, or
`source_image` and `target_image`), JSON bodies with base64 images or with embeddings, query
options. It enrolls the people of $MIEN_DATA/people/examples/knn_examples/train/<name>/ and
checks that every labelled face of people/labels.tsv is named right (similarity >= the
threshold, applied by the client as CompreFace clients do); people who are not enrolled must
stay below it. Every route of the document is called, and an application's services are kept
apart: a second recognition service (another face collection) cannot read, recognize against
or delete the first one's people, and detection and verification keys touch no collection.

    compreface_client.py --url http://127.0.0.1:8000 --key RECOGNITION_KEY \
        --read-key READ_ONLY_KEY_OF_THE_SAME_COLLECTION --key-b RECOGNITION_KEY_OF_ANOTHER \
        --detection-key KEY --verification-key KEY --admin-key MIEN_ADMIN_KEY \
        --data ../shared/data [--threshold 0.5]

The mien admin key is used for one mien call only (/v1/verify: the cosine behind a
similarity, to check the mapping the README documents). Standard library only. Exits 1 on the
first mismatch, printing what was expected and got."""
import argparse, base64, json, os, sys, urllib.error, urllib.parse, urllib.request, uuid

ARGS = None
CHECKS = 0
# The README's similarity scale: the steepness of CompreFace's tanh, per relative distance.
SCALE_A = 13.6


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


def call_bytes(method, path, key=None):
    """A request whose answer is bytes (an image): (status, headers, bytes)."""
    headers = {"x-api-key": key} if key is not None else {}
    req = urllib.request.Request(ARGS.url.rstrip("/") + path, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def ok(method, path, **kw):
    status, body, raw = call(method, path, key=kw.pop("key", ARGS.key), **kw)
    check(status in (200, 201), "%s %s: expected 200 or 201, got %d: %s" % (method, path, status, raw[:300]))
    return body


def read(path):
    with open(path, "rb") as f:
        return f.read()


def error(st, body, status, what, code=None):
    """A CompreFace error: the status, and a body {"message": ..., "code": ...}."""
    check(st == status, "%s: expected %d, got %d: %s" % (what, status, st, body))
    check(isinstance(body, dict) and isinstance(body.get("message"), str) and isinstance(body.get("code"), int),
          "%s: error body is not {message, code}: %s" % (what, body))
    if code is not None:
        check(body["code"] == code, "%s: code %s, expected %d" % (what, body["code"], code))


def cf_similarity(cos, t):
    """The README's mapping of mien's cosine c onto CompreFace's similarity, with t the
    embedder's threshold (similarity 0.5): (1 + tanh(A (1 - d / d_t))) / 2 with d and d_t the
    distances sqrt(2 - 2c) and sqrt(2 - 2t) of unit vectors."""
    import math
    d, dt = math.sqrt(max(0.0, 2 - 2 * cos)), math.sqrt(max(1e-12, 2 - 2 * t))
    return (1 + math.tanh(SCALE_A * (1 - d / dt))) / 2


def check_box(box, where):
    for k in ("probability", "x_max", "y_max", "x_min", "y_min"):
        check(k in box, "%s: box lacks %s: %s" % (where, k, box))
    for k in ("x_max", "y_max", "x_min", "y_min"):
        check(isinstance(box[k], int), "%s: box.%s is not an integer: %s" % (where, k, box))
    check(box["x_min"] < box["x_max"] and box["y_min"] < box["y_max"], "%s: empty box %s" % (where, box))
    check(0.0 <= box["probability"] <= 1.0, "%s: probability out of [0,1]: %s" % (where, box))


def uuid_of(i):
    return "00000000-0000-0000-0000-%012x" % i


def exercise_embeddings_and_images(R, people, image_ids, names, thr):
    """The similarity scale, stored example images (and their static links), and the routes
    that take the client's own embeddings."""
    ex = os.path.join(people, "examples")
    obama_jpg, obama2_jpg, biden_jpg = (read(os.path.join(ex, f)) for f in ("obama.jpg", "obama2.jpg", "biden.jpg"))

    # -- the scale: a similarity is the documented function of mien's cosine (/v1/verify) --
    for other in (obama2_jpg, biden_jpg):
        st, v, raw = call("POST", "/v1/verify", key=ARGS.admin_key,
                          files=[("image1", "a.jpg", obama_jpg), ("image2", "b.jpg", other)])
        check(st == 200, "/v1/verify: %d %s" % (st, raw[:200]))
        body = ok("POST", "/api/v1/verification/verify", key=ARGS.verification_key,
                  files=[("source_image", "a.jpg", obama_jpg), ("target_image", "b.jpg", other)])
        got = body["result"][0]["face_matches"][0]["similarity"]
        want = cf_similarity(v["similarity"], v["threshold"])
        check(abs(got - want) < 2e-4, "similarity %.5f for cosine %.5f (threshold %.4f), expected %.5f"
              % (got, v["similarity"], v["threshold"], want))
        check((got >= 0.5) == v["same"], "similarity 0.5 is not mien's threshold: %s %s" % (got, v))

    # -- stored example images: the aligned face (JPEG), by header and by static link --
    oid = image_ids["obama"][0]
    st, _, img = call_bytes("GET", R + "/faces/%s/img" % oid, key=ARGS.read_key)
    check(st == 200 and img[:3] == b"\xff\xd8\xff" and len(img) > 1000,
          "image of an example: %d, %d bytes %r" % (st, len(img), img[:4]))
    st, _, img2 = call_bytes("GET", "/api/v1/static/%s/images/%s" % (ARGS.read_key, oid))
    check(st == 200 and img2 == img, "static link of an example: %d, %d bytes" % (st, len(img2)))
    st, _, img3 = call_bytes("GET", R + "/faces/%s/img" % uuid_of(0xfffff), key=ARGS.key)
    check(st == 200 and img3 == b"", "image of an unknown id: %d, %d bytes (empty expected)" % (st, len(img3)))
    st, _, img3 = call_bytes("GET", "/api/v1/static/%s/images/%s" % ("not-a-key", oid))
    check(st == 401, "static link with a wrong key: %d" % st)
    # the kept crop is a face the service recognizes, also without detection (detect_faces=false)
    body = ok("POST", R + "/recognize", key=ARGS.read_key, files=[("file", "crop.jpg", img)])
    check(body["result"][0]["subjects"][0]["subject"] == "obama", "recognize the kept crop: %s" % body)
    body = ok("POST", R + "/recognize", key=ARGS.read_key, query={"detect_faces": "false"},
              files=[("file", "crop.jpg", img)])
    check(len(body["result"]) == 1 and body["result"][0]["subjects"][0]["subject"] == "obama"
          and body["result"][0]["subjects"][0]["similarity"] >= thr, "detect_faces=false: %s" % body)

    # -- embeddings: the calculator plugin's vectors sent back --
    body = ok("POST", "/api/v1/detection/detect", key=ARGS.detection_key, query={"face_plugins": "calculator"},
              files=[("file", "two.jpg", read(os.path.join(ex, "two_people.jpg")))])
    faces = sorted(body["result"], key=lambda f: f["box"]["x_min"])
    e_obama, e_biden = faces[0]["embedding"], faces[1]["embedding"]
    body = ok("POST", R + "/embeddings/recognize", key=ARGS.read_key, query={"prediction_count": 2},
              json_body={"embeddings": [e_obama, e_biden]})
    res = body["result"]
    check(len(res) == 2 and res[0]["embedding"] == e_obama, "embeddings/recognize: %s" % str(body)[:300])
    check(res[0]["similarities"][0]["subject"] == "obama" and res[0]["similarities"][0]["similarity"] >= thr,
          "embeddings/recognize obama: %s" % res[0]["similarities"])
    check(res[1]["similarities"][0]["subject"] == "biden" and len(res[1]["similarities"]) == 2,
          "embeddings/recognize biden: %s" % res[1]["similarities"])
    check(res[1]["similarities"][0]["similarity"] >= res[1]["similarities"][1]["similarity"],
          "embeddings/recognize: not sorted")
    # the same face through the photo route: the same similarity
    photo = ok("POST", R + "/recognize", key=ARGS.read_key, files=[("file", "two.jpg", read(os.path.join(ex, "two_people.jpg")))])
    left = min(photo["result"], key=lambda f: f["box"]["x_min"])
    check(abs(left["subjects"][0]["similarity"] - res[0]["similarities"][0]["similarity"]) < 1e-4,
          "photo and embedding recognize differ: %s vs %s" % (left["subjects"], res[0]["similarities"]))
    body = ok("POST", R + "/embeddings/faces/%s/verify" % oid, key=ARGS.read_key,
              json_body={"embeddings": [e_obama, e_biden]})
    r = body["result"]
    check(len(r) == 2 and r[0]["similarity"] >= thr > r[1]["similarity"] and r[1]["embedding"] == e_biden,
          "embeddings/faces/{id}/verify: %s" % [(x["similarity"]) for x in r])
    body = ok("POST", "/api/v1/verification/embeddings/verify", key=ARGS.verification_key,
              json_body={"source": e_obama, "targets": [e_biden, e_obama]})
    r = body["result"]
    check(len(r) == 2 and r[0]["similarity"] < thr and abs(r[1]["similarity"] - 1.0) < 1e-4,
          "verification/embeddings/verify: %s" % [x["similarity"] for x in r])
    # vectors that are not this embedder's: refused with INCORRECT_ARGUMENT
    for bad, what in (([0.1, 0.2, 0.3], "a 3-d vector"), (["x"] * len(e_obama), "strings"),
                      ([0.0] * len(e_obama), "a zero vector")):
        st, b, _ = call("POST", R + "/embeddings/recognize", key=ARGS.read_key, json_body={"embeddings": [bad]})
        error(st, b, 400, "embeddings/recognize with %s" % what, 36)
    st, b, _ = call("POST", "/api/v1/verification/embeddings/verify", key=ARGS.verification_key,
                    json_body={"source": e_obama[:-1], "targets": [e_obama]})
    error(st, b, 400, "a source one value short", 36)
    st, b, _ = call("POST", R + "/embeddings/recognize", key=ARGS.read_key, json_body={"embeddings": []})
    error(st, b, 400, "no embeddings", 36)
    st, b, _ = call("POST", R + "/embeddings/faces/%s/verify" % uuid_of(0xfffff), key=ARGS.read_key,
                    json_body={"embeddings": [e_obama]})
    error(st, b, 404, "embeddings verify against an unknown id", 44)
    st, b, _ = call("POST", "/api/v1/verification/embeddings/verify", key=ARGS.detection_key,
                    json_body={"source": e_obama, "targets": [e_obama]})
    error(st, b, 403, "a detection key on the verification service")
    print("compreface_client: embeddings, images and the similarity scale OK")


def exercise_isolation(R, people, image_ids):
    """A second recognition service (another face collection) and the first: neither reads,
    recognizes against nor deletes the other's people."""
    ex = os.path.join(people, "examples")
    kb = ARGS.key_b
    obama_jpg, biden_jpg = read(os.path.join(ex, "obama.jpg")), read(os.path.join(ex, "biden.jpg"))
    check(ok("GET", R + "/subjects", key=kb) == {"subjects": []}, "service B starts empty")
    check(ok("GET", R + "/faces", key=kb)["total_elements"] == 0, "service B lists no example")
    body = ok("POST", R + "/recognize", key=kb, files=[("file", "o.jpg", obama_jpg)])
    check(body["result"][0]["subjects"] == [], "B recognizes against A's people: %s" % body)
    # B enrolls its own 'obama' (the same name, another person for all it knows: biden's photo)
    b_id = ok("POST", R + "/faces", key=kb, query={"subject": "obama"}, files=[("file", "b.jpg", biden_jpg)])["image_id"]
    check(b_id not in sum(image_ids.values(), []), "B's image id collides with A's")
    check(ok("GET", R + "/subjects", key=kb) == {"subjects": ["obama"]}, "B's subjects")
    a_oid, a_bid = image_ids["obama"][0], image_ids["kit_harington"][0]
    # B cannot read A's examples (image, verify), nor delete them, one by one or many at once
    st, _, img = call_bytes("GET", R + "/faces/%s/img" % a_oid, key=kb)
    check(st == 200 and img == b"", "B downloads A's image: %d bytes" % len(img))
    st, _, img = call_bytes("GET", "/api/v1/static/%s/images/%s" % (kb, a_oid))
    check(st == 200 and img == b"", "B's static link to A's image: %d bytes" % len(img))
    st, b, _ = call("POST", R + "/faces/%s/verify" % a_oid, key=kb, files=[("file", "o.jpg", obama_jpg)])
    error(st, b, 404, "B verifies against A's example", 44)
    st, b, _ = call("DELETE", R + "/faces/%s" % a_oid, key=kb)
    error(st, b, 404, "B deletes A's example", 44)
    body = ok("POST", R + "/faces/delete", key=kb, json_body=[a_oid, a_bid])
    check(body == [], "B deletes A's examples by id: %s" % body)
    st, b, _ = call("DELETE", R + "/subjects/kit_harington", key=kb)
    error(st, b, 404, "B deletes A's subject", 42)
    st, b, _ = call("PUT", R + "/subjects/kit_harington", key=kb, json_body={"subject": "x"})
    error(st, b, 404, "B renames A's subject", 42)
    # B's own recognize finds only B's 'obama' (biden's face), A's only A's
    body = ok("POST", R + "/recognize", key=kb, files=[("file", "o.jpg", obama_jpg)])
    check([x["subject"] for x in body["result"][0]["subjects"]] == ["obama"], "B's recognize: %s" % body)
    body_a = ok("POST", R + "/recognize", key=ARGS.key, query={"prediction_count": 10}, files=[("file", "b.jpg", biden_jpg)])
    top = body_a["result"][0]["subjects"][0]
    check(top["subject"] == "biden", "A's recognize of biden sees B's face: %s" % body_a["result"][0]["subjects"])
    # B's deletions stay in B: delete many by id (own + A's + unknown), all faces, all subjects
    b2 = ok("POST", R + "/faces", key=kb, query={"subject": "other"}, files=[("file", "o.jpg", obama_jpg)])["image_id"]
    body = ok("POST", R + "/faces/delete", key=kb, json_body=[b_id, a_oid, uuid_of(0xfffff)])
    check(body == [{"image_id": b_id, "subject": "obama"}], "B deletes by ids: %s" % body)
    check(ok("DELETE", R + "/faces", key=kb) == {"deleted": 1}, "B deletes all its examples")
    check(ok("DELETE", R + "/subjects", key=kb) == {"deleted": 2}, "B deletes all its subjects")
    check(ok("GET", R + "/faces", key=kb)["total_elements"] == 0, "B is empty")
    st, _, img = call_bytes("GET", R + "/faces/%s/img" % a_oid, key=ARGS.read_key)
    check(st == 200 and img[:3] == b"\xff\xd8\xff", "A's image after B's deletions")
    check(a_oid in [f["image_id"] for f in ok("GET", R + "/faces", key=ARGS.read_key, query={"size": 100})["faces"]],
          "A's example after B's deletions")
    # A deletes some of its own by id: the answer lists them, an id of nothing is ignored
    kit = sorted(image_ids["kit_harington"])
    body = ok("POST", R + "/faces/delete", key=ARGS.key, json_body=kit + [b2])
    check(sorted(x["image_id"] for x in body) == kit and all(x["subject"] == "kit_harington" for x in body),
          "A deletes kit's examples by id: %s" % body)
    image_ids["kit_harington"] = []
    st, b, _ = call("POST", R + "/faces/delete", key=ARGS.read_key, json_body=[a_oid])
    error(st, b, 403, "a read-only key deletes by id")
    st, b, _ = call("POST", R + "/faces/delete", key=ARGS.key, json_body={"ids": [a_oid]})
    error(st, b, 400, "delete by ids with an object body")
    print("compreface_client: two recognition services kept apart OK")


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--key", required=True, help="recognition service key (collection A)")
    ap.add_argument("--read-key", required=True, help="read-only recognition key of collection A")
    ap.add_argument("--key-b", required=True, help="recognition service key of another collection")
    ap.add_argument("--detection-key", required=True)
    ap.add_argument("--verification-key", required=True)
    ap.add_argument("--admin-key", required=True, help="mien admin key (for /v1/verify)")
    ap.add_argument("--data", default=os.environ.get("MIEN_DATA", "../shared/data"))
    ap.add_argument("--threshold", type=float, default=0.5)
    ARGS = ap.parse_args()
    people = os.path.join(ARGS.data, "people")
    train = os.path.join(people, "examples", "knn_examples", "train")
    thr = ARGS.threshold
    R = "/api/v1/recognition"

    # ---- keys: CompreFace's MISSING_REQUEST_HEADER, an unknown key, the wrong service ----
    st, body, _ = call("GET", R + "/subjects", key=None)
    error(st, body, 400, "no x-api-key", 20)
    st, body, _ = call("GET", R + "/subjects", key="not-a-key")
    error(st, body, 401, "wrong x-api-key")
    st, body, _ = call("POST", R + "/subjects", key=ARGS.read_key, json_body={"subject": "x"})
    error(st, body, 403, "read key adding a subject")
    two = read(os.path.join(people, "examples", "two_people.jpg"))
    obama_jpg = read(os.path.join(people, "examples", "obama.jpg"))
    biden_jpg = read(os.path.join(people, "examples", "biden.jpg"))
    for k, what in ((ARGS.detection_key, "detection"), (ARGS.verification_key, "verification")):
        st, body, _ = call("POST", R + "/faces", key=k, query={"subject": "x"}, files=[("file", "o.jpg", obama_jpg)])
        error(st, body, 403, "a %s key enrolling" % what)
        st, body, _ = call("GET", R + "/subjects", key=k)
        error(st, body, 403, "a %s key listing subjects" % what)
        st, body, _ = call("POST", R + "/recognize", key=k, files=[("file", "o.jpg", obama_jpg)])
        error(st, body, 403, "a %s key recognizing" % what)
    st, body, _ = call("POST", "/api/v1/detection/detect", key=ARGS.verification_key, files=[("file", "o.jpg", obama_jpg)])
    error(st, body, 403, "a verification key detecting")
    st, body, _ = call("POST", "/api/v1/verification/verify", key=ARGS.key,
                       files=[("source_image", "o.jpg", obama_jpg), ("target_image", "b.jpg", biden_jpg)])
    error(st, body, 403, "a recognition key on the verification service")

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
    body = ok("POST", "/api/v1/detection/detect", key=ARGS.detection_key, files=[("file", "two.jpg", two)],
              query={"det_prob_threshold": 0.6, "face_plugins": "landmarks"})
    check(len(body["result"]) == 2, "detect two_people: %s" % body)
    for f in body["result"]:
        check_box(f["box"], "detect")
        check("subjects" not in f and len(f["landmarks"]) == 5, "detect result: %s" % f)
    body = ok("POST", "/api/v1/detection/detect", key=ARGS.detection_key, query={"limit": 1},
              files=[("file", "two.jpg", two)])
    check(len(body["result"]) == 1, "detect limit=1: %s" % body)

    # ---- verification service ----
    body = ok("POST", "/api/v1/verification/verify", key=ARGS.verification_key,
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
    body = ok("POST", "/api/v1/verification/verify", key=ARGS.verification_key,
              json_body={"source_image": base64.b64encode(read(os.path.join(people, "examples", "biden.jpg"))).decode(),
                         "target_image": base64.b64encode(two).decode()})
    m = sorted(body["result"][0]["face_matches"], key=lambda f: f["box"]["x_min"])
    check(m[1]["similarity"] >= thr > m[0]["similarity"], "verification base64: %s" % m)

    # ---- errors: no face, not an image, missing file, missing subject ----
    st, body, _ = call("POST", R + "/recognize", key=ARGS.key, files=[("file", "x.jpg", b"not an image")])
    check(st == 400 and "message" in body, "recognize garbage: expected 400 with message, got %d %s" % (st, body))
    st, body, _ = call("POST", R + "/faces", key=ARGS.key, query={"subject": "x"}, files=[("other", "x.jpg", two)])
    error(st, body, 400, "add example without file field", 34)
    st, body, _ = call("POST", R + "/faces", key=ARGS.key, files=[("file", "x.jpg", two)])
    error(st, body, 400, "add example without subject", 33)
    st, body, _ = call("POST", R + "/recognize", key=ARGS.key, files=[("file", "d.jpg", read(os.path.join(ARGS.data, "dlib_faces", "dogs.jpg")))])
    error(st, body, 400, "recognize a photo without a face", 28)
    # error shapes beyond the routes: an unknown route, a multipart body without a boundary,
    # a wrong method
    st, body, _ = call("GET", "/api/v1/recognition/no/such/route", key=ARGS.key)
    error(st, body, 404, "unknown route")
    st, body, _ = call("POST", R + "/recognize", key=ARGS.key, raw=two, ctype="multipart/form-data")
    error(st, body, 400, "multipart without a boundary")
    st, body, _ = call("GET", R + "/recognize", key=ARGS.key)
    error(st, body, 405, "GET recognize")
    st, body, _ = call("POST", R + "/recognize", key=ARGS.key, raw=b"{not json", ctype="application/json")
    error(st, body, 400, "bad JSON")

    exercise_embeddings_and_images(R, people, image_ids, names, thr)
    exercise_isolation(R, people, image_ids)

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
    st, body, _ = call("PUT", R + "/subjects/nobody", key=ARGS.key, json_body={"subject": "z"})
    error(st, body, 404, "rename unknown subject", 42)
    st, body, _ = call("POST", R + "/subjects", key=ARGS.key, json_body={"subject": "alex"})
    error(st, body, 400, "add an existing subject", 43)

    bid = image_ids["biden"][0]
    check(ok("DELETE", R + "/faces/" + bid) == {"image_id": bid, "subject": "biden"}, "delete example")
    st, body, _ = call("DELETE", R + "/faces/" + bid, key=ARGS.key)
    error(st, body, 404, "delete a deleted example", 44)
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
