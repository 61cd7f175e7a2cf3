#!/usr/bin/python3
"""Score-level fusion of two embedders, chosen by measurement without peeking at the test fold.

Input: `mien eval pairs --dump FILE` outputs of each embedder on the same pairs file. The fused
score of a pair is w*cos_A + (1-w)*cos_B, which is the cosine of the concatenation
[sqrt(w) e_A, sqrt(1-w) e_B] of the L2-normalised embeddings (what `--embedder A+B` computes).
For each test fold, w (grid 0..1 by 0.05) and the threshold are chosen on the other folds only
(nested cross-validation), then applied to the test fold.

usage: /usr/bin/python3 bench/fusion.py PAIRS DUMP_A DUMP_B
"""
import json, sys
import numpy as np

def pairs_of(path):
    lines = open(path).read().strip().split('\n')
    out = []
    if '\t' in lines[0] and len(lines[0].split('\t')) == 2:  # LFW pairs.txt
        nf, n = map(int, lines[0].split('\t'))
        for i, l in enumerate(lines[1:]):
            f = l.split('\t'); fold = i // (2 * n)
            if len(f) == 3:
                out.append((f"{f[0]}/{f[0]}_{int(f[1]):04d}.jpg", f"{f[0]}/{f[0]}_{int(f[2]):04d}.jpg", 1, fold))
            else:
                out.append((f"{f[0]}/{f[0]}_{int(f[1]):04d}.jpg", f"{f[2]}/{f[2]}_{int(f[3]):04d}.jpg", 0, fold))
    else:
        for l in lines:
            a, b, s, fo = l.split('\t'); out.append((a, b, int(s), int(fo)))
    return out

def load(path):
    d = {}
    for l in open(path):
        r = json.loads(l)
        if r['found']:
            e = np.array(r['embedding'], np.float64); d[r['path']] = e / np.linalg.norm(e)
    return d

pairs = pairs_of(sys.argv[1]); A = load(sys.argv[2]); B = load(sys.argv[3])
sa, sb, y, fold = [], [], [], []
for a, b, s, fo in pairs:
    ok = a in A and b in A and a in B and b in B
    sa.append(A[a] @ A[b] if ok else -2.0); sb.append(B[a] @ B[b] if ok else -2.0)
    y.append(s); fold.append(fo)
sa, sb, y, fold = map(np.array, (sa, sb, y, fold))

def best_thr(s, yy):
    c = np.unique(s); cand = np.concatenate([[c[0] - 1e-6], (c[1:] + c[:-1]) / 2, [c[-1]]])
    acc = [((s > t) == yy).mean() for t in cand]
    i = int(np.argmax(acc)); return cand[i], acc[i]

ws = np.round(np.arange(0, 1.0001, 0.05), 2)
accs, chosen = [], []
for k in np.unique(fold):
    tr, te = fold != k, fold == k
    best = max(ws, key=lambda w: best_thr(w * sa[tr] + (1 - w) * sb[tr], y[tr])[1])
    t, _ = best_thr(best * sa[tr] + (1 - best) * sb[tr], y[tr])
    accs.append((((best * sa[te] + (1 - best) * sb[te]) > t) == y[te]).mean()); chosen.append(best)
print(f"fused accuracy {100*np.mean(accs):.2f}% +- {100*np.std(accs):.2f}  (weights of A chosen per fold: {chosen})")
for w in (1.0, 0.0, float(np.median(chosen))):
    a2 = []
    for k in np.unique(fold):
        tr, te = fold != k, fold == k
        t, _ = best_thr(w * sa[tr] + (1 - w) * sb[tr], y[tr])
        a2.append((((w * sa[te] + (1 - w) * sb[te]) > t) == y[te]).mean())
    print(f"  w_A = {w:.2f}: {100*np.mean(a2):.2f}% +- {100*np.std(a2):.2f}")
