#!/usr/bin/env bash
# Long fault-injection profile: lock, queue and KV workloads on a 3-node
# cluster in network namespaces while nodes are killed (one, the leader, or
# all at once), paused and partitioned, then a summary: operations by
# outcome, faults by type, invariant violations (must be 0), longest
# unavailability, elections. Needs root, iproute2 and nft for partitions
# (DSYNC_NO_NETNS=1 leaves them out).
#
#   scripts/chaos.sh [--duration 10m]     (s, m or h; default 10m)
set -euo pipefail
cd "$(dirname "$0")/.."

duration="10m"
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration="$2"; shift 2 ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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

cargo build -q -p dsync
export DSYNC_BIN="$PWD/target/debug/dsync"
echo "chaos: ${secs}s of faults (summary at the end)"
DSYNC_CHAOS_SECS="$secs" cargo test -q -p dsync-tests --test e2e chaos:: -- --ignored --nocapture
