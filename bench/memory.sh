#!/usr/bin/env bash
# Peak memory of `ctdiag probe` against run length, printed as figures for
# BENCHMARKS.md. Run as root:   bench/memory.sh [LONG_SECONDS]   (default 60)
#
# From the lab's client pod to the kube-dns ClusterIP (DNAT in the node
# namespace, embedded responders behind it), `--rate 0` (as fast as the
# lab answers), once for 5 s and once for LONG_SECONDS, each under
# `/usr/bin/time -v`: its "Maximum resident set size" is the peak RSS. The
# probe keeps latencies in a fixed-size histogram, so the long run should
# peak within 2 MiB of the short one whatever its length.
#
# OLD_BIN=path/to/ctdiag runs the same two probes with another build (e.g.
# one from before the histogram) in the same run, for comparison.
#
# Bounded: two (or four) probes of fixed duration; all traffic stays inside
# the lab's namespaces. Needs /usr/bin/time (package `time`) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
long=${1:-60}
[ -x /usr/bin/time ] || { echo "bench/memory.sh: install time (/usr/bin/time)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "bench/memory.sh: install python3" >&2; exit 2; }
# The binary `cargo build --release` makes (dynamic, PIE), not the static
# one `./install.sh --build-only` makes: every figure of this script in
# BENCHMARKS.md was taken with this one.
cargo build --release --quiet
bin=$PWD/target/release/ctdiag
prefix=bmem$$
work=$(mktemp -d)
cleanup() {
    "$bin" lab down --prefix "$prefix" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "kernel $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin" lab up --prefix "$prefix" >/dev/null 2>&1
client=$prefix-client
node=$prefix-node

# probe BIN SECONDS TAG: prints "TAG SECONDS lookups peak_kib". The probe
# may exit 1 (it lost lookups: at --rate 0 a loaded machine can drop some,
# which does not change its memory); 2 (could not run) stops the benchmark.
probe() {
    local binary=$1 seconds=$2 tag=$3 status=0
    /usr/bin/time -v -o "$work/$tag-$seconds.time" \
        "$binary" probe --netns "$client" --stats-netns "$node" --rate 0 --concurrency 64 \
        --timeout 1000 --duration "${seconds}s" -o json >"$work/$tag-$seconds.json" || status=$?
    if [ "$status" -gt 1 ]; then
        echo "bench/memory.sh: $binary probe exited $status" >&2
        exit 1
    fi
    local kib lookups
    kib=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$work/$tag-$seconds.time")
    lookups=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["lookups"])' \
        "$work/$tag-$seconds.json")
    echo "$tag $seconds $lookups $kib"
}

report() {
    local tag=$1 binary=$2
    # Not `< <(probe ...)`: an exit in a process substitution would not
    # stop the script.
    probe "$binary" 5 "$tag" >"$work/short"
    probe "$binary" "$long" "$tag" >"$work/long"
    read -r _ s1 l1 k1 <"$work/short"
    read -r _ s2 l2 k2 <"$work/long"
    printf '%-8s %5s s: %9s lookups, peak RSS %8s KiB\n' "$tag" "$s1" "$l1" "$k1"
    printf '%-8s %5s s: %9s lookups, peak RSS %8s KiB\n' "$tag" "$s2" "$l2" "$k2"
    python3 -c 'import sys; d=(int(sys.argv[2])-int(sys.argv[1]))/1024; print("%-8s growth from %s s to %s s: %+.2f MiB (goal: within 2 MiB)" % (sys.argv[3], sys.argv[4], sys.argv[5], d))' \
        "$k1" "$k2" "$tag" 5 "$long"
}

echo
echo "== ctdiag probe --rate 0 --concurrency 64 from $client through 198.19.0.10 =="
report current "$bin"
if [ -n "${OLD_BIN:-}" ]; then
    report old "$OLD_BIN"
fi
