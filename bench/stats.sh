#!/usr/bin/env bash
# Whole-process time of `ctdiag stats` next to `conntrack -S` (and
# `conntrack -S` + `conntrack -C`, which is what ctdiag reports), measured
# side by side with hyperfine on the same kernel state: a throwaway lab
# namespace with traffic in its conntrack table. Run as root:
#   bench/stats.sh            (builds release first)
# Needs hyperfine and conntrack (apt-get install hyperfine conntrack).
# Every timed command must exit 0 (no `hyperfine -i`): a healthy lab's
# `ctdiag stats` finds nothing, so an exit 1 or 2 stops the benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "bench/stats.sh: install hyperfine" >&2; exit 2; }
command -v conntrack >/dev/null || { echo "bench/stats.sh: install conntrack" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench/stats.sh: install time (/usr/bin/time)" >&2; exit 2; }
# The binary install.sh installs (static on glibc hosts).
bin=$(./install.sh --build-only)
prefix=bstat$$
trap '"$bin" lab down --prefix "$prefix" >/dev/null 2>&1 || true' EXIT
"$bin" lab up --prefix "$prefix" >/dev/null
# Some entries so both tools have a populated table to read (bounded: 200
# lookups at the lab's ClusterIP from the lab's client pod).
for _ in $(seq 1 200); do
    ip netns exec "$prefix-client" dig +short +tries=1 +timeout=1 @198.19.0.10 \
        kubernetes.default.svc.cluster.local A >/dev/null || true
done
node=$prefix-node
echo "kernel $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); conntrack entries in $node: $(ip netns exec "$node" conntrack -C)"
hyperfine -N --warmup 20 --runs 300 --export-markdown /tmp/ctdiag-bench-stats.md \
    -n "conntrack -S" "ip netns exec $node conntrack -S" \
    -n "conntrack -S; conntrack -C" "ip netns exec $node sh -c 'conntrack -S >/dev/null; conntrack -C'" \
    -n "ctdiag stats -o json" "ip netns exec $node $bin stats -o json" \
    -n "ctdiag stats (table)" "ip netns exec $node $bin stats --color never"
cat /tmp/ctdiag-bench-stats.md

# Minor page faults of one run each (/usr/bin/time).
for cmd in "conntrack -S" "$bin stats -o json"; do
    ip netns exec "$node" /usr/bin/time -o /tmp/ctdiag-bench-stats.time -f '%R' $cmd >/dev/null
    echo "page faults: $cmd: $(tail -1 /tmp/ctdiag-bench-stats.time)"
done

# Instruction counts (callgrind): independent of machine load, repeatable.
if command -v valgrind >/dev/null; then
    for cmd in "conntrack -S" "conntrack -C" "$bin stats -o json"; do
        n=$(ip netns exec "$node" valgrind --tool=callgrind --callgrind-out-file=/dev/null $cmd 2>&1 >/dev/null |
            sed -n 's/.*Collected : //p')
        echo "instructions: $cmd: $n"
    done
fi
