#!/usr/bin/env bash
# Saturation run without faults: a fresh release-build 3-node local cluster
# is driven flat out by `dsync bench` for the whole duration, and every
# node's Raft term and leader-change counter (/metrics) are read before and
# after. Any election during the run is spurious: the script prints what it
# saw and exits 1 if there was one. The load keeps the stored data bounded
# (KV puts overwrite a fixed key set, lock cycles release what they take),
# so a long run measures saturation, not memory growth; `mixed` runs both.
#
#   scripts/saturation.sh [--duration 10m] [--workload mixed|kv|lock]
#
# DSYNC_BIN picks the binary (default: a release build, built if needed).
set -euo pipefail
cd "$(dirname "$0")/.."

duration="10m"
workload="mixed"
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration="$2"; shift 2 ;;
        --workload) workload="$2"; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
case "$duration" in
    *h) secs=$(( ${duration%h} * 3600 )) ;;
    *m) secs=$(( ${duration%m} * 60 )) ;;
    *s) secs=${duration%s} ;;
    *[!0-9]*|"") echo "bad --duration: $duration" >&2; exit 2 ;;
    *) secs=$duration ;;
esac
case "$workload" in
    mixed|kv|lock) ;;
    *) echo "bad --workload: $workload (mixed, kv or lock)" >&2; exit 2 ;;
esac

if [ -z "${DSYNC_BIN:-}" ]; then
    cargo build -q --release -p dsync
    DSYNC_BIN="$PWD/target/release/dsync"
fi
dir=$(mktemp -d /tmp/dsync-saturation.XXXXXX)
dsync() { "$DSYNC_BIN" --dir "$dir/cluster" "$@"; }
keep=0
cleanup() {
    if [ "$keep" = 1 ]; then
        dsync cluster down >/dev/null 2>&1 || true
        echo "node logs kept in $dir/cluster/node-*/server.log" >&2
    else
        dsync cluster down --purge >/dev/null 2>&1 || true
        rm -rf "$dir"
    fi
}
trap cleanup EXIT

dsync cluster up --nodes 3 >/dev/null 2>&1
addrs=$(sed -n 's/^ *addr: *//p' "$dir/cluster/cluster.yaml")

# "term leader_changes" per node, one line each.
sample() {
    local a text
    for a in $addrs; do
        text=$(curl -fsS --max-time 5 "http://$a/metrics") || { echo "node $a: no metrics" >&2; return 1; }
        printf '%s %s %s\n' "$a" \
            "$(awk '$1 == "dsync_raft_term" { print $2 }' <<<"$text")" \
            "$(awk '$1 == "dsync_raft_leader_changes" || $1 == "dsync_raft_leader_changes_total" { print $2 }' <<<"$text")"
    done
}
before=$(sample)

echo "saturation: ${secs}s of '$workload' load on 3 nodes ($DSYNC_BIN)"
pids=()
run_bench() { dsync --output json bench "$@" --duration "$secs" >"$dir/bench-$1.json" 2>"$dir/bench-$1.err" & pids+=($!); }
case "$workload" in
    kv) run_bench kv --clients 64 --keys overwrite ;;
    lock) run_bench lock --clients 64 ;;
    mixed)
        run_bench kv --clients 32 --keys overwrite
        run_bench lock --clients 32
        ;;
esac
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=1; done
if ! after=$(sample); then
    keep=1
    echo "a node stopped answering during the run" >&2
    exit 1
fi

for f in "$dir"/bench-*.json; do
    name=$(basename "$f" .json)
    echo "--- ${name#bench-}"
    # ops/s and latency percentiles, whatever the bench reports.
    grep -E '"(ops_per_sec|[a-z_]*per_s[a-z]*|p50_ms|p99_ms|p999_ms|errors|ops)"' "$f" | tr -d ' ,' | paste -sd' ' - || cat "$f"
done
if [ "$failed" != 0 ]; then
    echo "a bench failed:" >&2
    cat "$dir"/bench-*.err >&2
fi

elections=0
changes=0
while read -r a term lc; do
    read -r _ term0 lc0 <<<"$(grep "^$a " <<<"$before")"
    echo "node $a: term $term0 -> $term, leader changes $lc0 -> $lc"
    elections=$(( elections > term - term0 ? elections : term - term0 ))
    changes=$(( changes + ${lc%.*} - ${lc0%.*} ))
done <<<"$after"
echo "elections observed: $elections (term increase), leader changes: $changes"
if [ "$elections" != 0 ] || [ "$changes" != 0 ] || [ "$failed" != 0 ]; then
    keep=1
    exit 1
fi
