#!/usr/bin/python3
"""Recognition measurements from cached embeddings (bench/recog_cache.sh).

Everything `mien eval pairs` and `mien eval identify` report, computed again from the
embeddings they dump, so that embedders, landmark sources, flip and fusions can be compared
(and fusion weights chosen by nested cross-validation) without embedding 14,000 photos again
for each. The definitions follow src/face/verify_eval.c exactly: k-fold accuracy with the
threshold chosen on the other folds (missing pairs rejected), TAR at FAR = the genuine pairs
scoring above the (floor(FAR * impostors) + 1)-th highest impostor score, and open-set
identification as src/cli/cmd_eval_ident.c (first photo with a face enrolled, the rest probe,
people with one photo are distractors).

usage:
  recog.py lists DATA OUT.tsv        pairs file over every LFW photo (for the dump)
  recog.py pack DUMP.jsonl           DUMP.jsonl -> DUMP.npz (paths, found, retried, emb)
  recog.py table [--md OUT.md]       every cached configuration and the fusions (README table)
"""
import json, os, sys
import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
CACHE = os.path.join(ROOT, 'out', 'recog', 'emb')
DATA = os.environ.get('MIEN_DATA', os.path.join(ROOT, '..', 'shared', 'data'))
# Embedding size of each embedder, to split a fused dump into its parts.
ORDER = ['dlib', 'frfeature', 'mobilefacenet-tflite', 'mobilefacenet', 'mobileface', 'faceres',
         'arcface', 'sface']
DIMS = {'dlib': 128, 'frfeature': 512, 'mobilefacenet-tflite': 192, 'mobilefacenet': 192, 'mobileface': 256, 'faceres': 1024,
        'arcface': 512, 'sface': 128}


# ==== Cache ====

def cmd_lists(data, out):
    """Every LFW photo once, in a generic pairs file (consecutive photos paired, two folds)."""
    root = os.path.join(data, 'lfw')
    paths = [f'{p}/{f}' for p in sorted(os.listdir(root)) if os.path.isdir(os.path.join(root, p))
             for f in sorted(os.listdir(os.path.join(root, p))) if f.endswith('.jpg')]
    with open(out, 'w') as f:
        for i in range(0, len(paths) - 1):
            a, b = paths[i], paths[i + 1]
            f.write(f"{a}\t{b}\t{int(a.split('/')[0] == b.split('/')[0])}\t{i % 2}\n")


def cmd_pack(dump):
    paths, found, retried, emb = [], [], [], []
    dim = None
    for line in open(dump):
        r = json.loads(line)
        paths.append(r['path']); found.append(bool(r['found'])); retried.append(bool(r.get('retried')))
        if r['found']:
            dim = len(r['embedding'])
        emb.append(np.array(r['embedding'], np.float32) if r['found'] else None)
    e = np.zeros((len(paths), dim), np.float32)
    for i, v in enumerate(emb):
        if v is not None: e[i] = v
    np.savez(dump[:-len('.jsonl')] + '.npz', paths=np.array(paths), found=np.array(found),
             retried=np.array(retried), emb=e)


class Emb:
    """One embedder's embeddings of a set: path -> row; rows are unit vectors."""
    def __init__(self, paths, found, retried, emb):
        self.paths, self.found, self.retried = list(paths), np.asarray(found), np.asarray(retried)
        n = np.linalg.norm(emb, axis=1, keepdims=True)
        self.emb = np.where(n > 0, emb / np.maximum(n, 1e-30), 0).astype(np.float64)
        self.index = {p: i for i, p in enumerate(self.paths)}


def load_parts(tag, set_):
    """The embedders of a cached configuration 'A[+B]@LM@FLIP': {name: Emb}."""
    z = np.load(os.path.join(CACHE, f'{tag}.{set_}.npz'))
    names = tag.split('@')[0].split('+')
    out, off = {}, 0
    for n in names:
        d = DIMS[n] if len(names) > 1 else z['emb'].shape[1]
        out[n] = Emb(z['paths'], z['found'], z['retried'], z['emb'][:, off:off + d])
        off += d
    return out


# ==== Verification (src/face/verify_eval.c) ====

