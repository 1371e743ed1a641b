#!/usr/bin/env bash
# Rolling upgrade of a dsync cluster, scripted from dsync primitives and
# their `--output json` (the same procedure as `dsync cluster upgrade`, for
# operators who drive upgrades from their own tooling).
#
#   scripts/rolling-upgrade.sh --binary PATH [--dsync PATH] [--timeout S]
#       [--restart-cmd CMD] [--rollback-cmd CMD] [--dry-run]
#
# The cluster is the one `dsync` finds: DSYNC_DIR (local cluster folder) or
# DSYNC_ENDPOINTS. For each node, followers first and the leader last:
#   dsync node drain ID          (clients move away; a leader hands off)
#   $RESTART_CMD                 (stop the node, start it on the new binary)
#   dsync node ready ID          (leader known, caught up, not draining)
#   dsync cluster status         (it reports the new version)
# If a node does not come back on the new version, $ROLLBACK_CMD starts it on
# the old binary again and the script stops with exit 1.
#
# The commands run with NODE_ID, NODE_ADDR, BINARY (new), OLD_BINARY (the
# dsync this script drives, --dsync) and DSYNC in the environment. Defaults
# fit the local runtime:
#   restart:  dsync node restart "$NODE_ID" --binary "$BINARY"
#   rollback: dsync node restart "$NODE_ID"   (the binary it last ran well,
#             recorded in cluster.yaml)
# For systemd, Kubernetes or Compose, pass your own, e.g.
#   --restart-cmd 'ssh "node$NODE_ID" sudo systemctl restart dsync'
#
# Progress goes to stderr; stdout gets one JSON document:
#   {"ok":bool,"target":{"version","protocol"},"nodes":[{"id","result",...}]}
# Exit codes: 0 done, 1 preflight failed or a node was rolled back, 2 usage.
set -euo pipefail

usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

BINARY="" DSYNC="${DSYNC:-dsync}" TIMEOUT=60 DRY_RUN=0
RESTART_CMD="" ROLLBACK_CMD=""
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) BINARY="$2"; shift 2 ;;
        --dsync) DSYNC="$2"; shift 2 ;;
        --timeout) TIMEOUT="$2"; shift 2 ;;
        --restart-cmd) RESTART_CMD="$2"; shift 2 ;;
        --rollback-cmd) ROLLBACK_CMD="$2"; shift 2 ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) usage ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
done
[ -n "$BINARY" ] || usage
command -v jq >/dev/null || { echo "rolling-upgrade.sh needs jq" >&2; exit 1; }
BINARY="$(cd "$(dirname "$BINARY")" && pwd)/$(basename "$BINARY")"
OLD_BINARY="$(command -v "$DSYNC")"
export BINARY OLD_BINARY DSYNC
# Single quotes: the commands expand the variables when they run.
# shellcheck disable=SC2016
[ -n "$RESTART_CMD" ] || RESTART_CMD='"$DSYNC" node restart "$NODE_ID" --binary "$BINARY" --output json >/dev/null'
# shellcheck disable=SC2016
[ -n "$ROLLBACK_CMD" ] || ROLLBACK_CMD='"$DSYNC" node restart "$NODE_ID" --output json >/dev/null'


say() { echo "rolling-upgrade: $*" >&2; }
results='[]'
add_result() { # id result detail
    results=$(jq -c --argjson id "$1" --arg r "$2" --arg d "$3" \
        '. + [{id: $id, result: $r, detail: (if $d == "" then null else $d end)}]' <<<"$results")
}
finish() { # ok
    jq -n --argjson ok "$1" --argjson target "$target" --argjson nodes "$results" \
        '{ok: $ok, target: $target, nodes: $nodes}'
    [ "$1" = true ] && exit 0 || exit 1
}

# Preflight: the new binary runs and speaks the nodes' protocol; every node
# answers, a quorum agrees on a leader, and more than a quorum is healthy.
target=$("$BINARY" version --output json) || { say "$BINARY does not run"; exit 1; }
want_version=$(jq -r .version <<<"$target")
want_protocol=$(jq -r .protocol <<<"$target")
status=$("$DSYNC" cluster status --output json) || { say "no quorum: $(jq -c . <<<"${status:-null}")"; finish false; }
total=$(jq '.nodes | length' <<<"$status")
healthy=$(jq '[.nodes[] | select(.status == "ok" and .leader != null)] | length' <<<"$status")
quorum=$(( total / 2 + 1 ))
unreachable=$(jq -r '[.nodes[] | select(.status != "ok") | .id] | join(",")' <<<"$status")
other_protocol=$(jq -r --argjson p "$want_protocol" \
    '[.nodes[] | select(.protocol != null and .protocol != $p) | .id] | join(",")' <<<"$status")
failed=0
[ -z "$unreachable" ] || { say "FAIL unreachable nodes: $unreachable"; failed=1; }
[ "$healthy" -gt "$quorum" ] || { say "FAIL quorum + 1: $healthy of $total healthy, quorum $quorum"; failed=1; }
[ -z "$other_protocol" ] || { say "FAIL nodes $other_protocol speak another protocol than $want_protocol"; failed=1; }
[ "$failed" = 0 ] || finish false
leader=$(jq -r .leader <<<"$status")
order=$(jq -r --argjson l "$leader" \
    '[.nodes[] | select(.id != $l) | .id] | sort + [$l] | .[]' <<<"$status")
say "preflight ok: $healthy of $total healthy, leader $leader; order: $(echo $order)"

for id in $order; do
    node=$(jq -c --argjson id "$id" '.nodes[] | select(.id == $id)' <<<"$status")
    from=$(jq -r .version <<<"$node")
    if [ "$from" = "$want_version" ]; then
        add_result "$id" skipped "already on $want_version"
        continue
    fi
    if [ "$DRY_RUN" = 1 ]; then
        add_result "$id" planned "$from -> $want_version"
        continue
    fi
    NODE_ID="$id"
    NODE_ADDR=$(jq -r .addr <<<"$node")
    export NODE_ID NODE_ADDR
    say "node $id: drain"
    "$DSYNC" node drain "$id" --output json >/dev/null
    say "node $id: restart on $BINARY"
    ok=1
    bash -c "$RESTART_CMD" || ok=0
    if [ "$ok" = 1 ]; then
        "$DSYNC" node ready "$id" --timeout "$TIMEOUT" --output json >/dev/null || ok=0
    fi
    now=$("$DSYNC" cluster status --output json 2>/dev/null \
        | jq -r --argjson id "$id" '.nodes[] | select(.id == $id) | .version // ""' || true)
    if [ "$ok" = 1 ] && [ "$now" = "$want_version" ]; then
        say "node $id: upgraded to $want_version"
        add_result "$id" upgraded ""
        continue
    fi
    say "node $id: did not come back on $want_version (reports '${now}'); rolling back"
    if bash -c "$ROLLBACK_CMD" && "$DSYNC" node ready "$id" --timeout "$TIMEOUT" --output json >/dev/null; then
        add_result "$id" rolled_back "did not come back on $want_version; previous binary restored"
    else
        add_result "$id" failed "did not come back on $want_version and the rollback failed"
    fi
    finish false
done
finish true
