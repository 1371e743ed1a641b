#!/usr/bin/env bash
# `dsync bench queue --topics N` on 3-node clusters with different numbers
# of queue groups, in alternating rounds so every G sees the same host
# speed: each run starts a fresh cluster (`cluster up --shards G`), runs one
# queue bench through every node (round-robin, as a load balancer would),
# and purges it; the order of the Gs rotates from round to round. At the
# end: the median acked msgs/s of each G, and each ÷ the first G listed.
#
#   scripts/compare/shards.sh [--groups "1 3 6"] [--rounds 3] [--duration 10]
#                             [--clients 16] [--topics 12] [--nodes 3]
#
# G = 0 is the layout of a cluster without queue groups (every topic in the
# control group). Builds a release dsync (or uses DSYNC_BIN).
# docs/benchmarks.md has the figures.
set -euo pipefail
cd "$(dirname "$0")/../.."

groups="1 3 6" rounds=3 duration=10 clients=16 topics=12 nodes=3
while [ $# -gt 0 ]; do
    case "$1" in
        --groups) groups="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --clients) clients="$2"; shift 2 ;;
        --topics) topics="$2"; shift 2 ;;
        --nodes) nodes="$2"; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
for v in $groups "$rounds" "$duration" "$clients" "$topics" "$nodes"; do
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

run() { # round groups
    local r=$1 g=$2 log="$work/dsync.log" out
    "$DSYNC_BIN" cluster up --dir "$work/dsync" --nodes "$nodes" --shards "$g" >"$log" 2>&1 \
        || { cat "$log" >&2; exit 1; }
    out=$("$DSYNC_BIN" --dir "$work/dsync" bench queue --clients "$clients" --topics "$topics" \
        --duration "$duration" --batch 100 --payload-size 1024 --output json 2>"$log") \
        || { cat "$log" >&2; exit 1; }
    "$DSYNC_BIN" cluster down --dir "$work/dsync" --purge >"$log" 2>&1
    python3 -c 'import json, sys
d = json.loads(sys.argv[1])
print("G=%-3s acked/s=%.0f enqueued/s=%.0f push p50=%.1fms p99=%.1fms errors=%d" % (
    sys.argv[3], d["messages_per_sec"], d["enqueued_per_sec"], d["push"]["p50_ms"],
    d["push"]["p99_ms"], d["push"]["errors"] + d["consume_ack"]["errors"]))
with open(sys.argv[4], "a") as f:
    print(sys.argv[2], sys.argv[3], d["messages_per_sec"], file=f)' \
        "$out" "$r" "$g" "$results"
}

set -- $groups
for r in $(seq "$rounds"); do
    echo "== round $r of $rounds ($(date -u +%H:%M), load $(cut -d' ' -f1 /proc/loadavg))"
    # Rotate the order so no G always runs first (or last) in a round.
    shift_by=$(( (r - 1) % $# ))
    order=$(echo $groups | tr ' ' '\n' | tail -n +$((shift_by + 1)); echo $groups | tr ' ' '\n' | head -n "$shift_by")
    for g in $order; do run "$r" "$g"; done
done

python3 - "$results" $groups <<'PY'
import statistics, sys
path, gs = sys.argv[1], sys.argv[2:]
rates = {g: [] for g in gs}
for line in open(path):
    _, g, rate = line.split()
    rates[g].append(float(rate))
base = statistics.median(rates[gs[0]])
print("\nmedian acked msgs/s over the rounds (3 nodes unless --nodes), and the ratio to G=%s:" % gs[0])
for g in gs:
    m = statistics.median(rates[g])
    print("  G=%-3s %8.0f   %.2fx   (runs: %s)" % (g, m, m / base, ", ".join("%.0f" % x for x in rates[g])))
PY
