#!/usr/bin/env bash
# `ctdiag stale` next to the conntrack-tools command that lists the same entries, `conntrack -L
# -p udp --orig-dst <ClusterIP> --dport 53`, on a lab node holding about 250,000 UDP entries
# (200,000 of no Service + 50,000 to the kube-dns ClusterIP, DNATed to its endpoints), in the
# same hyperfine run: like for like, `ctdiag stale --all-entries -o json` (every entry printed,
# as conntrack -L prints every entry; the script checks both print the same number), and the
# summary ctdiag prints by default; peak RSS at 25,000 and at 250,000 entries; what the time is
# spent on: a C program that only runs the same kernel-filtered dump (the floor), and ctdiag
# with --cluster-ip/--endpoints (no kube-proxy rules read). Then, in a rebuilt lab, about
# 100,000 stale entries (endpoint 2 leaves the rules with its entries left behind: `lab
# scenario stale-endpoint`): peak RSS of the summary, the table, `--all-entries -o json` and
# `--flush --yes`, and conntrack -L and --all-entries timed again. Run as root:
#   bench/stale.sh                          (builds release first, builds and removes its lab)
#   OLD_BIN=/path/to/older/ctdiag bench/stale.sh   (the 100,000-stale RSS of another build too)
# Needs hyperfine, conntrack, python3 and a C compiler (apt-get install hyperfine conntrack
# python3 gcc). Entries are made by `ctdiag lab fill` (raw-socket packets from the lab's client
# pod); every packet stays inside the lab's namespaces.
#
# Every command must succeed: no `hyperfine -i`. `ctdiag stale` exits 1 when it finds stale
# entries (and 2 when it cannot tell), so each timed command runs under a small C wrapper,
# `okexit MAX CMD...`, that exits 0 when CMD exits 0..MAX and fails otherwise: MAX is 0 for the
# runs that find nothing stale and for conntrack, 1 where stale entries are expected. Every
# command, conntrack's included, runs under the same wrapper, so they pay the same overhead.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in hyperfine conntrack python3 cc; do
    command -v "$tool" >/dev/null || { echo "bench/stale.sh: install $tool" >&2; exit 2; }
done
[ -x /usr/bin/time ] || { echo "bench/stale.sh: install time (/usr/bin/time)" >&2; exit 2; }
bin=$(./install.sh --build-only)
old_bin=${OLD_BIN:-}
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

# okexit MAX CMD...: runs CMD, exits 0 when it exited 0..MAX, else with its status (125 for a
# status of 0 that cannot be passed on, 128+N for signal N), saying so on stderr.
cat > "$work/okexit.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: okexit MAX CMD...\n"); return 125; }
    int max = atoi(argv[1]), status;
    pid_t pid = fork();
    if (pid < 0) return 125;
    if (pid == 0) { execvp(argv[2], argv + 2); perror(argv[2]); _exit(127); }
    if (waitpid(pid, &status, 0) < 0) return 125;
    if (WIFEXITED(status) && WEXITSTATUS(status) <= max) return 0;
    if (WIFEXITED(status)) {
        fprintf(stderr, "okexit: %s exited %d (allowed: 0 to %d)\n", argv[2], WEXITSTATUS(status), max);
        return WEXITSTATUS(status) ? WEXITSTATUS(status) : 125;
    }
    fprintf(stderr, "okexit: %s killed by signal %d\n", argv[2], WTERMSIG(status));
    return 128 + WTERMSIG(status);
}
C
cc -O2 -o "$work/okexit" "$work/okexit.c"
ok=$work/okexit

# Peak RSS (KiB) over 5 runs of a command in the node namespace; the command must exit 0..MAX.
peak_rss() {
    local max_status=$1 max=0 kib
    shift
    for _ in 1 2 3 4 5; do
        ip netns exec "$node" "$ok" "$max_status" /usr/bin/time -o "$work/rss" -f '%M' "$@" >/dev/null
        kib=$(tail -1 "$work/rss")
        [ "$kib" -gt "$max" ] && max=$kib
    done
    echo "$max"
}

