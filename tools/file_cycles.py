#!/usr/bin/python3
"""File-level dependency check of mien's sources, from the symbols of the built objects.

The object file of every source file under src/ (BUILD/src/DIR/FILE.o) is read with `nm`: the global symbols
it defines and those it leaves undefined. File A depends on file B when A uses a symbol that B
defines. The check fails (exit 1) when
  - files depend on each other in a cycle (A -> B -> A, or longer): "no two source files call
    each other" (DESIGN.md, README "Layout"); each cycle is printed with the symbols that make
    every edge;
  - folders depend on each other in a cycle (src/face -> src/image -> src/face): the folders
    are layers (core, image, nn; face, gallery, train, eval; video, server; cli);
  - a file outside the folders allowed to use training (src/train, src/cli) depends on a file
    of src/train: inference does not depend on training.

usage: tools/file_cycles.py [BUILD]     (from the checkout's root; BUILD: build-asan by default,
                                        build works the same)
       tools/file_cycles.py --selftest  (two small files that call each other must be caught)
Exit 0: no cycle, no forbidden dependency; 1: some; 2: usage or no objects found.
"""
import collections
import os
import subprocess
import sys
import tempfile

# Folders whose files may use src/train (the training engine). Everything else is inference,
# storage or serving and must build without it.
TRAIN_USERS = ("src/train/", "src/cli/")
MIN_OBJECTS = 20  # fewer means the wrong folder, not a clean tree


def symbols(obj):
    """(defined, undefined) global symbol sets of one object file."""
    out = subprocess.run(["nm", "-P", obj], capture_output=True, text=True, check=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        f = line.split()
        if len(f) < 2:
            continue
        name, kind = f[0], f[1]
        if kind == "U":
            undefined.add(name)
        elif kind in "TDBRGSCWV" and kind.isupper():  # global definitions (weak ones too)
            defined.add(name)
    return defined, undefined


def graph(objs, root):
    """{file: {file: [symbols]}} of the dependencies between the objects' source files."""
    name = {o: os.path.splitext(os.path.relpath(o, root))[0] for o in objs}
    where = {}
    undef = {}
    for o in objs:
        d, u = symbols(o)
        undef[o] = u
        for s in d:
            where.setdefault(s, o)
    deps = collections.defaultdict(lambda: collections.defaultdict(list))
    for o in objs:
        deps[name[o]]  # every file is a node
        for s in sorted(undef[o]):
            d = where.get(s)
            if d and d != o:
                deps[name[o]][name[d]].append(s)
    return deps


def cycles(deps):
    """Strongly connected components of more than one file (Tarjan, iterative)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = 0
    for start in sorted(deps):
        if start in index:
            continue
        work = [(start, iter(sorted(deps[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(deps[w]))))
                    advanced = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def folder_graph(deps):
    """{folder: {folder: ["file -> file", ...]}} of the dependencies between folders."""
    out = collections.defaultdict(lambda: collections.defaultdict(list))
    for a in deps:
        fa = os.path.dirname(a)
        out[fa]
        for b in deps[a]:
            fb = os.path.dirname(b)
            if fa != fb:
                out[fa][fb].append("%s -> %s" % (os.path.basename(a), os.path.basename(b)))
    return out


def show(syms):
    return ", ".join(syms[:6]) + (" (+%d more)" % (len(syms) - 6) if len(syms) > 6 else "")


def check(root):
    # The object of every source file under src/ (run from the checkout's root); objects whose
    # source is gone (a file moved away, not yet cleaned) are not looked at.
    objs = []
    for d, _, files in os.walk("src"):
        for f in files:
            stem, ext = os.path.splitext(f)
            o = os.path.join(root, d, stem + ".o")
            if ext in (".c", ".cpp") and os.path.exists(o):
                objs.append(o)
    objs.sort()
    if len(objs) < MIN_OBJECTS:
        print("file_cycles: only %d objects under %s/src: build first" % (len(objs), root))
        return 2
    deps = graph(objs, root)
    bad = 0
    for comp in cycles(deps):
        bad += 1
        print("cycle between %d files: %s" % (len(comp), " ".join(comp)))
        for a in comp:
            for b in comp:
                if b in deps[a]:
                    print("  %s -> %s: %s" % (a, b, show(deps[a][b])))
    folders = folder_graph(deps)
    for comp in cycles(folders):
        bad += 1
        print("cycle between %d folders: %s" % (len(comp), " ".join(comp)))
        for a in comp:
            for b in comp:
                if b in folders[a]:
                    print("  %s -> %s: %s" % (a, b, show(folders[a][b])))
    for a in sorted(deps):
        if a.startswith(TRAIN_USERS):
            continue
        for b in sorted(deps[a]):
            if b.startswith("src/train/"):
                bad += 1
                print("%s depends on training: %s -> %s: %s" % (a, a, b, show(deps[a][b])))
    n_edges = sum(len(v) for v in deps.values())
    print("file_cycles: %d files, %d dependencies, %d problems" % (len(deps), n_edges, bad))
    return 1 if bad else 0


def selftest():
    """Two files that call each other, two folders that use each other (through other files)
    and a file outside training using src/train: each must be reported."""
    src = {
        "src/face/a.c": "int b(int);\nint a(int x) { return x ? b(x - 1) : 0; }\n",
        "src/face/b.c": "int a(int);\nint t(void);\nint i(void);\n"
                        "int b(int x) { return a(x) + t() + i(); }\n",
        "src/image/i.c": "int i(void) { return 2; }\n",
        "src/image/j.c": "int a(int);\nint j(void) { return a(3); }\n",
        "src/train/t.c": "int t(void) { return 1; }\n",
    }
    with tempfile.TemporaryDirectory() as tmp:
        for path, text in src.items():
            c = os.path.join(tmp, path)
            os.makedirs(os.path.dirname(c), exist_ok=True)
            with open(c, "w") as f:
                f.write(text)
            subprocess.run(["cc", "-c", c, "-o", c[:-2] + ".o"], check=True)
        deps = graph(sorted(os.path.join(tmp, p[:-2] + ".o") for p in src), tmp)
        found = cycles(deps)
        ok = (found == [["src/face/a", "src/face/b"]] and "src/train/t" in deps["src/face/b"] and
              cycles(folder_graph(deps)) == [["src/face", "src/image"]])
    print("file_cycles selftest: %s" % ("ok" if ok else "FAILED: %r" % (found,)))
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 2 or (len(sys.argv) == 2 and sys.argv[1] in ("-h", "--help")):
        print(__doc__.strip())
        sys.exit(2)
    if len(sys.argv) == 2 and sys.argv[1] == "--selftest":
        sys.exit(selftest())
    sys.exit(check(sys.argv[1] if len(sys.argv) == 2 else "build-asan"))
