#!/usr/bin/env bash
# app/ and the library's src/pipeline/ have no dependency cycles: neither
# between their object files (file A calls something defined in file B, and
# B, directly or not, calls back into A), nor between their modules through
# #include (A.c or A.h includes B.h and B's files include A.h). Each file may
# only use the layers below it; the picture of the server's layers is at the
# top of app/server.h, that of the library in docs/architecture.md.
set -u
SRC=${LEANDIFF_SOURCE_DIR:?run through ctest}
OBJ=${LEANDIFF_BUILD_DIR:?}/CMakeFiles
command -v python3 >/dev/null || { echo "SKIP: python3 not found"; exit 77; }
command -v nm >/dev/null || { echo "SKIP: nm not found"; exit 77; }
[ -d "$OBJ/leandiff.dir/app" ] || { echo "FAIL: no objects in $OBJ/leandiff.dir/app"; exit 1; }
exec python3 - "$SRC" "$OBJ" <<'PY'
import os, re, subprocess, sys

root, cmakefiles = sys.argv[1], sys.argv[2]


def find_cycle(graph):
    """A cycle as a list of nodes, or None (iterative DFS, colours)."""
    colour, parent = {}, {}
    for root in sorted(graph):
        if root in colour:
            continue
        stack = [(root, iter(sorted(graph[root])))]
        colour[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                colour[node] = 2
                stack.pop()
                continue
            if colour.get(nxt) == 1:
                cyc = [nxt]
                for n, _ in reversed(stack):
                    cyc.append(n)
                    if n == nxt:
                        break
                return list(reversed(cyc))
            if nxt not in colour:
                colour[nxt] = 1
                stack.append((nxt, iter(sorted(graph.get(nxt, ())))))
    return None


fails = 0


def check(label, srcdir, incroot, objdir):
    """Object-call and include cycles among the .c/.h files of srcdir, whose
    includes are written relative to incroot and objects are in objdir."""
    global fails
    if not os.path.isdir(objdir):
        print("FAIL: no objects in " + objdir)
        fails += 1
        return
    # 1. Symbols: which object calls which.
    defined, undefined = {}, {}
    sources = {f[:-2] for f in os.listdir(srcdir) if f.endswith(".c")}
    objs = sorted(f for f in os.listdir(objdir) if f.endswith(".c.o") and f[:-4] in sources)  # not stale ones
    for o in objs:
        name = o[:-4]
        out = subprocess.run(["nm", os.path.join(objdir, o)], capture_output=True, text=True, check=True).stdout
        undefined[name] = set()
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "U":
                undefined[name].add(parts[1])
            elif len(parts) == 3 and parts[1] in "TDBRVW":
                defined[parts[2]] = name
    calls = {n: {defined[s] for s in u if s in defined and defined[s] != n} for n, u in undefined.items()}
    cyc = find_cycle(calls)
    if cyc:
        print("FAIL: object files of %s call each other in a circle: %s" % (label, " -> ".join(cyc)))
        for a, b in zip(cyc, cyc[1:]):
            syms = sorted(s for s in undefined[a] if defined.get(s) == b)
            print("      %s uses %s from %s" % (a, ", ".join(syms[:4]), b))
        fails += 1
    else:
        print("ok   %d object files of %s, %d call edges, no cycle" % (len(objs), label,
                                                                      sum(map(len, calls.values()))))
    # 2. Includes: module X = X.c + X.h.
    inc = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
    files = sorted(f for f in os.listdir(srcdir) if f.endswith((".c", ".h")))
    deps = {}
    for f in files:
        mod = f[:-2]
        with open(os.path.join(srcdir, f)) as fh:
            for h in inc.findall(fh.read()):
                path = os.path.join(incroot, h)
                if os.path.exists(path) and os.path.dirname(os.path.abspath(path)) == os.path.abspath(srcdir):
                    if os.path.basename(h)[:-2] != mod:
                        deps.setdefault(mod, set()).add(os.path.basename(h)[:-2])
        deps.setdefault(mod, set())
    cyc = find_cycle(deps)
    if cyc:
        print("FAIL: modules of %s include each other in a circle: %s" % (label, " -> ".join(cyc)))
        fails += 1
    else:
        print("ok   %d modules of %s, %d include edges, no cycle" % (len(deps), label, sum(map(len, deps.values()))))


check("app/", os.path.join(root, "app"), os.path.join(root, "app"), os.path.join(cmakefiles, "leandiff.dir/app"))
check("src/pipeline/", os.path.join(root, "src/pipeline"), os.path.join(root, "src"),
      os.path.join(cmakefiles, "leandiff_obj.dir/src/pipeline"))
sys.exit(1 if fails else 0)
PY
