#!/usr/bin/env bash
# What reading the node's kube-proxy rules costs ctdiag on a node with many
# Services, next to the tool that lists those rules (iptables-save, nft list
# table), measured side by side with hyperfine on the same rules, at
# several cluster sizes: the lab's node gets N extra Services with 3
# endpoints each (addresses in 198.18.0.0/15, never contacted), in iptables
# mode and then in nftables mode. Timed, for each size and mode:
#   - the listing tool (to /dev/null, and into a pipe as any reader makes it
#     write: nft writes its listing in many small writes);
#   - `services -o json`: every Service, the full read (over netlink, and
#     with the listing tools: CTDIAG_RULES_FROM=tools);
#   - `stale --service kube-dns` and `probe --count 1` without --server
#     (discovers kube-dns): the targeted read of one Service (issue 17), and
#     the same with the full read (CTDIAG_SERVICE_READ=full);
#   - `probe --count 1 --server` (no discovery at all), for scale.
# Then, untimed: `services -o json` must be byte for byte the same over
# netlink and with the listing tools, `stale --service kube-dns -o json`
# the same with the targeted and the full read (timing fields aside), and
# one `doctor` run must finish inside its budget with every check run (its
# duration and each check's status are printed). Run as root:
#   bench/discovery.sh [N ...]     (default: 2000 10000 20000; builds release first)
# SKIP_FULL=1 leaves the full reads of one Service and the listing tools'
# read of every Service out of the timed commands (they are still run once
# for the identity checks). RUNS=K sets hyperfine's runs per command (default: 10 and 1 warm-up up to
# 2,000 Services, 3 up to 10,000, 1 above, without warm-up). The listing
# deadline is raised to 120 s (CTDIAG_LISTING_DEADLINE_MS, default 10 s) for
# every command: on a loaded machine the full reads of 10,000 Services and
# more (the listing tools too) take longer than 10 s in nftables mode.
# Needs hyperfine (apt-get install hyperfine). Every timed command must exit
# 0 (no `hyperfine -i`): on the lab's healthy node none of them finds a
# problem.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "bench/discovery.sh: install hyperfine" >&2; exit 2; }
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(2000 10000 20000)
bin=$(./install.sh --build-only)
export CTDIAG_LISTING_DEADLINE_MS=${CTDIAG_LISTING_DEADLINE_MS:-120000}
prefix=bdisc$$
trap '"$bin" lab down --prefix "$prefix" >/dev/null 2>&1 || true' EXIT

# kube-proxy iptables-mode rules for N Services (nat table, added to the
# lab's own with --noflush). Service i: ClusterIP 198.19.(i/250+1).(i%250+1)
# port 80, endpoints 198.18.(i/250+100).(i%250+1):8081-8083.
iptables_rules() {
    awk -v n="$1" 'BEGIN {
        print "*nat"
        for (i = 1; i <= n; i++) {
            printf ":KUBE-SVC-B%d - [0:0]\n", i
            for (e = 1; e <= 3; e++) printf ":KUBE-SEP-B%d-%d - [0:0]\n", i, e
        }
        for (i = 1; i <= n; i++) {
            cip = sprintf("198.19.%d.%d", int(i / 250) + 1, i % 250 + 1)
            eip = sprintf("198.18.%d.%d", int(i / 250) + 100, i % 250 + 1)
            spn = "bench/svc" i ":http"
            printf "-A KUBE-SERVICES -d %s/32 -p tcp -m comment --comment \"%s cluster IP\" -m tcp --dport 80 -j KUBE-SVC-B%d\n", cip, spn, i
            for (e = 1; e <= 3; e++) {
                ep = eip ":" (8080 + e)
                stat = (e == 1) ? "-m statistic --mode random --probability 0.33333333349 " : (e == 2) ? "-m statistic --mode random --probability 0.50000000000 " : ""
                printf "-A KUBE-SVC-B%d -m comment --comment \"%s -> %s\" %s-j KUBE-SEP-B%d-%d\n", i, spn, ep, stat, i, e
                printf "-A KUBE-SEP-B%d-%d -p tcp -m comment --comment \"%s\" -m tcp -j DNAT --to-destination %s\n", i, e, spn, ep
            }
        }
        print "COMMIT"
    }'
}

# The same Services in kube-proxy's nftables table (added to the lab's).
nft_rules() {
    awk -v n="$1" 'BEGIN {
        for (i = 1; i <= n; i++) {
            eip = sprintf("198.18.%d.%d", int(i / 250) + 100, i % 250 + 1)
            printf "add chain ip kube-proxy service-B%d-bench/svc%d/tcp/http\n", i, i
            for (e = 1; e <= 3; e++) printf "add chain ip kube-proxy endpoint-B%d%d-bench/svc%d/tcp/http__%s/%d\n", i, e, i, eip, 8080 + e
        }
        for (i = 1; i <= n; i++) {
            cip = sprintf("198.19.%d.%d", int(i / 250) + 1, i % 250 + 1)
            eip = sprintf("198.18.%d.%d", int(i / 250) + 100, i % 250 + 1)
            svc = sprintf("service-B%d-bench/svc%d/tcp/http", i, i)
            vmap = ""
            for (e = 1; e <= 3; e++) {
                chain = sprintf("endpoint-B%d%d-bench/svc%d/tcp/http__%s/%d", i, e, i, eip, 8080 + e)
                printf "add rule ip kube-proxy %s meta l4proto tcp dnat to %s:%d\n", chain, eip, 8080 + e
                vmap = vmap (e > 1 ? " , " : "") (e - 1) " : goto " chain
            }
            printf "add rule ip kube-proxy %s numgen random mod 3 vmap { %s }\n", svc, vmap
            printf "add element ip kube-proxy service-ips { %s . tcp . 80 : goto %s }\n", cip, svc
        }
    }'
}