listed() { ip netns exec "$node" conntrack -L -p udp --orig-dst "$cluster_ip" --dport 53 2>/dev/null | wc -l; }
# Entries `ctdiag stale ... --all-entries -o json` prints (exit 0..MAX).
printed() {
    local max_status=$1
    shift
    ip netns exec "$node" "$ok" "$max_status" "$bin" stale "$@" --all-entries -o json >"$work/all.json"
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(len(r["entries"]), "entries,", r["stale_count"], "stale,", r["live_count"], "live, entries_truncated", r.get("entries_truncated", False))' "$work/all.json"
}

# 25,000 entries: 5,000 to kube-dns, 20,000 of no Service.
fill 5000 cluster-ip
fill 20000 unrelated
echo "25k stage: conntrack -C $(ip netns exec "$node" conntrack -C), to the ClusterIP $(listed)"
rss_25k=$(peak_rss 0 "$bin" stale --service kube-dns -o json)
rss_25k_all=$(peak_rss 0 "$bin" stale --service kube-dns --all-entries -o json)

# 250,000 entries: 45,000 more to kube-dns, 180,000 more of no Service.
fill 45000 cluster-ip
fill 180000 unrelated
total=$(ip netns exec "$node" conntrack -C)
echo "250k stage: conntrack -C $total, to the ClusterIP $(listed), floor dump: $(ip netns exec "$node" "$work/floor" "$cluster_ip") entries"
rss_250k=$(peak_rss 0 "$bin" stale --service kube-dns -o json)
rss_250k_all=$(peak_rss 0 "$bin" stale --service kube-dns --all-entries -o json)
rss_conntrack=$(peak_rss 0 conntrack -L -p udp --orig-dst "$cluster_ip" --dport 53)
report=$(ip netns exec "$node" "$ok" 0 "$bin" stale --service kube-dns -o json)
echo "ctdiag: $(echo "$report" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("scanned", r["scanned"], "live", r["live_count"], "stale", r["stale_count"], "kernel_filter", r["kernel_filter"])')"
# Like for like: both list every entry to the ClusterIP, the same number.
n_conntrack=$(listed)
n_ctdiag=$(printed 0 --service kube-dns)
echo "printed: conntrack -L $n_conntrack lines; ctdiag stale --all-entries -o json: $n_ctdiag"
[ "$n_conntrack" = "${n_ctdiag%% *}" ] || { echo "bench/stale.sh: the two list different numbers of entries" >&2; exit 1; }

