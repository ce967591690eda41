#!/usr/bin/env bash
# Throughput and latency of `ctdiag probe`, printed as figures for
# BENCHMARKS.md. Run as root:   bench/probe.sh [SECONDS]   (default 5)
#
# 1. Through the lab's kube-dns ClusterIP (198.19.0.10, 2 embedded
#    endpoints), from the lab's client pod, in the same run:
#    - dnsperf (one socket for every query: the ceiling the responders and
#      the node allow), bounded by -l SECONDS;
#    - ctdiag probe --rate 0 in each mode (a fresh socket, so a fresh
#      conntrack entry, per lookup), bounded by --duration SECONDS.
#    Figure: answered queries per second, and the ratio to dnsperf.
# 2. Latency on loopback (127.0.0.1 only): ctdiag probe against the
#    embedded responder, next to a raw-socket baseline (a small C program
#    doing the same: fresh socket, sendmmsg A+AAAA, wait for both) at the
#    same pace and count.
#
# Every run is bounded; traffic stays inside the lab's namespaces or on
# loopback. Needs dnsperf and a C compiler (apt-get install dnsperf gcc).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-5}
command -v dnsperf >/dev/null || { echo "bench/probe.sh: install dnsperf" >&2; exit 2; }
command -v cc >/dev/null || { echo "bench/probe.sh: install gcc" >&2; exit 2; }
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
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# allow_loss CMD...: runs a probe, which exits 1 when it lost lookups (at
# --rate 0 a loaded machine can lose some: that is a figure, not a
# failure); any other failure stops the benchmark.
allow_loss() {
    local status=0
    "$@" || status=$?
    if [ "$status" -gt 1 ]; then
        echo "bench/probe.sh: $1 ${2:-} exited $status" >&2
        exit 1
    fi
}

echo "kernel $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin" lab up --prefix "$prefix" >/dev/null
client=$prefix-client
node=$prefix-node
name=kubernetes.default.svc.cluster.local
printf '%s A\n%s AAAA\n' "$name" "$name" >"$work/queries"

echo
echo "== Through the ClusterIP 198.19.0.10 from $client, ${seconds}s each =="
ip netns exec "$client" dnsperf -s 198.19.0.10 -d "$work/queries" -l "$seconds" -c 1 -q 100 \
    -t 1 >"$work/dnsperf.txt" 2>&1 || { cat "$work/dnsperf.txt" >&2; exit 1; }
dnsperf_qps=$(awk '/Queries per second:/ {print $4}' "$work/dnsperf.txt")
dnsperf_lost=$(awk '/Queries lost:/ {print $3}' "$work/dnsperf.txt")
printf '%-44s %10s answered queries/s (lost %s)\n' "dnsperf -c 1 -q 100 (one socket)" \
    "$dnsperf_qps" "$dnsperf_lost"
for mode in parallel threads sequential reopen tcp; do
    ip netns exec "$node" conntrack -F >/dev/null 2>&1
    allow_loss "$bin" probe --netns "$client" --stats-netns "$node" --mode "$mode" --rate 0 \
        --concurrency 64 --timeout 1000 --duration "${seconds}s" -o json >"$work/$mode.json"
    qps=$(json 'round(d["answered"] / d["duration_s"])' <"$work/$mode.json")
    line=$(json '"lookups %d, lost %d, p50 %s ms, p99 %s ms, clash_resolve +%s" % (d["lookups"], d["lost"], d["latency_ms"]["p50"], d["latency_ms"]["p99"], (d["conntrack_delta"] or {}).get("clash_resolve"))' <"$work/$mode.json")
    ratio=$(python3 -c "print('%.2f' % ($qps / float('$dnsperf_qps')))" 2>/dev/null || echo "?")
    printf '%-44s %10s answered queries/s = %sx dnsperf; %s\n' \
        "ctdiag probe --mode $mode --rate 0 -c64" "$qps" "$ratio" "$line"
done

