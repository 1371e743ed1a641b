#!/usr/bin/env python3
"""RabbitMQ quorum-queue baseline for `dsync bench queue`.

Older: one node, one queue, pika clients. The comparison the docs now use is
scripts/compare/rabbitmq.sh (three RabbitMQ nodes beside three dsync nodes in
alternating rounds, one quorum queue per topic, a Rust lapin client); this
script is kept for the older figures in docs/benchmarks.md.

What it measures
----------------
The same workload as

    dsync bench queue --clients 16 --payload-size 1024 --batch 100

run against one durable RabbitMQ *quorum* queue (x-queue-type: quorum):

* N producers (default 8), each its own OS process with its own AMQP
  connection. A producer publishes a batch of `--batch` persistent messages
  of `--payload-size` bytes, then waits until the broker has confirmed every
  message of the batch (publisher confirms) before it publishes the next
  batch. The time from the first publish of a batch to its last confirm is
  the "publish batch" latency (the counterpart of one dsync `queue push`).
* N consumers (default 8), each its own OS process and connection, with
  manual acks and `basic.qos(prefetch_count=--prefetch)`. A consumer acks in
  batches of `--batch`: one `basic.ack(multiple=True)` on the delivery tag of
  the last message of each batch. The time from the first delivery of a batch
  to its ack is the "consume+ack" latency. When the run ends, a consumer acks
  the partial batch it holds (and counts it) before it closes.

Everything runs concurrently for `--duration` seconds (all workers connect
first, then start together); every worker stops by itself at the deadline.
As in dsync's bench, each side's rate is its message count divided by the
time from the common start until the last worker of that side finished:

* producer rate  = messages confirmed by the broker per second
* end-to-end rate = messages acked by consumers per second

The queue is purged before the run (unless --no-purge), so the consumers
only see messages published during the run; what is left in the queue at the
end is reported as the backlog.

Client processes use pika (pure Python). Because Python frame handling can
be the bottleneck, the script also reports the CPU time used by the client
processes and by the broker (beam.smp, found through /proc on Linux) during
the run, as a share of one core: if the clients use about as much CPU as the
machine has to spare, the numbers are client-bound, not broker-bound.

Running it
----------
    # RabbitMQ listening on 127.0.0.1:5672 with the default guest/guest user
    pip install pika
    python3 scripts/compare/rabbitmq_queue_bench.py            # defaults
    python3 scripts/compare/rabbitmq_queue_bench.py --json     # machine-readable

Knobs (defaults in brackets): --host [127.0.0.1] --port [5672]
--user/--password [guest/guest] --vhost [/] --queue [dsync-bench-quorum]
--clients [16: half producers, half consumers, an odd one consumes]
--duration [10 s] --payload-size [1024 bytes] --batch [100] --prefetch [100]
--no-purge, --delete-queue (delete the queue after the run), --json.
"""

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import time

try:
    import pika
except ImportError:  # pragma: no cover
    sys.exit("this benchmark needs pika: pip install pika")


# --------------------------------------------------------------------------
# helpers

def connection_params(args):
    return pika.ConnectionParameters(
        host=args.host,
        port=args.port,
        virtual_host=args.vhost,
        credentials=pika.PlainCredentials(args.user, args.password),
        heartbeat=60,
        blocked_connection_timeout=60,
    )


def declare_queue(channel, name):
    channel.queue_declare(
        queue=name, durable=True, arguments={"x-queue-type": "quorum"}
    )


