#!/usr/bin/env bash
# `ctdiag probe` throughput and latency, measured in the same run next to
# references:
#  1. Throughput: answered queries per second at --rate 0 from a throwaway
#     lab's client namespace to the lab's ClusterIP (198.19.0.10, DNAT in
#     the node namespace), next to dnsperf on the same target (dnsperf
#     reuses its sockets; ctdiag opens a fresh socket per lookup).
#  2. Latency: lookup latency ctdiag measures against the embedded
#     responder on loopback, next to a raw-socket baseline (Python: fresh
#     socket, A and AAAA sent back to back, both answers read), one lookup
#     at a time.
# Traffic stays in the lab's namespaces and on loopback. Everything is
# bounded (dnsperf -l, ctdiag --duration/--count). Run as root:
#   bench/probe.sh [SECONDS]      (default 5 s per throughput run)
# Needs dnsperf and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-5}
command -v dnsperf >/dev/null || { echo "bench/probe.sh: install dnsperf" >&2; exit 2; }
command -v python3 >/dev/null || { echo "bench/probe.sh: install python3" >&2; exit 2; }
cargo build --release --quiet
bin=$PWD/target/release/ctdiag
prefix=bprb$$
work=$(mktemp -d)
responder_pid=
cleanup() {
    [ -n "$responder_pid" ] && kill "$responder_pid" 2>/dev/null || true
    "$bin" lab down --prefix "$prefix" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
"$bin" lab up --prefix "$prefix" >/dev/null
client=$prefix-client
node=$prefix-node
name=kubernetes.default.svc.cluster.local
printf '%s A\n%s AAAA\n' "$name" "$name" >"$work/queries"
echo "kernel $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"

echo
echo "== throughput against the ClusterIP 198.19.0.10:53 from $client, ${seconds} s each =="
ip netns exec "$client" dnsperf -s 198.19.0.10 -d "$work/queries" -l "$seconds" -c 1 -q 100 \
    >"$work/dnsperf.txt" 2>&1 || true
dnsperf_qps=$(awk '/Queries per second/ {print $4}' "$work/dnsperf.txt")
dnsperf_lost=$(awk '/Queries lost/ {print $3}' "$work/dnsperf.txt")
echo "dnsperf (1 socket, 100 in flight):      ${dnsperf_qps:-?} answered queries/s (lost ${dnsperf_lost:-?})"
for mode in parallel threads; do
    "$bin" probe --netns "$client" --stats-netns "$node" --mode "$mode" --rate 0 \
        --duration "${seconds}s" --concurrency 64 -o json >"$work/probe-$mode.json" || true
    python3 - "$work/probe-$mode.json" "${dnsperf_qps:-0}" "$mode" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
ref = float(sys.argv[2] or 0)
ratio = r["answered_per_s"] / ref if ref else float("nan")
d = r["conntrack_delta"] or {}
print(f"ctdiag probe --mode {sys.argv[3]:<8} (fresh socket per lookup, 64 in flight): "
      f"{r['answered_per_s']:.0f} answered queries/s = {ratio:.2f}x dnsperf "
      f"({r['lookups']} lookups, lost {r['lost']}, clash_resolve +{d.get('clash_resolve')})")
EOF
done

echo
echo "== lookup latency against the embedded responder on 127.0.0.1, one lookup at a time =="
port=$((20000 + $$ % 20000))
"$bin" lab responder --listen "127.0.0.1:$port" >/dev/null 2>&1 &
responder_pid=$!
sleep 0.5
"$bin" probe --server "127.0.0.1:$port" --count 2000 --rate 0 --concurrency 1 -o json \
    >"$work/loopback.json"
python3 - "$work/loopback.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
l = r["latency_ms"]
print(f"ctdiag probe --mode parallel:  p50 {l['p50']*1000:.0f} us  p90 {l['p90']*1000:.0f} us  "
      f"p99 {l['p99']*1000:.0f} us  ({r['answered']} answered, lost {r['lost']})")
EOF
python3 - "$port" "$name" <<'EOF'
import socket, struct, sys, time, random
port, name = int(sys.argv[1]), sys.argv[2]
def query(qid, qtype):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack(">HH", qtype, 1)
lat = []
for _ in range(2000):
    start = time.perf_counter()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.connect(("127.0.0.1", port))
    s.send(query(random.getrandbits(16), 1))
    s.send(query(random.getrandbits(16), 28))
    s.recv(1500); s.recv(1500)
    lat.append(time.perf_counter() - start)
    s.close()
lat.sort()
pick = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1e6
print(f"raw-socket baseline (python):  p50 {pick(.5):.0f} us  p90 {pick(.9):.0f} us  p99 {pick(.99):.0f} us")
EOF
