#!/usr/bin/env bash
# etcd 3.4 beside dsync on this machine, in alternating rounds so both see
# the same host speed: each round starts three etcd members on loopback
# (defaults: fsync on), runs puts, contended lock handoffs, distinct lock
# cycles and linearizable gets with 64 closed-loop clients, stops them,
# then does the same with a fresh 3-node dsync cluster and `dsync bench`. --via any (the default)
# binds client i to member i mod 3 on both sides, as clients behind a load
# balancer are; --via leader puts every client on the leader.
#
#   scripts/compare/etcd.sh [--rounds 3] [--duration 10] [--clients 64] [--via any|leader]
#
# Installs etcd-server, etcd-client and protobuf-compiler (Debian) when
# missing; builds the etcd load tool in scripts/compare/etcd/ and a release
# dsync (or uses DSYNC_BIN). docs/benchmarks.md has the figures.
set -euo pipefail
cd "$(dirname "$0")/../.."

rounds=3 duration=10 clients=64 via=any
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --clients) clients="$2"; shift 2 ;;
        --via) via="$2"; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
for v in "$rounds" "$duration" "$clients"; do
    case "$v" in ''|*[!0-9]*) echo "not a number: $v" >&2; exit 2 ;; esac
done
case "$via" in any|leader) ;; *) echo "--via is any or leader, not: $via" >&2; exit 2 ;; esac

need=()
command -v etcd >/dev/null || need+=(etcd-server)
command -v etcdctl >/dev/null || need+=(etcd-client)
command -v protoc >/dev/null || need+=(protobuf-compiler)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]} (apt)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
echo "building the etcd load tool"
CARGO_TARGET_DIR=scripts/compare/etcd/target \
    cargo build -q --release --locked --manifest-path scripts/compare/etcd/Cargo.toml
tool=scripts/compare/etcd/target/release/etcd-compare
if [ -z "${DSYNC_BIN:-}" ]; then
    echo "building dsync (release)"
    CARGO_TARGET_DIR=target cargo build -q --release -p dsync
    DSYNC_BIN="$PWD/target/release/dsync"
fi

work=$(mktemp -d)
pids=()
stop_etcd() {
    if [ ${#pids[@]} -gt 0 ]; then
        kill "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
    fi
    pids=()
}
trap 'stop_etcd; "$DSYNC_BIN" cluster down --dir "$work/dsync" --purge >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

etcd_round() {
    local d="$work/etcd" cluster="" eps=""
    rm -rf "$d" && mkdir -p "$d"
    # Ports picked free now; peers on 127.0.0.1.
    local ports
    read -r -a ports <<<"$(python3 -c 'import socket
s=[socket.socket() for _ in range(6)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))')"
    for i in 1 2 3; do
        cluster+="${cluster:+,}e$i=http://127.0.0.1:${ports[$((i+2))]}"
        eps+="${eps:+,}127.0.0.1:${ports[$((i-1))]}"
    done
    for i in 1 2 3; do
        etcd --name "e$i" --data-dir "$d/e$i" \
            --listen-peer-urls "http://127.0.0.1:${ports[$((i+2))]}" \
            --initial-advertise-peer-urls "http://127.0.0.1:${ports[$((i+2))]}" \
            --listen-client-urls "http://127.0.0.1:${ports[$((i-1))]}" \
            --advertise-client-urls "http://127.0.0.1:${ports[$((i-1))]}" \
            --initial-cluster "$cluster" --initial-cluster-state new \
            --initial-cluster-token compare >"$d/e$i.log" 2>&1 &
        pids+=($!)
    done
    local leader=""
    for _ in $(seq 100); do
        leader=$(ETCDCTL_API=3 etcdctl --endpoints "$eps" --command-timeout=1s endpoint status 2>/dev/null \
            | awk -F', ' '$5 == "true" { print $1 }' || true)
        [ -n "$leader" ] && break
        sleep 0.2
    done
    [ -n "$leader" ] || { echo "etcd elected no leader (logs in $d)" >&2; exit 1; }
    local target="$leader"
    [ "$via" = leader ] || target="$eps"
    for mode in put lock dist get; do
        "$tool" "$mode" "$clients" "$duration" "$target"
    done
    stop_etcd
}

dsync_round() {
    for what in kv contended distinct reads; do
        local log="$work/dsync.log"
        "$DSYNC_BIN" cluster up --dir "$work/dsync" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
        local args=(bench kv --via "$via")
        case "$what" in
            contended|distinct) args=(bench lock --via "$via" --names "$what") ;;
            reads) args=(bench kv --via "$via" --read linearizable) ;;
        esac
        local out
        out=$("$DSYNC_BIN" --dir "$work/dsync" "${args[@]}" --clients "$clients" \
            --duration "$duration" --output json 2>"$log") || { cat "$log" >&2; exit 1; }
        python3 -c 'import json, sys
d = json.loads(sys.argv[1])
print("dsync %-15s clients=%d ops=%d ops/s=%.0f p50=%.2fms p99=%.2fms errors=%d" % (
    d["bench"], d["clients"], d["ops"], d["ops_per_sec"], d["p50_ms"], d["p99_ms"], d["errors"]))' "$out"
        "$DSYNC_BIN" cluster down --dir "$work/dsync" --purge >"$log" 2>&1
    done
}

for r in $(seq "$rounds"); do
    echo "== round $r of $rounds, via $via ($(date -u +%H:%M))"
    etcd_round
    dsync_round
done