def cpu_seconds():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def percentile(sorted_values, q):
    """Nearest-rank percentile of an ascending list (q in 0..1)."""
    if not sorted_values:
        return 0.0
    rank = max(1, int(round(q * len(sorted_values) + 0.5 - 1e-9)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def beam_pids():
    """PIDs of RabbitMQ's Erlang VM (beam.smp), if /proc shows any."""
    pids = []
    try:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/comm") as f:
                        if f.read().strip() == "beam.smp":
                            pids.append(int(entry))
                except OSError:
                    pass
    except OSError:
        pass
    return pids


def proc_cpu_seconds(pids):
    """utime+stime of the given PIDs, from /proc/<pid>/stat."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


# --------------------------------------------------------------------------
# producer: asynchronous pika connection so a whole batch is in flight

def producer(idx, args, ready, start_at, results):
    body = b"x" * args.payload_size
    props = pika.BasicProperties(delivery_mode=2)  # persistent
    st = {
        "confirmed": 0, "nacked": 0, "batches": 0, "lat": [],
        "pending": set(), "next_tag": 0, "batch_t0": 0.0,
        "deadline": None, "end": None, "error": None, "cpu0": 0.0,
    }
    conn_holder = {}

    def finish():
        st["end"] = time.time()
        conn = conn_holder["conn"]
        if conn.is_open:
            conn.close()

    def publish_batch(channel):
        if time.time() >= st["deadline"]:
            finish()
            return
        st["batch_t0"] = time.perf_counter()
        for _ in range(args.batch):
            st["next_tag"] += 1
            st["pending"].add(st["next_tag"])
            channel.basic_publish("", args.queue, body, props)

    def on_confirm(frame):
        method = frame.method
        tag = method.delivery_tag
        if method.multiple:
            done = [t for t in st["pending"] if t <= tag]
        else:
            done = [tag] if tag in st["pending"] else []
        for t in done:
            st["pending"].discard(t)
        if isinstance(method, pika.spec.Basic.Ack):
            st["confirmed"] += len(done)
        else:
            st["nacked"] += len(done)
        if not st["pending"]:
            st["lat"].append(time.perf_counter() - st["batch_t0"])
            st["batches"] += 1
            publish_batch(conn_holder["channel"])

    def wait_for_start(channel):
        if start_at.value == 0.0:
            conn_holder["conn"].ioloop.call_later(0.002, lambda: wait_for_start(channel))
            return
        delay = start_at.value - time.time()
        if delay > 0:
            conn_holder["conn"].ioloop.call_later(delay, lambda: wait_for_start(channel))
            return
        st["deadline"] = start_at.value + args.duration
        st["cpu0"] = cpu_seconds()
        publish_batch(channel)

    def on_confirm_ok(_frame):
        ready.put(("producer", idx))
        wait_for_start(conn_holder["channel"])

    def on_channel_open(channel):
        conn_holder["channel"] = channel
        channel.confirm_delivery(on_confirm, callback=on_confirm_ok)

    def on_open(conn):
        conn.channel(on_open_callback=on_channel_open)

    def on_open_error(_conn, err):
        st["error"] = f"connect failed: {err!r}"
        ready.put(("producer", idx))
        _conn.ioloop.stop()

    def on_closed(conn, reason):
        if st["end"] is None and st["error"] is None:
            st["error"] = f"connection closed: {reason!r}"
            st["end"] = time.time()
        conn.ioloop.stop()

    conn = pika.SelectConnection(
        connection_params(args),
        on_open_callback=on_open,
        on_open_error_callback=on_open_error,
        on_close_callback=on_closed,
    )
    conn_holder["conn"] = conn
    try:
        conn.ioloop.start()
    except Exception as e:  # noqa: BLE001
        st["error"] = repr(e)
    results.put({
        "role": "producer", "idx": idx, "messages": st["confirmed"],
        "nacked": st["nacked"], "batches": st["batches"], "lat": st["lat"],
        "end": st["end"] or time.time(), "cpu": cpu_seconds() - st["cpu0"],
        "error": st["error"],
    })


# --------------------------------------------------------------------------
# consumer: blocking pika connection, manual acks, batch acks

def consumer(idx, args, ready, start_at, results):
    st = {"acked": 0, "pending": 0, "last_tag": None, "acks": 0, "lat": [],
          "t0": 0.0, "error": None}
    cpu0 = cpu_seconds()
    end = None
    signalled = False
    try:
        conn = pika.BlockingConnection(connection_params(args))
        ch = conn.channel()
        ch.basic_qos(prefetch_count=args.prefetch)
        ready.put(("consumer", idx))
        signalled = True
        while start_at.value == 0.0:
            time.sleep(0.002)
        delay = start_at.value - time.time()
        if delay > 0:
            time.sleep(delay)
        deadline = start_at.value + args.duration
        cpu0 = cpu_seconds()

        def ack_pending():
            ch.basic_ack(delivery_tag=st["last_tag"], multiple=True)
            st["acked"] += st["pending"]
            st["acks"] += 1
            st["lat"].append(time.perf_counter() - st["t0"])
            st["pending"] = 0

        def on_message(_ch, method, _props, _body):
            if st["pending"] == 0:
                st["t0"] = time.perf_counter()
            st["pending"] += 1
            st["last_tag"] = method.delivery_tag
            if st["pending"] >= args.batch:
                ack_pending()

        tag = ch.basic_consume(args.queue, on_message, auto_ack=False)
        while True:
            left = deadline - time.time()
            if left <= 0:
                break
            conn.process_data_events(time_limit=min(left, 0.05))
        ch.basic_cancel(tag)
        # Deliveries that arrived before the cancel-ok were handled by the
        # callback; ack whatever partial batch is held.
        if st["pending"]:
            ack_pending()
        end = time.time()
        conn.close()  # unacked prefetched messages go back to the queue
    except Exception as e:  # noqa: BLE001
        st["error"] = repr(e)
        if not signalled:
            ready.put(("consumer", idx))
    results.put({
        "role": "consumer", "idx": idx, "messages": st["acked"],
        "batches": st["acks"], "lat": st["lat"], "end": end or time.time(),
        "cpu": cpu_seconds() - cpu0, "error": st["error"],
    })


# --------------------------------------------------------------------------

def summarize(name, rows, start, clients):
    end = max((r["end"] for r in rows), default=start)
    secs = max(end - start, 1e-9)
    lat = sorted(x * 1000.0 for r in rows for x in r["lat"])
    messages = sum(r["messages"] for r in rows)
    return {
        "bench": name,
        "clients": clients,
        "messages": messages,
        "duration_s": round(secs, 3),
        "msg_per_sec": round(messages / secs, 1),
        "calls": sum(r["batches"] for r in rows),
        "errors": sum(1 for r in rows if r["error"]) + sum(r.get("nacked", 0) for r in rows),
        "p50_ms": round(percentile(lat, 0.50), 3),
        "p99_ms": round(percentile(lat, 0.99), 3),
        "p999_ms": round(percentile(lat, 0.999), 3),
        "max_ms": round(lat[-1], 3) if lat else 0.0,
        "client_cpu_s": round(sum(r["cpu"] for r in rows), 2),
        "first_error": next((r["error"] for r in rows if r["error"]), None),
    }


def main():
    ap = argparse.ArgumentParser(
        description="RabbitMQ quorum-queue baseline for `dsync bench queue` "
        "(publisher confirms per batch, manual batch acks).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--host", default="127.0.0.1", help="broker address")
    ap.add_argument("--port", type=int, default=5672, help="AMQP port")
    ap.add_argument("--user", default="guest", help="AMQP user")
    ap.add_argument("--password", default="guest", help="AMQP password")
    ap.add_argument("--vhost", default="/", help="virtual host")
    ap.add_argument("--queue", default="dsync-bench-quorum",
                    help="durable quorum queue to use (declared if missing)")
    ap.add_argument("--clients", type=int, default=16,
                    help="processes: half producers, half consumers (odd one consumes)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds")
    ap.add_argument("--payload-size", type=int, default=1024, help="message body bytes")
    ap.add_argument("--batch", type=int, default=100,
                    help="messages per confirmed publish batch and per consumer ack")
    ap.add_argument("--prefetch", type=int, default=100, help="consumer basic.qos prefetch")
    ap.add_argument("--no-purge", action="store_true",
                    help="keep messages already in the queue (consumers take them too)")
    ap.add_argument("--delete-queue", action="store_true", help="delete the queue afterwards")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    args = ap.parse_args()
    if args.clients < 2:
        ap.error("--clients must be at least 2")

    producers = max(args.clients // 2, 1)
    consumers = max(args.clients - producers, 1)

    # Set up (and purge) the queue; read the broker version.
    conn = pika.BlockingConnection(connection_params(args))
    server_props = conn._impl.server_properties  # noqa: SLF001
    version = server_props.get("version", b"?")
    version = version.decode() if isinstance(version, bytes) else str(version)
    ch = conn.channel()
    declare_queue(ch, args.queue)
    purged = 0 if args.no_purge else ch.queue_purge(args.queue).method.message_count
    conn.close()

    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    ready, results = ctx.Queue(), ctx.Queue()
    start_at = ctx.Value("d", 0.0)
    procs = [ctx.Process(target=producer, args=(i, args, ready, start_at, results))
             for i in range(producers)]
    procs += [ctx.Process(target=consumer, args=(i, args, ready, start_at, results))
              for i in range(consumers)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=30)

    beams = beam_pids()
    print(f"rabbitmq {version}: {producers} producers and {consumers} consumers for "
          f"{args.duration:g} s, batches of {args.batch}, {args.payload_size}-byte messages, "
          f"prefetch {args.prefetch}, quorum queue {args.queue} on {args.host}:{args.port}"
          + (f" (purged {purged})" if purged else ""), file=sys.stderr)
    with open("/proc/stat") if os.path.exists("/proc/stat") else open(os.devnull) as f:
        stat0 = f.readline().split()[1:]
    beam0 = proc_cpu_seconds(beams)
    start = time.time() + 0.2
    start_at.value = start

    rows = [results.get(timeout=args.duration + 120) for _ in procs]
    beam_cpu = proc_cpu_seconds(beams) - beam0
    with open("/proc/stat") if os.path.exists("/proc/stat") else open(os.devnull) as f:
        stat1 = f.readline().split()[1:]
    wall = time.time() - start
    for p in procs:
        p.join(timeout=10)

    conn = pika.BlockingConnection(connection_params(args))
    ch = conn.channel()
    backlog = ch.queue_declare(queue=args.queue, passive=True).method.message_count
    if args.delete_queue:
        ch.queue_delete(args.queue)
    conn.close()

    push = summarize("publish batch (confirmed)", [r for r in rows if r["role"] == "producer"],
                     start, producers)
    cons = summarize("consume+ack batch", [r for r in rows if r["role"] == "consumer"],
                     start, consumers)
    machine_busy = None
    if stat0 and stat1:
        d = [int(b) - int(a) for a, b in zip(stat0, stat1)]
        idle = d[3] + (d[4] if len(d) > 4 else 0)
        machine_busy = round(100.0 * (1 - idle / max(sum(d), 1)), 1)
    report = {
        "bench": "queue",
        "broker": "rabbitmq",
        "rabbitmq_version": version,
        "queue": args.queue,
        "queue_type": "quorum",
        "producers": producers,
        "consumers": consumers,
        "batch": args.batch,
        "prefetch": args.prefetch,
        "payload_size": args.payload_size,
        "duration_s": args.duration,
        "confirmed": push["messages"],
        "acked": cons["messages"],
        "confirmed_per_sec": push["msg_per_sec"],
        "messages_per_sec": cons["msg_per_sec"],
        "backlog": backlog,
        "push": push,
        "consume_ack": cons,
        "cpu": {
            "wall_s": round(wall, 2),
            "cores": os.cpu_count(),
            "beam_pct_of_core": round(100.0 * beam_cpu / wall, 1) if beams else None,
            "producers_pct_of_core": round(100.0 * push["client_cpu_s"] / wall, 1),
            "consumers_pct_of_core": round(100.0 * cons["client_cpu_s"] / wall, 1),
            "machine_busy_pct": machine_busy,
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        hdr = ["BENCH", "CLIENTS", "MESSAGES", "MSG/S", "CALLS", "ERRORS",
               "P50_MS", "P99_MS", "P999_MS", "MAX_MS"]
        table = [hdr]
        for part in (push, cons):
            table.append([part["bench"], str(part["clients"]), str(part["messages"]),
                          f"{part['msg_per_sec']:.1f}", str(part["calls"]), str(part["errors"]),
                          f"{part['p50_ms']:.3f}", f"{part['p99_ms']:.3f}",
                          f"{part['p999_ms']:.3f}", f"{part['max_ms']:.3f}"])
        widths = [max(len(r[i]) for r in table) for i in range(len(hdr))]
        for r in table:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        c = report["cpu"]
        print(f"\nend to end: {cons['msg_per_sec']:.1f} messages/s acked "
              f"({push['msg_per_sec']:.1f}/s confirmed) over {args.duration:g} s; "
              f"{backlog} left in {args.queue}")
        print(f"cpu (% of one core, {c['cores']} cores): beam.smp {c['beam_pct_of_core']}, "
              f"producers {c['producers_pct_of_core']}, consumers {c['consumers_pct_of_core']}; "
              f"machine busy {c['machine_busy_pct']}%")
        for part in (push, cons):
            if part["first_error"]:
                print(f"first error ({part['bench']}): {part['first_error']}", file=sys.stderr)
    bad = (push["calls"] == 0 and push["errors"]) or (cons["calls"] == 0 and cons["errors"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
