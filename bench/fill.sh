#!/usr/bin/env bash
# `ctdiag lab fill` next to conntrack-tools' bulk load (`conntrack -R FILE`,
# one `-I` line per entry: the fastest way the standard tool creates
# entries), both creating N UDP entries in a throwaway lab's node
# namespace, timed side by side with hyperfine (the table is flushed
# before every run). Then the kernel memory the entries hold (`Slab` in
# /proc/meminfo before and after one fill). Run as root:
#   bench/fill.sh            (N=250000; builds release first)
# Needs hyperfine and conntrack. All traffic stays inside the lab.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "bench/fill.sh: install hyperfine" >&2; exit 2; }
command -v conntrack >/dev/null || { echo "bench/fill.sh: install conntrack" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench/fill.sh: install time (/usr/bin/time)" >&2; exit 2; }
n=${N:-250000}
runs=${RUNS:-5}
bin=$(./install.sh --build-only)
prefix=bfill$$
work=$(mktemp -d)
trap '"$bin" lab down --prefix "$prefix" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
"$bin" lab up --prefix "$prefix" >/dev/null
node=$prefix-node
# The same tuples lab fill sends (source 198.18.1.3-254, ports from 1024),
# as conntrack -I lines; entries conntrack creates directly, without packets.
awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++)
    printf "-I -p udp -s 198.18.1.%d -d 198.18.250.1 --sport %d --dport 9 -t 30\n", 3 + i % 252, 1024 + int(i / 252) }' \
    >"$work/load.txt"
echo "kernel $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); nf_conntrack_max $(cat /proc/sys/net/netfilter/nf_conntrack_max); N=$n"
hyperfine -N --runs "$runs" --export-markdown "$work/fill.md" \
    --prepare "ip netns exec $node conntrack -F" \
    -n "conntrack -R ($n lines of -I)" "ip netns exec $node conntrack -R $work/load.txt" \
    -n "ctdiag lab fill --flows $n" "$bin lab fill --prefix $prefix --flows $n --to unrelated -o json"
cat "$work/fill.md"

# One more fill, checked against conntrack -C, with the memory it holds.
ip netns exec "$node" conntrack -F 2>/dev/null
sleep 1
slab_before=$(awk '/^Slab:/ { print $2 }' /proc/meminfo)
/usr/bin/time -o "$work/fill.time" -f '%e s elapsed, %S s system, %U s user' \
    "$bin" lab fill --prefix "$prefix" --flows "$n" --to unrelated -o json >"$work/fill.json"
slab_after=$(awk '/^Slab:/ { print $2 }' /proc/meminfo)
echo "that fill: $(tail -1 "$work/fill.time")"
count=$(ip netns exec "$node" conntrack -C)
echo "after one fill: conntrack -C = $count; $(grep -E '"(created|elapsed_ms|rounds)"' "$work/fill.json" | tr -d ' \n')"
echo "Slab: +$(( (slab_after - slab_before) / 1024 )) MiB, $(( (slab_after - slab_before) * 1024 / n )) bytes per entry"