def pairs_of(path):
    lines = open(path).read().strip().split('\n')
    out = []
    head = lines[0].split()
    if len(head) == 2 and '\t' not in lines[0].strip() or (len(head) == 2 and head[0].isdigit()):
        n = int(head[1])
        for i, l in enumerate(lines[1:]):
            f = l.split(); fold = i // (2 * n)
            if len(f) == 3:
                out.append((f"{f[0]}/{f[0]}_{int(f[1]):04d}.jpg", f"{f[0]}/{f[0]}_{int(f[2]):04d}.jpg", 1, fold))
            else:
                out.append((f"{f[0]}/{f[0]}_{int(f[1]):04d}.jpg", f"{f[2]}/{f[2]}_{int(f[3]):04d}.jpg", 0, fold))
    else:
        for l in lines:
            a, b, s, fo = l.split('\t'); out.append((a, b, int(s), int(fo)))
    return out


def pair_scores(pairs, E):
    """Cosine of each pair (NaN when a photo has no face), for one Emb."""
    s = np.full(len(pairs), np.nan)
    for k, (a, b, _, _) in enumerate(pairs):
        i, j = E.index.get(a), E.index.get(b)
        if i is not None and j is not None and E.found[i] and E.found[j]:
            s[k] = E.emb[i] @ E.emb[j]
    return s


def best_threshold(s, y):
    """Exact search over the sorted scores (missing = -inf, always rejected): the threshold
    (midpoint between distinct scores) with the most correct decisions; ties keep the lowest."""
    s = np.where(np.isnan(s), -np.inf, s)
    o = np.argsort(s, kind='stable'); s, y = s[o], y[o]
    fin = np.isfinite(s)
    neg_rej = np.sum(~fin & (y == 0)); pos_rej = np.sum(~fin & (y == 1))
    sf, yf = s[fin], y[fin]
    if len(sf) == 0: return 0.0
    correct = neg_rej + (np.sum(y == 1) - pos_rej)
    best, thr = correct, np.nextafter(sf[0], -np.inf)
    vals, starts = np.unique(sf, return_index=True)
    delta = np.add.reduceat(np.where(yf == 1, -1, 1), starts)
    cum = correct + np.cumsum(delta)
    cand = np.append((vals[1:] + vals[:-1]) / 2, vals[-1])
    i = int(np.argmax(cum))
    if cum[i] > best: thr = cand[i]
    return thr


def kfold(s, y, fold):
    accs, thrs = [], []
    for k in np.unique(fold):
        tr, te = fold != k, fold == k
        t = best_threshold(s[tr], y[tr])
        st = np.where(np.isnan(s[te]), -np.inf, s[te])
        accs.append(np.mean((st > t) == (y[te] == 1))); thrs.append(t)
    return float(np.mean(accs)), float(np.std(accs)), float(np.mean(thrs))


def at_far(s, y, far):
    """(TAR, threshold): accepted = score > threshold, the (k+1)-th highest impostor score."""
    s = np.where(np.isnan(s), -np.inf, s)
    neg = np.sort(s[y == 0])[::-1]
    k = int(np.floor(far * len(neg) * (1 + 1e-9)))
    t = neg[k] if k < len(neg) else -np.inf
    return float(np.mean(s[y == 1] > t)), float(t)


def verification(s, y, fold):
    acc, sd, _ = kfold(s, y, fold)
    t3, thr3 = at_far(s, y, 1e-3)
    t4, _ = at_far(s, y, 1e-4)
    return {'accuracy': acc, 'accuracy_std': sd, 'tar_at_far_1e-3': t3, 'threshold_at_far_1e-3': thr3,
            'tar_at_far_1e-4': t4}


# ==== Open-set identification (src/cli/cmd_eval_ident.c) ====

