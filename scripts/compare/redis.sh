#!/usr/bin/env bash
# Redis 7 beside dsync's cache hits on this machine, in alternating rounds so
# both see the same host speed. Each round starts one redis-server on
# loopback with persistence off (--save '' --appendonly no: the timed GETs
# write nothing, so snapshots or an append-only file would not change what
# is measured), writes the hot keys, runs closed-loop GETs, and stops it; it
# also starts a fresh 3-node dsync cluster and runs `dsync bench cache --mode
# hits`, once --via any and once --via leader, with the same clients, keys
# and value size. The order of the three alternates from round to round. At
# the end: the median of each over the rounds, and dsync ÷ Redis.
#
#   scripts/compare/redis.sh [--rounds 5] [--duration 10] [--clients 50]
#
# Installs redis-server (Debian) when missing; builds the Redis load tool in
# scripts/compare/redis/ and a release dsync (or uses DSYNC_BIN).
# docs/benchmarks.md has the figures.
set -euo pipefail
cd "$(dirname "$0")/../.."

rounds=5 duration=10 clients=50
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --clients) clients="$2"; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
for v in "$rounds" "$duration" "$clients"; do
    case "$v" in ''|*[!0-9]*) echo "not a number: $v" >&2; exit 2 ;; esac
done

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]} (apt)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
version=$(redis-server --version | sed -n 's/.* v=\([0-9.]*\).*/\1/p')
case "$version" in
    7.*) echo "redis-server $version" ;;
    *) echo "warning: redis-server ${version:-of unknown version}, not Redis 7" >&2 ;;
esac
echo "building the Redis load tool"
CARGO_TARGET_DIR=scripts/compare/redis/target \
    cargo build -q --release --locked --manifest-path scripts/compare/redis/Cargo.toml
tool=scripts/compare/redis/target/release/redis-compare
if [ -z "${DSYNC_BIN:-}" ]; then
    echo "building dsync (release)"
    CARGO_TARGET_DIR=target cargo build -q --release -p dsync
    DSYNC_BIN="$PWD/target/release/dsync"
fi

work=$(mktemp -d)
results="$work/results"
redis_pid=""
stop_redis() {
    if [ -n "$redis_pid" ]; then
        kill "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    fi
    redis_pid=""
}
trap 'stop_redis; "$DSYNC_BIN" cluster down --dir "$work/dsync" --purge >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

redis_run() {
    local d="$work/redis" port
    rm -rf "$d" && mkdir -p "$d"
    port=$(python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    redis-server --bind 127.0.0.1 --port "$port" --dir "$d" --save '' --appendonly no \
        --daemonize no --logfile "$d/redis.log" &
    redis_pid=$!
    for _ in $(seq 100); do
        [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && break
        sleep 0.1
    done
    [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] \
        || { echo "redis-server did not start (log in $d)" >&2; exit 1; }
    local line
    line=$("$tool" "$clients" "$duration" "127.0.0.1:$port")
    echo "$line"
    # "redis get clients=50 ops=… ops/s=… p50=…ms p99=…ms misses=…"
    echo "$line" | sed 's/ms / /g; s/ms$//' \
        | awk -v r="$1" '{ for (i = 3; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
              print r, "redis", v["ops/s"], v["p50"], v["p99"] }' >>"$results"
    stop_redis
}

dsync_run() {
    local log="$work/dsync.log" out via
    "$DSYNC_BIN" cluster up --dir "$work/dsync" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
    for via in "${@:2}"; do
        out=$("$DSYNC_BIN" --dir "$work/dsync" bench cache --mode hits --via "$via" \
            --clients "$clients" --duration "$duration" --output json 2>"$log") \
            || { cat "$log" >&2; exit 1; }
        python3 -c 'import json, sys
d = json.loads(sys.argv[1])
print("dsync %-6s clients=%d ops=%d ops/s=%.0f p50=%.3fms p99=%.3fms errors=%d" % (
    d["via"], d["clients"], d["ops"], d["ops_per_sec"], d["p50_ms"], d["p99_ms"], d["errors"]))
with open(sys.argv[3], "a") as f:
    print(sys.argv[2], "dsync-" + d["via"], d["ops_per_sec"], d["p50_ms"], d["p99_ms"], file=f)' \
            "$out" "$1" "$results"
        grep -h "reads were misses" "$log" || true
    done
    "$DSYNC_BIN" cluster down --dir "$work/dsync" --purge >"$log" 2>&1
}

for r in $(seq "$rounds"); do
    echo "== round $r of $rounds ($(date -u +%H:%M))"
    if [ $((r % 2)) = 1 ]; then
        redis_run "$r"
        dsync_run "$r" any leader
    else
        dsync_run "$r" leader any
        redis_run "$r"
    fi
done

python3 - "$results" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
by = {}
for r, system, ops, p50, p99 in rows:
    by.setdefault(system, {})[int(r)] = (float(ops), float(p50), float(p99))
print("== medians over %d rounds" % len({int(r[0]) for r in rows}))
for system in ("redis", "dsync-any", "dsync-leader"):
    runs = by.get(system, {}).values()
    if runs:
        ops, p50, p99 = (statistics.median(x) for x in zip(*runs))
        print("%-13s GET/s=%.0f p50=%.3fms p99=%.3fms" % (system, ops, p50, p99))
for system in ("dsync-any", "dsync-leader"):
    # Per round, then the median: both sides of a ratio saw the same minutes.
    ratios = [by[system][r][0] / by["redis"][r][0]
              for r in sorted(by.get(system, {})) if r in by.get("redis", {})]
    if ratios:
        print("%-13s ÷ redis: median %.2f (rounds: %s)" % (
            system, statistics.median(ratios), " ".join("%.2f" % x for x in ratios)))
EOF
