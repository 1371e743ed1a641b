#!/usr/bin/env bash
# A 3-node RabbitMQ 3.10 cluster beside a 3-node dsync cluster on this
# machine, in alternating rounds so both see the same host speed. The
# workload is that of
#
#   dsync bench queue --clients 16 --topics 12 --batch 100 --payload-size 1024 --duration 10
#
# on both sides: 8 producers push batches of 100 persistent 1 KiB messages
# and wait for all of a batch to be durable before the next; 8 consumers take
# up to 100 at a time and ack them with one request; producer and consumer i
# use topic i mod 12. On RabbitMQ a topic is a durable quorum queue (three
# members, one per node), producers wait for every publisher confirm, and
# consumers use manual acks, prefetch 100 and one `multiple` ack per 100
# (scripts/compare/rabbitmq-bench, a Rust lapin client, one connection per
# worker, workers spread round-robin over the three nodes as dsync's
# `--via any` spreads them).
#
# Durability, both sides with defaults: a RabbitMQ quorum queue confirms a
# message once a majority of its members have written it to their WAL and
# fdatasynced it (wal_sync_method default); dsync acknowledges a push once
# it is fsynced on a majority of its Raft group.
#
# Each RabbitMQ round deletes and re-declares the queues, so it starts empty;
# each dsync round runs on a fresh `dsync cluster up --nodes 3 --shards 3`.
# The order alternates from round to round. At the end: the medians and
# dsync ÷ RabbitMQ.
#
#   scripts/compare/rabbitmq.sh [--rounds 3] [--duration 10] [--topics 12]
#
# Needs rabbitmq-server (Debian: apt-get install rabbitmq-server) and root,
# since the RabbitMQ wrappers switch to the rabbitmq user. Builds the bench
# client (CARGO_TARGET_DIR or scripts/compare/rabbitmq-bench/target) and a
# release dsync unless DSYNC_BIN is set. docs/benchmarks.md has the figures.
set -euo pipefail
cd "$(dirname "$0")/../.."

rounds=3 duration=10 topics=12
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --topics) topics="$2"; shift 2 ;;
        -h|--help) sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
for v in "$rounds" "$duration" "$topics"; do
    case "$v" in ''|*[!0-9]*|0) echo "not a positive number: $v" >&2; exit 2 ;; esac
done

for tool in rabbitmq-server rabbitmqctl epmd python3; do
    command -v "$tool" >/dev/null || {
        echo "$tool is missing: apt-get install rabbitmq-server python3" >&2
        exit 1
    }
done
[ "$(id -u)" = 0 ] || { echo "run as root: rabbitmq-server switches to the rabbitmq user" >&2; exit 1; }
echo "$(dpkg-query -W -f '${Package} ${Version}' rabbitmq-server 2>/dev/null || echo rabbitmq-server)"
if pgrep -u rabbitmq -x beam.smp >/dev/null; then
    echo "warning: a RabbitMQ node already runs (the package's default one?); it shares the CPU." >&2
    echo "         stop it first: systemctl stop rabbitmq-server (or rabbitmqctl stop)" >&2
fi

echo "building the RabbitMQ bench client"
target="${CARGO_TARGET_DIR:-$PWD/scripts/compare/rabbitmq-bench/target}"
CARGO_TARGET_DIR="$target" \
    cargo build -q --release --locked --manifest-path scripts/compare/rabbitmq-bench/Cargo.toml
client="$target/release/rabbitmq-bench"
if [ -z "${DSYNC_BIN:-}" ]; then
    echo "building dsync (release)"
    CARGO_TARGET_DIR=target cargo build -q --release -p dsync
    DSYNC_BIN="$PWD/target/release/dsync"
fi

work=$(mktemp -d)
chmod 755 "$work"
results="$work/results"
tag="dsb$$"
nodes=() uris=() pids=() epmd_pid=""