def identification(E, W=None):
    """rank-1, DIR@FAR 1e-2 and 1e-3 on LFW: first photo with a face of each person with 2+
    photos enrolled, the others probe; people with one photo are distractors. A face found
    only on the retry does not count (eval identify has no retry). W: a list of (Emb, weight)
    to fuse instead of E (the score is the weighted sum of cosines)."""
    parts = W if W is not None else [(E, 1.0)]
    E0 = parts[0][0]
    has = E0.found & ~E0.retried
    people = {}
    for i, p in enumerate(E0.paths):
        people.setdefault(p.split('/')[0], []).append(i)
    gal, gal_name, probes, genuine, who = [], [], [], [], []
    for name in sorted(people):
        idx = sorted(people[name], key=lambda i: E0.paths[i])
        gi = next((i for i in idx if has[i]), None) if len(idx) >= 2 else None
        if gi is not None:
            gal.append(gi); gal_name.append(name)
        for i in idx:
            if i == gi: continue
            probes.append(i); genuine.append(len(idx) >= 2); who.append(name)
    gal, probes, genuine = np.array(gal), np.array(probes), np.array(genuine)
    S = sum(w * (P.emb[probes] @ P.emb[gal].T) for P, w in parts)
    top = np.argmax(S, axis=1); sim = S[np.arange(len(probes)), top]
    right = np.array([gal_name[t] == w for t, w in zip(top, who)])
    ok = has[probes]
    score = np.where(ok & (~genuine | right), sim, np.nan)
    y = genuine.astype(int)
    d2, t2 = at_far(score, y, 1e-2)
    d3, _ = at_far(score, y, 1e-3)
    return {'rank1': float(np.mean((ok & right)[genuine])), 'dir_at_far_1e-2': d2,
            'threshold_at_far_1e-2': t2, 'dir_at_far_1e-3': d3}


# ==== Fusion ====

WEIGHTS = np.round(np.arange(0, 1.0001, 0.05), 2)


def znorm_stats(s, y):
    imp = s[(y == 0) & ~np.isnan(s)]
    return float(np.mean(imp)), float(np.std(imp))


def cosine_weight(w, sa, sb):
    """The weight of A's cosine in w * zA + (1 - w) * zB, scaled so the two add up to 1: the
    fused score is then the cosine of [sqrt(w1) eA, sqrt(1 - w1) eB], up to an offset."""
    a, b = w / sa, (1 - w) / sb
    return a / (a + b)


def train_key(s, y):
    """How good a fused score is on training pairs: accuracy at its best threshold, then TAR
    at FAR 1e-3 to break ties."""
    t = best_threshold(s, y)
    st = np.where(np.isnan(s), -np.inf, s)
    return (np.mean((st > t) == (y == 1)), at_far(s, y, 1e-3)[0])


def fuse_nested(sa, sb, y, fold):
    """Nested cross-validation: for each test fold, the z-norm statistics (impostor mean and
    std of each embedder's cosine) and the weight w of A are chosen on the other folds only,
    the threshold too, then applied to the test fold. Returns the accuracies, the weights of A's
    cosine chosen per fold, and the median of those."""
    accs, chosen = [], []
    for k in np.unique(fold):
        tr, te = fold != k, fold == k
        (_, da), (_, db) = znorm_stats(sa[tr], y[tr]), znorm_stats(sb[tr], y[tr])
        best = max(WEIGHTS, key=lambda w: train_key(fused(sa[tr], sb[tr], cosine_weight(w, da, db)), y[tr]))
        w1 = cosine_weight(best, da, db)
        t = best_threshold(fused(sa[tr], sb[tr], w1), y[tr])
        ste = fused(sa[te], sb[te], w1)
        accs.append(np.mean((np.where(np.isnan(ste), -np.inf, ste) > t) == (y[te] == 1)))
        chosen.append(w1)
    return np.array(accs), chosen, float(np.median(chosen))


def fused(sa, sb, w1):
    return w1 * sa + (1 - w1) * sb


# ==== Tables ====

def configs():
    tags = sorted({f.rsplit('.', 2)[0] for f in os.listdir(CACHE) if f.endswith('.npz')})
    return [t for t in tags if all(os.path.exists(os.path.join(CACHE, f'{t}.{s}.npz')) for s in ('lfw', 'cfp'))]


_pairs = {}
def pairs_cached(which):
    if which not in _pairs:
        path = os.path.join(DATA, 'lfw', 'pairs.txt') if which == 'lfw' else os.path.join(DATA, 'cfp_dev', 'pairs.tsv')
        P = pairs_of(path)
        _pairs[which] = (P, np.array([p[2] for p in P]), np.array([p[3] for p in P]))
    return _pairs[which]