measure() {
    local mode=$1 lister=$2 services=$3
    local node=$prefix-node client=$prefix-client
    local runs=${RUNS:-$([ "$services" -le 2000 ] && echo 10 || { [ "$services" -le 10000 ] && echo 3 || echo 1; })}
    local warmup=$([ "$services" -le 2000 ] && echo 1 || echo 0)
    local out=/tmp/ctdiag-bench-discovery-$mode-$services
    local probe="$bin probe --netns $client --stats-netns $node --count 1 -q -o json"
    # The full reads of one Service and the listing tools' read of all,
    # for comparison (left out with SKIP_FULL=1: at 20,000 Services in
    # nftables mode each takes tens of seconds on a loaded machine).
    local full=()
    [ -n "${SKIP_FULL:-}" ] || full=(
        -n "services -o json (listing tools)" "env CTDIAG_RULES_FROM=tools $bin services --netns $node -o json"
        -n "stale --service kube-dns (full read)"
        "env CTDIAG_SERVICE_READ=full $bin stale --netns $node --service kube-dns -o json"
        -n "probe (discovers kube-dns, full read)" "env CTDIAG_SERVICE_READ=full $probe")
    echo
    echo "== $mode mode: $services Services + kube-dns; kernel $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); $runs runs each, $warmup warm-up"
    hyperfine -N --warmup "$warmup" --runs "$runs" --export-markdown "$out.md" --export-json "$out.json" \
        -n "$lister" "ip netns exec $node $lister" \
        -n "$lister | cat" "sh -c 'ip netns exec $node $lister | cat >/dev/null'" \
        -n "services -o json" "$bin services --netns $node -o json" \
        -n "stale --service kube-dns" "$bin stale --netns $node --service kube-dns -o json" \
        -n "probe (discovers kube-dns)" "$probe" \
        -n "probe --server (no discovery)" "$probe --server 198.19.0.10" \
        "${full[@]}"
    cat "$out.md"
    # Each command's mean as a ratio of the listing tool's, same run.
    python3 - "$out.json" <<'EOF'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
base = results[0]["mean"]
for r in results:
    print(f"{r['command']}: mean {r['mean'] * 1000:.1f} ms, min {r['min'] * 1000:.1f} ms, {r['mean'] / base:.3f}x {results[0]['command']}")
EOF
    echo "$lister: $(ip netns exec "$node" $lister | wc -l) lines"
    "$bin" services --netns "$node" -o json >"$out-netlink.json"
    CTDIAG_RULES_FROM=tools "$bin" services --netns "$node" -o json >"$out-tools.json"
    if cmp -s "$out-netlink.json" "$out-tools.json"; then
        echo "services -o json over netlink and with the listing tools: identical"
    else
        echo "services -o json over netlink and with the listing tools: DIFFERENT" >&2
        exit 1
    fi
    echo "services found: $(grep -c '"proxy_mode"' "$out-netlink.json")"
    # What the rules say about each Service port (not what the conntrack
    # table holds at the moment: the timed probes' entries expire between
    # two runs).
    local untimed='import json,sys
d = json.load(sys.stdin)
keep = ("service", "cluster_ip", "port", "proxy_mode", "endpoints", "source", "notes")
print(json.dumps([{k: s.get(k) for k in keep} for s in d.get("services", [d])], sort_keys=True))'
    local targeted whole
    targeted=$("$bin" stale --netns "$node" --service kube-dns -o json | python3 -c "$untimed")
    whole=$(CTDIAG_SERVICE_READ=full "$bin" stale --netns "$node" --service kube-dns -o json | python3 -c "$untimed")
    if [ "$targeted" = "$whole" ]; then
        echo "stale --service kube-dns -o json, targeted and full read: identical"
    else
        echo "stale --service kube-dns -o json, targeted and full read: DIFFERENT" >&2
        diff <(echo "$targeted" | python3 -m json.tool) <(echo "$whole" | python3 -m json.tool) >&2 || true
        exit 1
    fi
    $probe | sed -n 's/.*"server_from": "\(.*\)".*/server found: \1/p'
    "$bin" doctor --netns "$node" --probe-netns "$client" -o json | python3 -c '
import json, sys
d = json.load(sys.stdin)
statuses = {}
for c in d["checks"]:
    statuses[c["status"]] = statuses.get(c["status"], 0) + 1
print(f"doctor: {d['"'"'duration_s'"'"']:.2f} s of its {d['"'"'budget_s'"'"']} s budget, verdict {d['"'"'verdict'"'"']}, {len(d['"'"'checks'"'"'])} checks: {statuses}")
for c in d["checks"]:
    if c["status"] != "ok":
        print(f"  {c['"'"'status'"'"']}: {json.dumps(c)[:400]}")' || true
}

for services in "${sizes[@]}"; do
    "$bin" lab up --prefix "$prefix" >/dev/null
    iptables_rules "$services" | ip netns exec "$prefix-node" iptables-restore --noflush
    measure iptables "iptables-save" "$services"

    "$bin" lab up --prefix "$prefix" --proxy-mode nftables >/dev/null
    nft_rules "$services" | ip netns exec "$prefix-node" nft -f -
    measure nftables "nft list table ip kube-proxy" "$services"
done