free_port() {
    python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
node_env() { # node index -> the environment its wrappers need
    local d="$work/rabbit-$1"
    echo "RABBITMQ_NODENAME=${nodes[$1]} RABBITMQ_MNESIA_BASE=$d/mnesia RABBITMQ_LOG_BASE=$d/log" \
        "RABBITMQ_CONFIG_FILE=$d/rabbitmq.conf RABBITMQ_PID_FILE=$d/pid" \
        "RABBITMQ_ENABLED_PLUGINS_FILE=$d/enabled_plugins"
}
ctl() { # node index, rabbitmqctl arguments
    local i="$1"; shift
    env $(node_env "$i") rabbitmqctl -q -n "${nodes[$i]}" "$@"
}
cpu_ticks() { # pids -> their user + system CPU ticks so far
    local pid t=0
    for pid in "$@"; do
        t=$((t + $(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$t"
}
cores_since() { # start time, start ticks, pids -> cores they used on average since
    local t1 c1
    t1=$(date +%s.%N) c1=$(cpu_ticks "${@:3}")
    awk -v t0="$1" -v c0="$2" -v t1="$t1" -v c1="$c1" 'BEGIN { printf "%.2f", (c1 - c0) / 100 / (t1 - t0) }'
}
host_ticks() { # -> "busy total" jiffies of the whole machine, from /proc/stat
    awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}
host_busy_since() { # "busy total" from host_ticks -> cores the whole machine was busy since
    local b1 t1
    read -r b1 t1 < <(host_ticks)
    awk -v b0="${1% *}" -v t0="${1#* }" -v b1="$b1" -v t1="$t1" -v n="$(nproc)" \
        'BEGIN { printf "%.2f", (t1 > t0) ? (b1 - b0) / (t1 - t0) * n : 0 }'
}
client_cores() { # runs a command, passes its stdout on; the cores it used go to $work/client-cpu
    python3 -c 'import resource, subprocess, sys, time
t0 = time.monotonic()
rc = subprocess.run(sys.argv[2:]).returncode
r = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as f:
    print("%.2f" % ((r.ru_utime + r.ru_stime) / (time.monotonic() - t0)), file=f)
sys.exit(rc)' "$work/client-cpu" "$@"
}
stop_all() {
    local i
    for i in "${!nodes[@]}"; do
        ctl "$i" stop >/dev/null 2>&1 || true
    done
    for i in "${!pids[@]}"; do
        kill "${pids[$i]}" 2>/dev/null || true
    done
    # Not our children, so no `wait`: poll until they are gone (or 30 s).
    for _ in $(seq 300); do
        local alive=0
        for i in "${!pids[@]}"; do kill -0 "${pids[$i]}" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    [ -n "$epmd_pid" ] && kill "$epmd_pid" 2>/dev/null || true
    "$DSYNC_BIN" cluster down --dir "$work/dsync" --purge >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap stop_all EXIT

# epmd: the nodes start one if none runs, but then nobody would stop it;
# start it here so it is ours to stop.
if ! epmd -names >/dev/null 2>&1; then
    epmd -address 127.0.0.1 >/dev/null 2>&1 &
    epmd_pid=$!
    for _ in $(seq 50); do epmd -names >/dev/null 2>&1 && break; sleep 0.1; done
fi

echo "starting 3 RabbitMQ nodes on loopback in $work"
for i in 0 1 2; do
    d="$work/rabbit-$i" port=$(free_port) dist=$(free_port)
    nodes[$i]="${tag}r$((i + 1))@localhost"
    mkdir -p "$d/mnesia" "$d/log"
    cat >"$d/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$port
loopback_users = none
EOF
    echo "[]." >"$d/enabled_plugins"
    chown -R rabbitmq:rabbitmq "$d"
    uris[$i]="amqp://guest:guest@127.0.0.1:$port/%2f"
    env $(node_env "$i") RABBITMQ_NODE_PORT="$port" RABBITMQ_DIST_PORT="$dist" \
        rabbitmq-server -detached
done
for i in 0 1 2; do
    # await_startup fails at once if the node is not registered with epmd yet.
    name="${nodes[$i]%@*}"
    for _ in $(seq 300); do epmd -names 2>/dev/null | grep -qw "$name" && break; sleep 0.1; done
    epmd -names 2>/dev/null | grep -qw "$name" \
        || { echo "node ${nodes[$i]} did not register with epmd (logs in $work/rabbit-$i/log)" >&2; exit 1; }
    ctl "$i" await_startup --timeout 120
    pids[$i]=$(cat "$work/rabbit-$i/pid")
done
for i in 1 2; do
    ctl "$i" stop_app
    ctl "$i" join_cluster "${nodes[0]}"
    ctl "$i" start_app
done
ctl 0 cluster_status --formatter json \
    | python3 -c 'import json, sys
d = json.load(sys.stdin); n = d["running_nodes"]
print("RabbitMQ cluster running:", " ".join(sorted(n)))
sys.exit(0 if len(n) == 3 else 1)' || { echo "the RabbitMQ nodes did not form one cluster" >&2; exit 1; }
all_uris=$(IFS=,; echo "${uris[*]}")

rabbit_run() {
    local out t0 c0
    # The window includes re-declaring the queues and connecting (well under a second).
    t0=$(date +%s.%N) c0=$(cpu_ticks "${pids[@]}") h0=$(host_ticks)
    out=$(client_cores "$client" --uris "$all_uris" --producers 8 --consumers 8 --topics "$topics" --batch 100 \
        --payload-size 1024 --prefetch 100 --duration "$duration" --setup)
    server_cpu=$(cores_since "$t0" "$c0" "${pids[@]}") host_cpu=$(host_busy_since "$h0")
    # A quorum queue declared after the join has all three nodes as members.
    ctl 0 list_queues name type members --formatter json | python3 -c 'import json, sys
qs = [q for q in json.load(sys.stdin) if q["name"].startswith("dsync-bench-")]
bad = [q["name"] for q in qs if q["type"] != "quorum" or len(q["members"]) != 3]
if len(qs) != int(sys.argv[1]) or bad:
    sys.exit("queues not %s quorum queues with 3 members: %r" % (sys.argv[1], bad))' "$topics"
    python3 -c 'import json, sys
d = json.loads(sys.argv[1])
print("rabbitmq acked/s=%.0f confirmed/s=%.0f publish p50=%.1fms p99=%.1fms backlog=%d nacked=%d cpu: servers=%s client=%s host=%s cores" % (
    d["acked_per_sec"], d["confirmed_per_sec"], d["publish_batch_p50_ms"], d["publish_batch_p99_ms"],
    d["backlog"], d["nacked"], sys.argv[4], sys.argv[5], sys.argv[6]))
with open(sys.argv[3], "a") as f:
    print(sys.argv[2], "rabbitmq", d["acked_per_sec"], d["confirmed_per_sec"],
          d["publish_batch_p50_ms"], d["publish_batch_p99_ms"], sys.argv[4], sys.argv[5], sys.argv[6], file=f)' \
        "$out" "$1" "$results" "$server_cpu" "$(cat "$work/client-cpu")" "$host_cpu"
}

dsync_run() {
    local log="$work/dsync.log" out t0 c0 server_pids
    "$DSYNC_BIN" cluster up --dir "$work/dsync" --nodes 3 --shards 3 >"$log" 2>&1 \
        || { cat "$log" >&2; exit 1; }
    server_pids=$(sed -n 's/^ *pid: *\([0-9]*\)$/\1/p' "$work/dsync/cluster.yaml")
    t0=$(date +%s.%N) c0=$(cpu_ticks $server_pids) h0=$(host_ticks)
    out=$(client_cores "$DSYNC_BIN" --dir "$work/dsync" bench queue --clients 16 --topics "$topics" --batch 100 \
        --payload-size 1024 --duration "$duration" -o json 2>"$log") || { cat "$log" >&2; exit 1; }
    server_cpu=$(cores_since "$t0" "$c0" $server_pids) host_cpu=$(host_busy_since "$h0")
    python3 -c 'import json, sys
d = json.loads(sys.argv[1]); p = d["push"]
print("dsync    acked/s=%.0f enqueued/s=%.0f push p50=%.1fms p99=%.1fms backlog=%d errors=%d cpu: servers=%s client=%s host=%s cores" % (
    d["messages_per_sec"], d["enqueued_per_sec"], p["p50_ms"], p["p99_ms"], d["backlog"],
    p["errors"] + d["consume_ack"]["errors"], sys.argv[4], sys.argv[5], sys.argv[6]))
with open(sys.argv[3], "a") as f:
    print(sys.argv[2], "dsync", d["messages_per_sec"], d["enqueued_per_sec"],
          p["p50_ms"], p["p99_ms"], sys.argv[4], sys.argv[5], sys.argv[6], file=f)' \
        "$out" "$1" "$results" "$server_cpu" "$(cat "$work/client-cpu")" "$host_cpu"
    "$DSYNC_BIN" cluster down --dir "$work/dsync" --purge >"$log" 2>&1
}

for r in $(seq "$rounds"); do
    echo "== round $r of $rounds ($(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg))"
    if [ $((r % 2)) = 1 ]; then
        rabbit_run "$r"
        dsync_run "$r"
    else
        dsync_run "$r"
        rabbit_run "$r"
    fi
done

python3 - "$results" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
by = {}
for r, system, *figures in rows:
    by.setdefault(system, {})[int(r)] = tuple(map(float, figures))
print("== medians over %d rounds" % len({int(r[0]) for r in rows}))
for system in ("rabbitmq", "dsync"):
    runs = by.get(system, {}).values()
    if runs:
        acked, confirmed, p50, p99, server, client, host = (
            statistics.median(x) for x in zip(*runs))
        print("%-8s acked/s=%.0f confirmed/s=%.0f publish batch p50=%.1fms p99=%.1fms"
              " cpu: servers=%.2f client=%.2f host=%.2f cores" % (
            system, acked, confirmed, p50, p99, server, client, host))
common = sorted(set(by.get("dsync", {})) & set(by.get("rabbitmq", {})))
for i, what in ((0, "acked/s"), (1, "confirmed/s")):
    # Per round, then the median: both sides of a ratio saw the same minutes.
    ratios = [by["dsync"][r][i] / by["rabbitmq"][r][i] for r in common]
    if ratios:
        print("dsync ÷ rabbitmq, %s: median %.2f (rounds: %s)" % (
            what, statistics.median(ratios), " ".join("%.2f" % x for x in ratios)))
print("cpu: servers and client are what they used, host what the whole machine did"
      " (of %d cores): host above servers + client is other load" % __import__("os").cpu_count())
print("durability: RabbitMQ quorum queues confirm after a majority fdatasynced its WAL;"
      " dsync acknowledges after a majority fsynced its Raft log (both defaults)")
EOF
