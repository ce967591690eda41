#!/usr/bin/env bash
# What reading the node's kube-proxy rules costs `ctdiag services` (and
# `ctdiag probe`'s default server, and `ctdiag stale`) on a node with many
# Services, next to the tool that lists those rules (iptables-save, nft list
# table), measured side by side with hyperfine on the same rules: ctdiag as
# it runs by default (the rules read over netlink) and made to read them
# with the listing tools (CTDIAG_RULES_FROM=tools), whose -o json must be
# byte for byte the same. The lab's node gets N extra Services with 3
# endpoints each (addresses in 198.18.0.0/15, never contacted), in iptables
# mode and then in nftables mode. Run as root:
#   bench/discovery.sh [N]     (default 2000 Services; builds release first)
# Needs hyperfine (apt-get install hyperfine). The listing tool is timed
# twice: writing to /dev/null (hyperfine's default) and into a pipe, which
# is what any reader of its output (ctdiag included) makes it do; nft writes
# its listing in ~150,000 small writes, which cost far more into a pipe.
# Every timed command must exit 0 (no `hyperfine -i`): on the lab's healthy
# node none of them finds a problem, so an exit 1 or 2 stops the benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "bench/discovery.sh: install hyperfine" >&2; exit 2; }
services=${1:-2000}
bin=$(./install.sh --build-only)
prefix=bdisc$$
trap '"$bin" lab down --prefix "$prefix" >/dev/null 2>&1 || true' EXIT

cluster_ip() { echo "198.19.$(($1 / 250 + 1)).$(($1 % 250 + 1))"; }
endpoint_ip() { echo "198.18.$(($1 / 250 + 100)).$(($1 % 250 + 1))"; }

# kube-proxy iptables-mode rules for N Services (nat table, added to the
# lab's own with --noflush).
iptables_rules() {
    echo "*nat"
    for i in $(seq 1 "$services"); do
        echo ":KUBE-SVC-B$i - [0:0]"
        for e in 1 2 3; do echo ":KUBE-SEP-B$i-$e - [0:0]"; done
    done
    for i in $(seq 1 "$services"); do
        cip=$(cluster_ip "$i")
        spn="bench/svc$i:http"
        echo "-A KUBE-SERVICES -d $cip/32 -p tcp -m comment --comment \"$spn cluster IP\" -m tcp --dport 80 -j KUBE-SVC-B$i"
        for e in 1 2 3; do
            ep="$(endpoint_ip "$i"):$((8080 + e))"
            case $e in 1) stat="-m statistic --mode random --probability 0.33333333349 " ;;
                2) stat="-m statistic --mode random --probability 0.50000000000 " ;; *) stat="" ;; esac
            echo "-A KUBE-SVC-B$i -m comment --comment \"$spn -> $ep\" ${stat}-j KUBE-SEP-B$i-$e"
            echo "-A KUBE-SEP-B$i-$e -p tcp -m comment --comment \"$spn\" -m tcp -j DNAT --to-destination $ep"
        done
    done
    echo "COMMIT"
}

# The same Services in kube-proxy's nftables table (added to the lab's).
nft_rules() {
    for i in $(seq 1 "$services"); do
        echo "add chain ip kube-proxy service-B$i-bench/svc$i/tcp/http"
        for e in 1 2 3; do echo "add chain ip kube-proxy endpoint-B$i$e-bench/svc$i/tcp/http__$(endpoint_ip "$i")/$((8080 + e))"; done
    done
    for i in $(seq 1 "$services"); do
        svc="service-B$i-bench/svc$i/tcp/http"
        vmap=""
        for e in 1 2 3; do
            chain="endpoint-B$i$e-bench/svc$i/tcp/http__$(endpoint_ip "$i")/$((8080 + e))"
            echo "add rule ip kube-proxy $chain meta l4proto tcp dnat to $(endpoint_ip "$i"):$((8080 + e))"
            vmap="$vmap${vmap:+ , }$((e - 1)) : goto $chain"
        done
        echo "add rule ip kube-proxy $svc numgen random mod 3 vmap { $vmap }"
        echo "add element ip kube-proxy service-ips { $(cluster_ip "$i") . tcp . 80 : goto $svc }"
    done
}

measure() {
    local mode=$1 lister=$2
    local node=$prefix-node client=$prefix-client
    echo
    echo "== $mode mode: $services Services + kube-dns; kernel $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    hyperfine -N --warmup 3 --runs 30 --export-markdown "/tmp/ctdiag-bench-discovery-$mode.md" \
        -n "$lister" "ip netns exec $node $lister" \
        -n "$lister | cat" "sh -c 'ip netns exec $node $lister | cat >/dev/null'" \
        -n "services -o json" "$bin services --netns $node -o json" \
        -n "services -o json (listing tools)" "env CTDIAG_RULES_FROM=tools $bin services --netns $node -o json" \
        -n "stale --service kube-dns" "$bin stale --netns $node --service kube-dns -o json" \
        -n "stale --service kube-dns (listing tools)" \
        "env CTDIAG_RULES_FROM=tools $bin stale --netns $node --service kube-dns -o json" \
        -n "probe --server (no discovery)" \
        "$bin probe --netns $client --stats-netns $node --count 1 -q -o json --server 198.19.0.10" \
        -n "probe (discovers kube-dns)" \
        "$bin probe --netns $client --stats-netns $node --count 1 -q -o json"
    cat "/tmp/ctdiag-bench-discovery-$mode.md"
    echo "$lister: $(ip netns exec "$node" $lister | wc -l) lines"
    "$bin" services --netns "$node" -o json >"/tmp/ctdiag-bench-discovery-$mode-netlink.json"
    CTDIAG_RULES_FROM=tools "$bin" services --netns "$node" -o json >"/tmp/ctdiag-bench-discovery-$mode-tools.json"
    if cmp -s "/tmp/ctdiag-bench-discovery-$mode-netlink.json" "/tmp/ctdiag-bench-discovery-$mode-tools.json"; then
        echo "services -o json over netlink and with the listing tools: identical"
    else
        echo "services -o json over netlink and with the listing tools: DIFFERENT" >&2
        exit 1
    fi
    "$bin" services --netns "$node" | head -1
    echo "services found: $(grep -c '"proxy_mode"' "/tmp/ctdiag-bench-discovery-$mode-netlink.json")"
    "$bin" probe --netns "$client" --stats-netns "$node" --count 1 -q -o json |
        sed -n 's/.*"server_from": "\(.*\)".*/server found: \1/p'
}

"$bin" lab up --prefix "$prefix" >/dev/null
iptables_rules | ip netns exec "$prefix-node" iptables-restore --noflush
measure iptables "iptables-save"

"$bin" lab up --prefix "$prefix" --proxy-mode nftables >/dev/null
nft_rules | ip netns exec "$prefix-node" nft -f -
measure nftables "nft list table ip kube-proxy"