# timed RUNS NAME CMD [NAME CMD]...: one hyperfine run (every command in the node namespace,
# under okexit), its table, and each command's ratio to the first one.
timed() {
    local runs=$1 tag=$2
    shift 2
    local args=()
    while [ $# -gt 0 ]; do
        args+=(-n "$1" "$2")
        shift 2
    done
    echo "load average before timing ($tag): $(cut -d' ' -f1-3 /proc/loadavg)"
    hyperfine -N --warmup 3 --runs "$runs" --export-markdown "$work/$tag.md" \
        --export-json "$work/$tag.json" "${args[@]}"
    cat "$work/$tag.md"
    python3 - "$work/$tag.json" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
base = results[0]
for r in results:
    print(f"ratio to {base['command']}: {r['command']}: mean {r['mean'] / base['mean']:.2f}x, min {r['min'] / base['min']:.2f}x; user {r['user'] * 1000:.1f} ms, system {r['system'] * 1000:.1f} ms")
PY
}
in_node="ip netns exec $node $ok"
timed 30 stale250k \
    "conntrack -L -p udp --orig-dst $cluster_ip --dport 53 (every entry)" \
        "$in_node 0 conntrack -L -p udp --orig-dst $cluster_ip --dport 53" \
    "ctdiag stale --service kube-dns --all-entries -o json (every entry)" \
        "$in_node 0 $bin stale --service kube-dns --all-entries -o json" \
    "ctdiag stale --service kube-dns -o json (summary)" \
        "$in_node 0 $bin stale --service kube-dns -o json" \
    "ctdiag stale --service kube-dns (table)" \
        "$in_node 0 $bin stale --service kube-dns --color never" \
    "ctdiag stale --cluster-ip/--endpoints -o json (no rules read)" \
        "$in_node 0 $bin stale --cluster-ip $cluster_ip --endpoints 198.18.2.2,198.18.3.2 -o json" \
    "floor: the same filtered dump in C, nothing decoded" \
        "$in_node 0 $work/floor $cluster_ip" \
    "ip netns exec true (namespace entry alone)" \
        "$in_node 0 true"
echo "peak RSS: ctdiag stale -o json at 25,000 entries ${rss_25k} KiB, at $total entries ${rss_250k} KiB (difference $((rss_250k - rss_25k)) KiB); --all-entries -o json ${rss_25k_all} KiB and ${rss_250k_all} KiB; conntrack -L at $total entries ${rss_conntrack} KiB"

# About 100,000 stale entries: a rebuilt lab (an empty table), 200,000 flows to the ClusterIP
# (about half DNATed to each endpoint) and 50,000 of no Service; then endpoint 2 leaves the
# rules and its pod goes, its entries stay.
"$bin" lab up --prefix "$prefix" >/dev/null
fill 200000 cluster-ip
fill 50000 unrelated
"$bin" lab scenario stale-endpoint --prefix "$prefix" --endpoint 2 >/dev/null
dead=198.18.3.2
stale_kernel=$(ip netns exec "$node" conntrack -L -p udp --orig-dst "$cluster_ip" --dport 53 2>/dev/null | grep -c "src=$dead ")
echo "stale stage: conntrack -C $(ip netns exec "$node" conntrack -C), to the ClusterIP $(listed), of them towards $dead (out of the rules) $stale_kernel"
echo "ctdiag --all-entries: $(printed 1 --service kube-dns)"
rss_stale=$(peak_rss 1 "$bin" stale --service kube-dns -o json)
rss_stale_table=$(peak_rss 1 "$bin" stale --service kube-dns --color never)
rss_stale_all=$(peak_rss 1 "$bin" stale --service kube-dns --all-entries -o json)
echo "peak RSS with $stale_kernel stale entries: ctdiag stale -o json ${rss_stale} KiB, table ${rss_stale_table} KiB, --all-entries -o json ${rss_stale_all} KiB"
if [ -n "$old_bin" ]; then
    old_stale=$(peak_rss 1 "$old_bin" stale --service kube-dns -o json)
    old_stale_table=$(peak_rss 1 "$old_bin" stale --service kube-dns --color never)
    old_stale_all=$(peak_rss 1 "$old_bin" stale --service kube-dns --all-entries -o json)
    echo "peak RSS with $stale_kernel stale entries, OLD_BIN=$old_bin: -o json ${old_stale} KiB, table ${old_stale_table} KiB, --all-entries -o json ${old_stale_all} KiB"
fi
timed 10 stale100k \
    "conntrack -L -p udp --orig-dst $cluster_ip --dport 53 (every entry)" \
        "$in_node 0 conntrack -L -p udp --orig-dst $cluster_ip --dport 53" \
    "ctdiag stale --service kube-dns --all-entries -o json (every entry)" \
        "$in_node 1 $bin stale --service kube-dns --all-entries -o json" \
    "ctdiag stale --service kube-dns -o json (summary)" \
        "$in_node 1 $bin stale --service kube-dns -o json"
# The flush, once (it deletes them): peak RSS, time, and what it and the kernel say.
ip netns exec "$node" "$ok" 0 /usr/bin/time -o "$work/rss" -f '%M %e' \
    "$bin" stale --service kube-dns --flush --yes -o json >"$work/flush.json"
read -r flush_kib flush_s < <(tail -1 "$work/rss")
left=$(ip netns exec "$node" conntrack -L -p udp --orig-dst "$cluster_ip" --dport 53 2>/dev/null | grep -c "src=$dead " || true)
echo "flush of $stale_kernel stale entries: peak RSS ${flush_kib} KiB, ${flush_s} s; $(python3 -c 'import json,sys; f=json.load(open(sys.argv[1]))["flush"]; print("deleted", f["deleted"], "already_gone", f["already_gone"], "failed", f["failed"], "remaining", f["remaining"])' "$work/flush.json"); conntrack -L towards $dead after: $left"
[ "$left" = 0 ] || { echo "bench/stale.sh: the flush left entries towards $dead" >&2; exit 1; }
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
