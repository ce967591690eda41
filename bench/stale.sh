#!/usr/bin/env bash
# `ctdiag stale --service kube-dns` next to the conntrack-tools command that lists the same
# entries, `conntrack -L -p udp --orig-dst <ClusterIP> --dport 53`, on a lab node holding about
# 250,000 UDP entries (200,000 of no Service + 50,000 to the kube-dns ClusterIP, DNATed to its
# endpoints), in the same hyperfine run; peak RSS at 25,000 and at 250,000 entries; and what the
# time is spent on: a C program that only runs the same kernel-filtered dump (the floor), and
# ctdiag with --cluster-ip/--endpoints (no kube-proxy rules read). Run as root:
#   bench/stale.sh            (builds release first, builds and removes its own lab)
# Needs hyperfine, conntrack, python3 and a C compiler (apt-get install hyperfine conntrack
# python3 gcc). Entries are made by `ctdiag lab fill` (raw-socket packets from the lab's client
# pod); every packet stays inside the lab's namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in hyperfine conntrack python3 cc; do
    command -v "$tool" >/dev/null || { echo "bench/stale.sh: install $tool" >&2; exit 2; }
done
[ -x /usr/bin/time ] || { echo "bench/stale.sh: install time (/usr/bin/time)" >&2; exit 2; }
bin=$(./install.sh --build-only)
prefix=bstale$$
work=$(mktemp -d)
trap '"$bin" lab down --prefix "$prefix" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
"$bin" lab up --prefix "$prefix" >/dev/null
node=$prefix-node
cluster_ip=198.19.0.10
# fill COUNT cluster-ip|unrelated: COUNT new flows that live 20 minutes without traffic.
fill() { "$bin" lab fill --prefix "$prefix" --flows "$1" --to "$2" --timeout 1200 >/dev/null; }

# The floor: the same CTA_FILTER dump, every datagram read, nothing decoded.
cat > "$work/floor.c" <<'C'
#include <arpa/inet.h>
#include <linux/netlink.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
static size_t put(uint8_t *at, uint16_t type, const void *value, uint16_t len) {
    uint16_t total = 4 + len;
    memcpy(at, &total, 2); memcpy(at + 2, &type, 2); memcpy(at + 4, value, len);
    return (total + 3) & ~3u;
}
int main(int argc, char **argv) {
    uint8_t req[256] = {0}, ip[16], proto[32], tuple[64], filter[16], buf[65536];
    struct in_addr dst; inet_pton(AF_INET, argv[1], &dst);
    uint16_t port = htons(53); uint8_t udp = 17; uint32_t flags = (1 << 1) | (1 << 3) | (1 << 5);
    size_t n_ip = put(ip, 2, &dst, 4);
    size_t n_proto = put(proto, 1, &udp, 1); n_proto += put(proto + n_proto, 3, &port, 2);
    size_t n_tuple = put(tuple, 1 | 0x8000, ip, n_ip);
    n_tuple += put(tuple + n_tuple, 2 | 0x8000, proto, n_proto);
    size_t n_filter = put(filter, 1, &flags, 4);
    size_t off = 20;
    off += put(req + off, 1 | 0x8000, tuple, n_tuple);
    off += put(req + off, 25 | 0x8000, filter, n_filter);
    struct nlmsghdr *h = (struct nlmsghdr *)req;
    h->nlmsg_len = off; h->nlmsg_type = (1 << 8) | 1;
    h->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP; h->nlmsg_seq = 1;
    req[16] = AF_INET;
    int fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER);
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    if (fd < 0 || sendto(fd, req, off, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) return 2;
    long entries = 0;
    for (;;) {
        ssize_t got = recv(fd, buf, sizeof buf, 0);
        if (got <= 0) return 2;
        for (struct nlmsghdr *m = (struct nlmsghdr *)buf; NLMSG_OK(m, got); m = NLMSG_NEXT(m, got)) {
            if (m->nlmsg_type == NLMSG_DONE || m->nlmsg_type == NLMSG_ERROR) {
                printf("%ld\n", entries);
                return 0;
            }
            entries++;
        }
    }
}
C
cc -O2 -o "$work/floor" "$work/floor.c"

# Peak RSS (KiB) over 5 runs of a command in the node namespace.
peak_rss() {
    local max=0 kib
    for _ in 1 2 3 4 5; do
        kib=$(ip netns exec "$node" /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -1)
        [ "$kib" -gt "$max" ] && max=$kib
    done
    echo "$max"
}

listed() { ip netns exec "$node" conntrack -L -p udp --orig-dst "$cluster_ip" --dport 53 2>/dev/null | wc -l; }

# 25,000 entries: 5,000 to kube-dns, 20,000 of no Service.
fill 5000 cluster-ip
fill 20000 unrelated
echo "25k stage: conntrack -C $(ip netns exec "$node" conntrack -C), to the ClusterIP $(listed)"
rss_25k=$(peak_rss "$bin" stale --service kube-dns -o json)

# 250,000 entries: 45,000 more to kube-dns, 180,000 more of no Service.
fill 45000 cluster-ip
fill 180000 unrelated
total=$(ip netns exec "$node" conntrack -C)
echo "250k stage: conntrack -C $total, to the ClusterIP $(listed), floor dump: $(ip netns exec "$node" "$work/floor" "$cluster_ip") entries"
rss_250k=$(peak_rss "$bin" stale --service kube-dns -o json)
rss_conntrack=$(peak_rss conntrack -L -p udp --orig-dst "$cluster_ip" --dport 53)
report=$(ip netns exec "$node" "$bin" stale --service kube-dns -o json)
echo "ctdiag: $(echo "$report" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("scanned", r["scanned"], "live", r["live_count"], "stale", r["stale_count"], "kernel_filter", r["kernel_filter"])')"
echo "load average before timing: $(cut -d' ' -f1-3 /proc/loadavg)"

hyperfine -N -i --warmup 3 --runs 30 --export-markdown "$work/stale.md" --export-json "$work/stale.json" \
    -n "conntrack -L -p udp --orig-dst $cluster_ip --dport 53" \
        "ip netns exec $node conntrack -L -p udp --orig-dst $cluster_ip --dport 53" \
    -n "ctdiag stale --service kube-dns -o json" \
        "ip netns exec $node $bin stale --service kube-dns -o json" \
    -n "ctdiag stale --service kube-dns (table)" \
        "ip netns exec $node $bin stale --service kube-dns --color never" \
    -n "ctdiag stale --cluster-ip/--endpoints -o json (no rules read)" \
        "ip netns exec $node $bin stale --cluster-ip $cluster_ip --endpoints 198.18.2.2,198.18.3.2 -o json" \
    -n "floor: the same filtered dump in C, nothing decoded" \
        "ip netns exec $node $work/floor $cluster_ip" \
    -n "ip netns exec true (namespace entry alone)" \
        "ip netns exec $node true"
cat "$work/stale.md"
python3 - "$work/stale.json" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
mean = {r["command"]: r["mean"] for r in results}
low = {r["command"]: r["min"] for r in results}
base = [c for c in mean if c.startswith("conntrack -L")][0]
for command in mean:
    print(f"ratio to conntrack -L: {command}: mean {mean[command] / mean[base]:.2f}x, min {low[command] / low[base]:.2f}x")
PY
echo "peak RSS: ctdiag stale at 25,000 entries ${rss_25k} KiB, at $total entries ${rss_250k} KiB (difference $((rss_250k - rss_25k)) KiB); conntrack -L at $total entries ${rss_conntrack} KiB"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
