#!/usr/bin/env bash
# What `ctdiag watch` costs and whether it accounts for every query, in the
# lab at the highest rate two client pods reach (`probe --rate 0` from each):
#  - accounting: watch's queries, answered and unanswered against the sum of
#    the two probes' queries_sent, answered and lost (within 0.1 %);
#  - CPU time (user + system) of watch against `tcpdump -i any -w /dev/null
#    port 53` capturing the same packets in the same run, both in the node;
#  - peak RSS of watch in a short run against a longer one (flat or not).
# The lab has one client pod; the script adds a second (PREFIX-client2,
# 198.18.9.2, routed through the node like the first) and removes it.
# Run as root:
#   bench/watch.sh [SHORT_S] [LONG_S]   (defaults 10 and 300; builds release)
# Needs tcpdump and GNU time (/usr/bin/time).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v tcpdump >/dev/null || { echo "bench/watch.sh: install tcpdump" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench/watch.sh: install GNU time (apt-get install time)" >&2; exit 2; }
short=${1:-10}
long=${2:-300}
bin=${CTDIAG_BIN:-$(./install.sh --build-only)}
prefix=bwat$$
work=${CTDIAG_BENCH_DIR:-$(mktemp -d)}
cleanup() {
    ip netns del "$prefix-client2" 2>/dev/null || true
    "$bin" lab down --prefix "$prefix" >/dev/null 2>&1 || true
    [ -n "${CTDIAG_BENCH_DIR:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
"$bin" lab up --prefix "$prefix" -o json >"$work/lab.json"
node=$prefix-node
cluster_ip=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["cluster_ip"])' "$work/lab.json")

# The second client pod: a veth from the node, 198.18.9.0/24.
ip netns add "$prefix-client2"
ip link add c9 netns "$node" type veth peer name eth0 netns "$prefix-client2"
ip -n "$node" addr add 198.18.9.1/24 dev c9
ip -n "$node" link set c9 up
ip -n "$prefix-client2" addr add 198.18.9.2/24 dev eth0
ip -n "$prefix-client2" link set lo up
ip -n "$prefix-client2" link set eth0 up
ip -n "$prefix-client2" route add default via 198.18.9.1

# One run of `seconds`: watch and tcpdump in the node, a probe at full
# rate from each client pod; prints one line of figures.
run() {
    local seconds=$1 out=$work/run$1
    mkdir -p "$out"
    local span=$((seconds + 6))
    /usr/bin/time -f '%U %S %M' -o "$out/watch.time" \
        "$bin" watch --netns "$node" --duration "${span}s" --timeout 1000 -o json \
        >"$out/watch.json" 2>"$out/watch.err" &
    local watch_pid=$!
    /usr/bin/time -f '%U %S %M' -o "$out/tcpdump.time" \
        ip netns exec "$node" timeout -s INT "$((span + 1))" \
        tcpdump -i any -w /dev/null -s 600 port 53 2>"$out/tcpdump.err" &
    local tcpdump_pid=$!
    sleep 2
    local probes=()
    for ns in "$prefix-client" "$prefix-client2"; do
        ip netns exec "$ns" "$bin" probe --server "$cluster_ip" --rate 0 \
            --duration "${seconds}s" --timeout 1000 -o json >"$out/probe-$ns.json" 2>/dev/null &
        probes+=($!)
    done
    wait "${probes[@]}" || true
    wait "$watch_pid" || true
    wait "$tcpdump_pid" || true
    python3 - "$out" "$seconds" "$prefix" <<'EOF'
import json, sys
out, seconds, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
summary = json.loads(open(f"{out}/watch.json").read().splitlines()[-1])
probes = [json.load(open(f"{out}/probe-{prefix}-{ns}.json")) for ns in ("client", "client2")]
sent = sum(p["queries_sent"] for p in probes)
answered = sum(p["answered"] for p in probes)
lost = sum(p["lost"] for p in probes)
def rel(a, b):
    return abs(a - b) / max(b, 1) * 100
# GNU time's last line (a line before it says "Command exited with
# non-zero status" when timeout stopped tcpdump).
w_user, w_sys, w_rss = open(f"{out}/watch.time").read().splitlines()[-1].split()
t_user, t_sys, t_rss = open(f"{out}/tcpdump.time").read().splitlines()[-1].split()
watch_cpu = float(w_user) + float(w_sys)
tcpdump_cpu = float(t_user) + float(t_sys)
ok = all(rel(w, p) <= 0.1 for w, p in ((summary["queries"], sent), (summary["answered"], answered), (summary["unanswered"], lost)))
print(f"{seconds:>4} s: probes sent {sent} answered {answered} lost {lost} | "
      f"watch queries {summary['queries']} answered {summary['answered']} unanswered {summary['unanswered']} "
      f"pending {summary['pending']} drops {summary['capture_drops']} | within 0.1 %: {'yes' if ok else 'NO'} | "
      f"CPU watch {watch_cpu:.2f} s, tcpdump {tcpdump_cpu:.2f} s ({watch_cpu / max(tcpdump_cpu, 0.01):.2f}x) | "
      f"peak RSS watch {int(w_rss) / 1024:.1f} MiB")
EOF
}

echo "ctdiag watch in lab $prefix ($(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
run "$short"
run "$long"
