#!/bin/bash
# Before and after, side by side: the analysis of one face (age + gender + expression +
# liveness + pose, one thread, CPU ms; mien bench --analysis-only) by two mien binaries run
# alternately, ROUNDS times each, so that both see the same load of a shared machine. Prints
# a Markdown table: per binary the median over rounds of each round's median, the lowest
# median, and the fastest single run.
#
#   bash bench/analysis_speed_ab.sh OLD_MIEN NEW_MIEN [ROUNDS=10] [-- extra mien bench options]
set -euo pipefail
old=${1:?usage: analysis_speed_ab.sh OLD_MIEN NEW_MIEN [ROUNDS]}
new=${2:?usage: analysis_speed_ab.sh OLD_MIEN NEW_MIEN [ROUNDS]}
rounds=${3:-10}
shift $(( $# < 3 ? $# : 3 ))
[ "${1:-}" = "--" ] && shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for ((i = 0; i < rounds; i++)); do
    for which in old new; do
        bin=$old
        [ $which = new ] && bin=$new
        "$bin" bench --analysis-only --json "$@" >>"$tmp/$which.jsonl"
    done
done
load=$(cut -d' ' -f1-3 /proc/loadavg)
/usr/bin/python3 - "$tmp" "$old" "$new" "$rounds" "$load" <<'PY'
import json, statistics, sys
tmp, old, new, rounds, load = sys.argv[1:]
key = "age_gender_expression_liveness_pose"
print("One face, age + gender + expression + liveness + pose, 1 thread, CPU ms "
      "(%s rounds, binaries alternated; load average at the end %s)\n" % (rounds, load))
print("| binary | median of the rounds' medians | lowest median | fastest run | per task (median of medians) |")
print("|---|---|---|---|---|")
rounds_of = {}
for which, path in (("old", old), ("new", new)):
    runs = [json.loads(l) for l in open("%s/%s.jsonl" % (tmp, which))]
    runs = [r.get("analysis", r) for r in runs]
    med = [r[key + "_ms"] for r in runs]
    fast = [r[key + "_fastest_ms"] for r in runs]
    tasks = {}
    for r in runs:
        for t in r["tasks"]:
            tasks.setdefault(t["task"], []).append(t["ms"])
    per = ", ".join("%s %.2f" % (t, statistics.median(v)) for t, v in tasks.items())
    print("| %s (`%s`) | **%.2f** | %.2f | %.2f | %s |" % (which, path, statistics.median(med), min(med), min(fast), per))
    rounds_of[which] = med
ratio = [n / o for o, n in zip(rounds_of["old"], rounds_of["new"])]
print("\nnew / old in each round (its two runs back to back): median %.3f (rounds: %s)" %
      (statistics.median(ratio), ", ".join("%.2f/%.2f" % (o, n) for o, n in zip(rounds_of["old"], rounds_of["new"]))))
PY