def measure_all():
    """Rows for every cached configuration: each embedder alone (once per landmarks and flip),
    and the fusion of every two embedders cached with the same landmarks and flip (from one
    fused dump or from two)."""
    (PL, yl, fl), (PC, yc, fc) = pairs_cached('lfw'), pairs_cached('cfp')
    groups = {}
    for tag in configs():
        lm, flip = tag.split('@')[1:]
        L, C = load_parts(tag, 'lfw'), load_parts(tag, 'cfp')
        g = groups.setdefault((lm, flip), {})
        for name in L:
            if name not in g:
                g[name] = (L[name], C[name], pair_scores(PL, L[name]), pair_scores(PC, C[name]))
    rows = []
    for (lm, flip), g in groups.items():
        for name, (El, _, sl, scf) in g.items():
            rows.append({'embedder': name, 'landmarks': lm, 'flip': flip == 'flip',
                         'lfw': verification(sl, yl, fl), 'cfp': verification(scf, yc, fc),
                         'identify': identification(El), 'lfw_no_face': int(np.sum(~El.found))})
        names = sorted(g)
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                # The order of a fused name is the order in mien's table (emb_specs).
                a, b = sorted((names[i], names[j]), key=ORDER.index)
                (La, _, sla, sca), (Lb, _, slb, scb) = g[a], g[b]
                accs, chosen, w1 = fuse_nested(sla, slb, yl, fl)
                slf, scf = fused(sla, slb, w1), fused(sca, scb, w1)
                v = verification(slf, yl, fl)
                v['accuracy_at_median_w'] = v['accuracy']
                v['accuracy'], v['accuracy_std'] = float(np.mean(accs)), float(np.std(accs))
                rows.append({'embedder': f'{a}+{b}', 'landmarks': lm, 'flip': flip == 'flip',
                             'w1': w1, 'w1_per_fold': [round(float(c), 4) for c in chosen],
                             'lfw': v, 'cfp': verification(scf, yc, fc),
                             'identify': identification(None, [(La, w1), (Lb, 1 - w1)])})
    return rows


def fmt_row(r, speed):
    l, c, i = r['lfw'], r['cfp'], r['identify']
    sp = speed.get(f"{r['embedder']}@{r['landmarks']}@{'flip' if r['flip'] else 'noflip'}")
    name = r['embedder'] + (f" (w {r['w1']:.3f})" if 'w1' in r else '')
    lm, _, det = r['landmarks'].partition('~')  # LANDMARKS~DETECTOR (recog_cache.sh)
    lm = f"{lm} ({det.replace(':', '@')})" if det else lm
    return (f"| {name} | {lm} | {'yes' if r['flip'] else 'no'} "
            f"| {100*l['accuracy']:.2f}% ± {100*l['accuracy_std']:.2f} | {100*l['tar_at_far_1e-3']:.2f}% "
            f"| {100*l['tar_at_far_1e-4']:.2f}% | {l['threshold_at_far_1e-3']:.4f} "
            f"| {100*c['accuracy']:.2f}% | {100*i['rank1']:.2f}% | {100*i['dir_at_far_1e-2']:.2f}% "
            f"| {sp if sp else '–'} |")


def main(a):
    if not a or a[0] not in ('table', 'json'):
        print(__doc__); sys.exit(2)
    speed = {}
    sp = os.path.join(ROOT, 'out', 'recog', 'speed.json')
    if os.path.exists(sp):
        speed = {k: f"{v['photos_per_s_2cores']:.0f}" for k, v in json.load(open(sp)).items()}
    # Where `mien embed` was not timed (bench/recog_speed.sh), the CPU time of the LFW dump
    # run (every LFW photo once through the same pipeline, bench/recog_cache.sh), marked ‡.
    for t in configs():
        tf = os.path.join(CACHE, f'{t}.lfw.jsonl.time')
        if t not in speed and os.path.exists(tf):
            u, sy = map(float, open(tf).read().split()[-2:])
            speed[t] = f"{len(np.load(os.path.join(CACHE, f'{t}.lfw.npz'))['paths']) / ((u + sy) / 2):.0f} ‡"
    rows = measure_all()
    if a[0] == 'json':
        print(json.dumps(rows, indent=1)); return
    out = ["| embedder | landmarks | flip | LFW accuracy | TAR@FAR 1e-3 | TAR@FAR 1e-4 | threshold (FAR 1e-3) "
           "| cfp_dev | LFW rank-1 | LFW DIR@FAR 1% | photos/s (2 threads) |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    out += [fmt_row(r, speed) for r in sorted(rows, key=lambda r: -r['lfw']['accuracy'])]
    text = '\n'.join(out)
    print(text)
    if len(a) > 2 and a[1] == '--md':
        open(a[2], 'w').write(text + '\n')


if __name__ == '__main__':
    a = sys.argv[1:]
    if a[:1] == ['lists']: cmd_lists(a[1], a[2])
    elif a[:1] == ['pack']: cmd_pack(a[1])
    else: main(a)
