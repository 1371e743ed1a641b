#!/usr/bin/env bash
# `dsync bench --via any` beside `--via leader` on this machine, in
# alternating rounds so both see the same host speed: each run starts a
# fresh 3-node cluster, runs one bench (puts, distinct lock cycles, one
# contended lock) with closed-loop clients, and purges it; within a round
# the order of any and leader flips from one round to the next. At the end:
# the median of each over the rounds, and any ÷ leader.
#
#   scripts/compare/via.sh [--rounds 5] [--duration 10] [--clients 64]
#
# Builds a release dsync (or uses DSYNC_BIN). docs/benchmarks.md has the
# figures.
set -euo pipefail
cd "$(dirname "$0")/../.."

rounds=5 duration=10 clients=64
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --clients) clients="$2"; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
for v in "$rounds" "$duration" "$clients"; do
    case "$v" in ''|*[!0-9]*) echo "not a number: $v" >&2; exit 2 ;; esac
done
command -v python3 >/dev/null || { echo "python3 is needed (apt-get install python3)" >&2; exit 1; }
if [ -z "${DSYNC_BIN:-}" ]; then
    echo "building dsync (release)"
    CARGO_TARGET_DIR=target cargo build -q --release -p dsync
    DSYNC_BIN="$PWD/target/release/dsync"
fi

work=$(mktemp -d)
results="$work/results"
trap '"$DSYNC_BIN" cluster down --dir "$work/dsync" --purge >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

run() { # round workload via bench-args...
    local r=$1 what=$2 via=$3 log="$work/dsync.log" out
    shift 3
    "$DSYNC_BIN" cluster up --dir "$work/dsync" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
    out=$("$DSYNC_BIN" --dir "$work/dsync" bench "$@" --via "$via" --clients "$clients" \
        --duration "$duration" --output json 2>"$log") || { cat "$log" >&2; exit 1; }
    "$DSYNC_BIN" cluster down --dir "$work/dsync" --purge >"$log" 2>&1
    python3 -c 'import json, sys
d = json.loads(sys.argv[1])
print("%-9s via %-6s clients=%d ops/s=%.0f p50=%.2fms p99=%.2fms errors=%d" % (
    sys.argv[3], d["via"], d["clients"], d["ops_per_sec"], d["p50_ms"], d["p99_ms"], d["errors"]))
with open(sys.argv[4], "a") as f:
    print(sys.argv[2], sys.argv[3], d["via"], d["ops_per_sec"], d["p50_ms"], d["p99_ms"], file=f)' \
        "$out" "$r" "$what" "$results"
}

for r in $(seq "$rounds"); do
    echo "== round $r of $rounds ($(date -u +%H:%M), load $(cut -d' ' -f1 /proc/loadavg))"
    order="any leader"
    [ $((r % 2)) = 1 ] || order="leader any"
    for via in $order; do run "$r" kv "$via" kv; done
    for via in $order; do run "$r" distinct "$via" lock --names distinct; done
    for via in $order; do run "$r" contended "$via" lock --names contended; done
done

python3 - "$results" <<'EOF'
import statistics, sys
by = {}
for line in open(sys.argv[1]):
    r, what, via, ops, p50, p99 = line.split()
    by.setdefault((what, via), {})[int(r)] = (float(ops), float(p50), float(p99))
print("== medians over the rounds")
for what in ("kv", "distinct", "contended"):
    for via in ("any", "leader"):
        ops, p50, p99 = (statistics.median(x) for x in zip(*by[(what, via)].values()))
        print("%-9s via %-6s ops/s=%.0f p50=%.2fms p99=%.2fms" % (what, via, ops, p50, p99))
    # Per round, then the median: both sides of a ratio saw the same minutes.
    ratios = [by[(what, "any")][r][0] / by[(what, "leader")][r][0] for r in sorted(by[(what, "any")])]
    print("%-9s any ÷ leader: median %.2f (rounds: %s)" % (
        what, statistics.median(ratios), " ".join("%.2f" % x for x in ratios)))
EOF
