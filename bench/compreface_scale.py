#!/usr/bin/python3
"""What a CompreFace similarity threshold means on mien's scale (README, "CompreFace clients").

mien serve answers CompreFace's `similarity` as (1 + tanh(A (1 - d / d_t))) / 2, with d the
distance of the two unit embeddings (sqrt(2 - 2 cos)), d_t that of the embedder's calibrated
threshold t (similarity 0.5, FAR 1e-3 on LFW) and A = 13.6 (src/server/compreface.c): the slope of
a logistic fit of same/different on LFW's pairs in units of d / d_t, which this script prints
for the embedder it runs (the fit CompreFace made per model for its own tanh). For the
thresholds CompreFace users set (0.5 in its docs, 0.6 Double Take's default, 0.8-0.9 the
SDK demo's), this prints the cosine each one stands for and what it accepts:

  - LFW View 2 (6,000 pairs): genuine pairs accepted (TAR) and impostor pairs accepted (FAR),
    from the embeddings `mien eval pairs --dump` writes, mapped with the formula above; a pair
    with a photo without a face counts as rejected;
  - the known people (people/): a real `mien serve` with the people of knn_examples/train
    enrolled through CompreFace's API, every labelled face of labels.tsv recognized through
    POST /api/v1/recognition/recognize (prediction_count 5): its own subject accepted, the
    other subjects (and the faces of people not enrolled) rejected;

and the LFW figures for the mapping mien used before (linear, 0.5 at t). --scales A,B,...
prints the LFW rates for other steepnesses beside the one served.

    bench/compreface_scale.py [--mien build/mien] [--data ../shared/data] [--out out/compreface_scale]
                              [--scales 5,6,7.4,9] [--embedder NAME]

Writes OUT/table.md and prints it. The LFW embeddings take a while (as `make eval-lfw`); they
are kept in OUT/ and reused when present (--fresh recomputes)."""
import argparse, json, math, os, socket, subprocess, sys, tempfile, time, urllib.error, urllib.request, uuid

SERVED_A = 13.6
THRESHOLDS = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]
STORAGE = {}


def new_similarity(c, t, a=SERVED_A):
    d, dt = math.sqrt(max(0.0, 2 - 2 * c)), math.sqrt(max(1e-12, 2 - 2 * t))
    return (1 + math.tanh(a * (1 - d / dt))) / 2


def old_similarity(c, t):
    """The mapping before: linear, 0.5 at t."""
    if c >= t:
        s = 0.5 + 0.5 * (c - t) / (1 - t)
    elif c > 0:
        s = 0.5 * c / t
    else:
        s = 0.0
    return min(1.0, max(0.0, s))


def new_cosine(s, t, a=SERVED_A):
    """The cosine that maps onto similarity s."""
    x = math.atanh(2 * s - 1) / a
    d = (1 - x) * math.sqrt(2 - 2 * t)
    return 1 - d * d / 2


def old_cosine(s, t):
    return t + (s - 0.5) * 2 * (1 - t) if s >= 0.5 else 2 * s * t


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit("compreface_scale: %s failed (%d): %s" % (" ".join(cmd), r.returncode, r.stderr[-2000:]))
    return r.stdout


# ==== LFW pairs ====

def lfw_pairs(args, model_opts):
    lfw = os.path.join(args.data, "lfw")
    dump = os.path.join(args.out, "lfw_embeddings%s.jsonl" % ("_" + args.embedder if args.embedder else ""))
    if args.fresh or not os.path.exists(dump):
        print("compreface_scale: embedding LFW (mien eval pairs --dump %s)" % dump, file=sys.stderr)
        run([args.mien, "eval", "pairs", "--pairs", os.path.join(lfw, "pairs.txt"), "--root", lfw, "--json",
             "--dump", dump + ".tmp"] + model_opts)
        os.replace(dump + ".tmp", dump)
    emb = {}
    with open(dump) as f:
        for line in f:
            j = json.loads(line)
            emb[os.path.normpath(j["path"])] = j["embedding"] if j.get("found") else None
    pairs = []
    with open(os.path.join(lfw, "pairs.txt")) as f:
        next(f)
        for line in f:
            p = line.split()
            if len(p) == 3:
                a, b, same = (p[0], int(p[1])), (p[0], int(p[2])), 1
            else:
                a, b, same = (p[0], int(p[1])), (p[2], int(p[3])), 0
            pa, pb = ("%s/%s_%04d.jpg" % (n, n, i) for n, i in (a, b))
            pairs.append((pa, pb, same))
    out = []
    missing = 0
    for pa, pb, same in pairs:
        ea = lookup(emb, lfw, pa)
        eb = lookup(emb, lfw, pb)
        if ea is None or eb is None:
            out.append((None, same))
            missing += 1
            continue
        out.append((sum(x * y for x, y in zip(ea, eb)), same))
    return out, missing


def lookup(emb, root, rel):
    for k in (os.path.normpath(os.path.join(root, rel)), os.path.normpath(rel)):
        if k in emb:
            return emb[k]
    raise KeyError(rel)


