#!/usr/bin/env bash
# Behaviour unchanged (issue 16 acceptance): the JSON of every command on the lab, printed by two
# builds of ctdiag on the same lab state, diffed. Run as root:
#   bench/json-identity.sh OLD_BIN NEW_BIN
# e.g. OLD_BIN built from `git worktree add /tmp/old <commit before> && cargo build` there.
#
# One lab (its own prefix, torn down on exit, also on Ctrl-C or a failure); each command runs
# with OLD_BIN and then at once with NEW_BIN, and their outputs and exit statuses are compared:
#   - byte for byte: `services` (the lab's rules);
#   - byte for byte with the values that change between two runs masked: `lab up` (run by each
#     binary in turn; the DNS servers' pids), `lab status` (the sticky clients' query counters),
#     `stale` (each entry's `expires_s` counts down, `table_entries` counts the whole node
#     table, which other lab traffic moves; `state`
#     goes from SEEN_REPLY to ASSURED as the clients keep querying);
#   - key paths and JSON types only (the values are counters and timings that move between two
#     runs): `stats`, `probe`, `compare`, `doctor`.
# First on the healthy lab, then after `lab scenario stale-endpoint` (endpoint 2 gone from the
# rules, its entries kept: findings, `stale` with entries, exit status 1).
# Prints each difference (diff -u, OLD then NEW) and exits 1 when any, 0 when none, 2 when it
# could not run (a command of either binary exiting 2, "could not tell", counts as that). Every packet stays in the lab's namespaces: probe, compare and doctor run from
# the lab's client pod (--netns) against the lab's ClusterIP, a bounded number of lookups each.
set -euo pipefail
if [ $# -ne 2 ] || [ ! -x "$1" ] || [ ! -x "$2" ]; then
    echo "usage: bench/json-identity.sh OLD_BIN NEW_BIN (two ctdiag executables)" >&2
    exit 2
fi
for tool in python3 diff timeout; do
    command -v "$tool" >/dev/null || { echo "bench/json-identity.sh: install $tool" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "bench/json-identity.sh: run as root (the lab)" >&2; exit 2; }
old=$(realpath "$1")
new=$(realpath "$2")
prefix=jid$$
node=$prefix-node
client=$prefix-client
work=$(mktemp -d)
cleanup() {
    "$new" lab down --prefix "$prefix" >/dev/null 2>&1 || "$old" lab down --prefix "$prefix" \
        >/dev/null 2>&1 || echo "bench/json-identity.sh: could not remove lab $prefix" >&2
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 2' INT TERM

# The normalizer: `mask` replaces the values named in MASK (a regex of keys) by a placeholder in
# the raw text (the rest stays byte for byte); `keys` prints each key path (arrays as []) with
# its JSON type, sorted and unique. Input that is not JSON is printed as it is, so a difference
# there shows too.
cat > "$work/norm.py" <<'PY'
import json, re, sys
mode, text = sys.argv[1], sys.stdin.read()
if mode == "exact":
    sys.stdout.write(text)
elif mode == "mask":
    sys.stdout.write(re.sub(r'("(?:%s)": )(-?[0-9.]+|null|true|false|"[^"]*")' % sys.argv[2], r'\1"<varies>"', text))
elif mode == "keys":
    try:
        doc = json.loads(text)
    except ValueError:
        sys.stdout.write("not JSON:\n" + text)
        sys.exit(0)
    names = {dict: "object", list: "array", str: "string", bool: "bool", int: "number",
             float: "number", type(None): "null"}
    paths = set()
    def walk(value, path):
        paths.add("%s\t%s" % (path or ".", names[type(value)]))
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, "%s.%s" % (path, key))
        elif isinstance(value, list):
            for item in value:
                walk(item, path + "[]")
    walk(doc, "")
    sys.stdout.write("\n".join(sorted(paths)) + "\n")
PY

differences=0
compared=0
errors=0
# run NAME MODE [MASK] -- ARGS...: ARGS with each binary, normalized, diffed.
run() {
    local name=$1 mode=$2 mask=$3
    shift 4
    local bin which status
    for which in old new; do
        bin=${!which}
        status=0
        timeout 120 "$bin" "$@" > "$work/$name.$which.raw" 2> "$work/$name.$which.err" || status=$?
        if [ "$status" -ge 2 ]; then
            echo "bench/json-identity.sh: $which: ctdiag $* exited $status:" >&2
            cat "$work/$name.$which.err" >&2
            errors=$((errors + 1))
        fi
        { echo "exit status $status"; python3 "$work/norm.py" "$mode" "$mask" \
            < "$work/$name.$which.raw"; } > "$work/$name.$which"
    done
    compared=$((compared + 1))
    if diff -u --label "OLD ctdiag $*" --label "NEW ctdiag $*" "$work/$name.old" "$work/$name.new"
    then
        echo "same ($mode): ctdiag $*"
    else
        differences=$((differences + 1))
    fi
}

# `lab up` by each binary in turn (the second rebuilds the lab: up is idempotent).
for which in old new; do
    bin=${!which}
    timeout 120 "$bin" lab up --prefix "$prefix" -o json > "$work/up.$which.raw"
    python3 "$work/norm.py" mask pid < "$work/up.$which.raw" > "$work/up.$which"
done
compared=$((compared + 1))
if diff -u --label "OLD ctdiag lab up" --label "NEW ctdiag lab up" "$work/up.old" "$work/up.new"
then
    echo "same (mask pid): ctdiag lab up --prefix $prefix -o json"
else
    differences=$((differences + 1))
fi

lookups=(--netns "$client" --stats-netns "$node" --count 5)
for phase in healthy stale-endpoint; do
    if [ "$phase" = stale-endpoint ]; then
        timeout 120 "$new" lab scenario stale-endpoint --endpoint 2 --prefix "$prefix" >/dev/null
        # First, while the scenario's entries are fresh: every entry listed by both runs.
        run "$phase.stale" mask 'expires_s|table_entries|state' -- stale --netns "$node" -o json
    fi
    # The sticky clients (stale-endpoint) keep querying: their counters move.
    run "$phase.status" mask 'queries|answered|last_answered' -- \
        lab status --prefix "$prefix" -o json
    run "$phase.services" exact '' -- services --netns "$node" -o json
    run "$phase.stats" keys '' -- stats --netns "$node" -o json
    run "$phase.probe" keys '' -- probe "${lookups[@]}" -o json
    run "$phase.probe-tcp" keys '' -- probe "${lookups[@]}" --mode tcp -o json
    run "$phase.compare" keys '' -- compare "${lookups[@]}" --rounds 1 -o json
    run "$phase.doctor" keys '' -- doctor --netns "$node" --probe-netns "$client" \
        --pods "$client" -o json
done

echo "$compared compared, $differences different, $errors runs that could not tell" \
    "(OLD $old, NEW $new)"
[ "$errors" -eq 0 ] || exit 2
[ "$differences" -eq 0 ]