echo
echo "== Latency on loopback (embedded responder), 2000 lookups at 500/s, one at a time =="
port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" lab responder --listen "127.0.0.1:$port" >/dev/null 2>&1 &
responder_pid=$!
sleep 0.5
cat >"$work/baseline.c" <<'EOF'
/* Raw-socket baseline: per lookup a fresh connected UDP socket, A and AAAA
 * in one sendmmsg, poll until both answers are in; prints p50 p90 p99 max
 * of the lookup latency in ms. Usage: baseline PORT COUNT RATE */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}
static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static size_t query(unsigned char *q, unsigned short id, unsigned short type) {
    const char *labels[] = {"kubernetes", "default", "svc", "cluster", "local"};
    size_t n = 0;
    q[n++] = id >> 8; q[n++] = id & 0xff; q[n++] = 1; q[n++] = 0;
    q[n++] = 0; q[n++] = 1; memset(q + n, 0, 6); n += 6;
    for (int i = 0; i < 5; i++) {
        size_t l = strlen(labels[i]);
        q[n++] = (unsigned char)l; memcpy(q + n, labels[i], l); n += l;
    }
    q[n++] = 0; q[n++] = 0; q[n++] = (unsigned char)type; q[n++] = 0; q[n++] = 1;
    return n;
}
int main(int argc, char **argv) {
    if (argc != 4) return 2;
    int port = atoi(argv[1]), count = atoi(argv[2]);
    double gap = 1000.0 / atof(argv[3]);
    double *lat = calloc(count, sizeof(double));
    int done = 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    double next = now_ms();
    for (int i = 0; i < count; i++) {
        while (now_ms() < next) usleep(50);
        next += gap;
        unsigned char a[64], aaaa[64], buf[512];
        struct iovec iov[2] = {{a, query(a, 2 * i, 1)}, {aaaa, query(aaaa, 2 * i + 1, 28)}};
        struct mmsghdr m[2];
        memset(m, 0, sizeof m);
        m[0].msg_hdr.msg_iov = &iov[0]; m[0].msg_hdr.msg_iovlen = 1;
        m[1].msg_hdr.msg_iov = &iov[1]; m[1].msg_hdr.msg_iovlen = 1;
        int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) return 1;
        double t0 = now_ms();
        if (sendmmsg(s, m, 2, 0) != 2) { close(s); continue; }
        int got = 0;
        while (got < 2) {
            struct pollfd p = {s, POLLIN, 0};
            if (poll(&p, 1, 1000) <= 0) break;
            if (recv(s, buf, sizeof buf, 0) > 0) got++;
        }
        if (got == 2) lat[done++] = now_ms() - t0;
        close(s);
    }
    qsort(lat, done, sizeof(double), cmp);
    if (done == 0) return 1;
    printf("%d %.3f %.3f %.3f %.3f\n", done, lat[done / 2], lat[(int)(done * 0.9)],
           lat[(int)(done * 0.99)], lat[done - 1]);
    return 0;
}
EOF
cc -O2 -o "$work/baseline" "$work/baseline.c"
# Not `< <(...)`: a failing baseline must stop the script.
"$work/baseline" "$port" 2000 500 >"$work/baseline.txt"
read -r b_n b50 b90 b99 bmax <"$work/baseline.txt"
printf '%-44s p50 %s ms, p90 %s ms, p99 %s ms, max %s ms (%s lookups)\n' \
    "raw sockets (C, sendmmsg, poll)" "$b50" "$b90" "$b99" "$bmax" "$b_n"
for mode in parallel threads tcp; do
    allow_loss "$bin" probe --server "127.0.0.1:$port" --mode "$mode" --count 2000 --rate 500 \
        --concurrency 1 --timeout 1000 -o json >"$work/lo-$mode.json"
    json '"%-44s p50 %s ms, p90 %s ms, p99 %s ms, max %s ms (%d of %d lookups answered)" % ("ctdiag probe --mode '"$mode"'", d["latency_ms"]["p50"], d["latency_ms"]["p90"], d["latency_ms"]["p99"], d["latency_ms"]["max"], d["lookups"] - d["one_lost_lookups"] - d["both_lost_lookups"], d["lookups"])' \
        <"$work/lo-$mode.json"
done