def rates(pairs, accept):
    """TAR and FAR: the fractions of genuine and impostor pairs accepted."""
    g = [c for c, s in pairs if s == 1]
    i = [c for c, s in pairs if s == 0]
    tar = sum(1 for c in g if c is not None and accept(c)) / len(g)
    far = sum(1 for c in i if c is not None and accept(c)) / len(i)
    return tar, far


# ==== The known people, through a real server ====

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def multipart(name, data):
    boundary = uuid.uuid4().hex
    body = (b"--" + boundary.encode() + b"\r\nContent-Disposition: form-data; name=\"" + name.encode() +
            b"\"; filename=\"f\"\r\nContent-Type: application/octet-stream\r\n\r\n" + data +
            b"\r\n--" + boundary.encode() + b"--\r\n")
    return "multipart/form-data; boundary=" + boundary, body


def post(url, key, data):
    ctype, body = multipart("file", data)
    req = urllib.request.Request(url, data=body, method="POST", headers={"x-api-key": key, "Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        sys.exit("compreface_scale: POST %s: %d %s" % (url, e.code, e.read()[:300]))


def known_people(args, model_opts):
    people = os.path.join(args.data, "people")
    train = os.path.join(people, "examples", "knn_examples", "train")
    tmp = tempfile.mkdtemp(prefix="mien-cfscale-")
    keys = os.path.join(tmp, "keys.db")
    key = run([args.mien, "keys", "add", "--service", "recognition", "--collection", "people", "--keys", keys]).strip()
    port = free_port()
    log = open(os.path.join(tmp, "serve.log"), "w")
    srv = subprocess.Popen([args.mien, "serve", "--port", str(port), "--gallery", os.path.join(tmp, "g.db"),
                            "--keys", keys] + model_opts, stdout=log, stderr=log)
    url = "http://127.0.0.1:%d/api/v1/recognition" % port
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=2)
                break
            except Exception:
                if srv.poll() is not None:
                    sys.exit("compreface_scale: mien serve exited, see %s" % log.name)
                time.sleep(0.2)
        names = sorted(os.listdir(train))
        crops, photos = [], []
        for n in names:
            for f in sorted(os.listdir(os.path.join(train, n))):
                with open(os.path.join(train, n, f), "rb") as fh:
                    data = fh.read()
                iid = post(url + "/faces?subject=" + n, key, data)["image_id"]
                # what the server keeps for GET .../img: the aligned crop (default), against
                # the photo as sent (--store-images photo)
                req = urllib.request.Request(url + "/faces/%s/img" % iid, headers={"x-api-key": key})
                with urllib.request.urlopen(req, timeout=60) as r:
                    crops.append(len(r.read()))
                photos.append(len(data))
        STORAGE.update(crops=crops, photos=photos)
        faces = []  # (expected name or None for a stranger, {subject: similarity})
        for line in open(os.path.join(people, "labels.tsv")):
            if line.startswith("#") or not line.strip():
                continue
            path, who = line.rstrip("\n").split("\t")
            who = who.split(",")
            with open(os.path.join(people, path), "rb") as fh:
                res = post(url + "/recognize?prediction_count=%d" % len(names), key, fh.read())["result"]
            # the labelled identities, left to right: the len(who) largest faces, sorted by x
            big = sorted(res, key=lambda f: -(f["box"]["x_max"] - f["box"]["x_min"]))[:len(who)]
            big.sort(key=lambda f: f["box"]["x_min"])
            for f, w in zip(big, who):
                faces.append((w if w in names else None, {s["subject"]: s["similarity"] for s in f["subjects"]}))
        return faces, names
    finally:
        srv.terminate()
        srv.wait()
        log.close()


def known_rates(faces, thr, sim_of):
    """genuine accepted / genuine, strangers or wrong subjects accepted / impostor scores,
    faces named right (top subject >= thr and right, or < thr for a stranger) / faces."""
    gen = gen_ok = imp = imp_ok = right = 0
    for expect, sims in faces:
        sims = {k: sim_of(v) for k, v in sims.items()}
        for subj, s in sims.items():
            if subj == expect:
                gen += 1
                gen_ok += s >= thr
            else:
                imp += 1
                imp_ok += s >= thr
        top = max(sims, key=sims.get)
        named = top if sims[top] >= thr else None
        right += named == expect
    return gen_ok, gen, imp_ok, imp, right, len(faces)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mien", default=os.environ.get("MIEN_BIN", "build/mien"))
    ap.add_argument("--data", default=os.environ.get("MIEN_DATA", "../shared/data"))
    ap.add_argument("--out", default="out/compreface_scale")
    ap.add_argument("--scales", default="", help="other steepnesses A to compare on LFW")
    ap.add_argument("--embedder", default="")
    ap.add_argument("--fresh", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    model_opts = ["--embedder", args.embedder] if args.embedder else []
    ex = os.path.join(args.data, "people", "examples")
    v = json.loads(run([args.mien, "verify", "--json", os.path.join(ex, "obama.jpg"), os.path.join(ex, "obama2.jpg")]
                       + model_opts))
    t, model = v["threshold"], v["model"]

    pairs, missing = lfw_pairs(args, model_opts)
    faces, names = known_people(args, model_opts)
    lines = []
    lines.append("Embedder `%s`, threshold t = %.4f (similarity 0.5). LFW: %d pairs (%d with a photo without a face, "
                 "rejected); known people: %d labelled faces of people/labels.tsv against the %d people of "
                 "knn_examples/train, through a real `mien serve`." % (model, t, len(pairs), missing, len(faces), len(names)))
    lines.append("")
    lines.append("| CompreFace threshold | cosine | LFW TAR | LFW FAR | known: own subject accepted | known: others accepted "
                 "| known: faces named right | before: cosine | before: LFW TAR | before: LFW FAR |")
    lines.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in THRESHOLDS:
        cn, co = new_cosine(s, t), old_cosine(s, t)
        tar, far = rates(pairs, lambda c: new_similarity(c, t) >= s)
        otar, ofar = rates(pairs, lambda c: old_similarity(c, t) >= s)
        g_ok, g, i_ok, i, right, n = known_rates(faces, s, lambda x: x)
        lines.append("| %.2f | %.4f | %.2f%% | %.2f%% | %d / %d | %d / %d | %d / %d | %.4f | %.2f%% | %.2f%% |"
                     % (s, cn, 100 * tar, 100 * far, g_ok, g, i_ok, i, right, n, co, 100 * otar, 100 * ofar))
    if args.scales:
        lines.append("")
        lines.append("LFW TAR / FAR at each CompreFace threshold for other steepnesses A (served: %.1f):" % SERVED_A)
        lines.append("")
        lines.append("| A | " + " | ".join("%.2f" % s for s in THRESHOLDS) + " |")
        lines.append("|---:|" + "---:|" * len(THRESHOLDS))
        for a in [float(x) for x in args.scales.split(",") if x]:
            cells = []
            for s in THRESHOLDS:
                tar, far = rates(pairs, lambda c: new_similarity(c, t, a) >= s)
                cells.append("%.1f%% / %.2f%%" % (100 * tar, 100 * far))
            lines.append("| %.1f | %s |" % (a, " | ".join(cells)))
    # The logistic fit that sets A: P(same) = sigmoid(b0 + b1 x), x = 1 - d / d_t, by Newton's
    # method; the tanh form's slope is b1 / 2.
    dt = math.sqrt(2 - 2 * t)
    xs = [(1 - math.sqrt(max(0.0, 2 - 2 * c)) / dt, s) for c, s in pairs if c is not None]
    b0 = b1 = 0.0
    for _ in range(50):
        g0 = g1 = h00 = h01 = h11 = 0.0
        for x, y in xs:
            z = max(-30.0, min(30.0, b0 + b1 * x))
            p = 1 / (1 + math.exp(-z))
            w = p * (1 - p)
            g0 += p - y
            g1 += (p - y) * x
            h00 += w
            h01 += w * x
            h11 += w * x * x
        det = h00 * h11 - h01 * h01
        b0 -= (h11 * g0 - h01 * g1) / det
        b1 -= (h00 * g1 - h01 * g0) / det
    lines.append("")
    lines.append("Logistic fit of same/different on these LFW pairs: P(same) = sigmoid(%.3f + %.3f x), x = 1 - d/d_t: "
                 "slope A = %.1f (served: %.1f); its 50/50 point is x = %.3f, cosine %.4f."
                 % (b0, b1, b1 / 2, SERVED_A, -b0 / b1, 1 - ((1 + b0 / b1) * dt) ** 2 / 2))
    # Where the impostors and genuine pairs land (medians), new and old.
    gen = sorted(c for c, s in pairs if s == 1 and c is not None)
    imp = sorted(c for c, s in pairs if s == 0 and c is not None)
    med = lambda v: v[len(v) // 2]
    p99 = lambda v: v[int(len(v) * 0.99)]
    lines.append("")
    lines.append("LFW similarities: genuine pairs median %.3f (before %.3f); impostor pairs median %.3f (before %.3f), "
                 "99th percentile %.3f (before %.3f)."
                 % (new_similarity(med(gen), t), old_similarity(med(gen), t), new_similarity(med(imp), t),
                    old_similarity(med(imp), t), new_similarity(p99(imp), t), old_similarity(p99(imp), t)))
    c, p = STORAGE["crops"], STORAGE["photos"]
    lines.append("")
    lines.append("Images kept per example (GET /api/v1/recognition/faces/{id}/img), the %d known-people photos: "
                 "aligned crop (default) %.1f KB on average (%.1f to %.1f); the photo as sent (--store-images photo) "
                 "%.1f KB on average (%.1f to %.1f)." % (len(c), sum(c) / len(c) / 1024, min(c) / 1024, max(c) / 1024,
                                                       sum(p) / len(p) / 1024, min(p) / 1024, max(p) / 1024))
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
