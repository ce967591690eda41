#!/usr/bin/env bash
# Build ctdiag in release mode and install the binary, shell completions and
# man pages under $PREFIX (default /usr/local), staged under $DESTDIR when set.
# Also installs what ctdiag and its lab need at run time (iptables, nftables,
# iproute2, conntrack) through the distribution's package manager when they are
# missing, unless --no-deps is given or DESTDIR is set (packaging).
#
#   ./install.sh                 build + install (+ runtime packages)
#   ./install.sh --no-deps       do not touch system packages
#   ./install.sh --uninstall     remove what install.sh installed
#   ./install.sh --build-only    build, print the binary's path, install nothing
#   PREFIX=$HOME/.local ./install.sh --no-deps
#   DESTDIR=/tmp/stage PREFIX=/usr ./install.sh
set -euo pipefail

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
root="${DESTDIR}${PREFIX}"
here=$(cd "$(dirname "$0")" && pwd)

mode=install
deps=yes
for arg in "$@"; do
    case "$arg" in
        --uninstall) mode=uninstall ;;
        --no-deps) deps=no ;;
        --build-only) mode=build ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
    esac
done
[ -n "$DESTDIR" ] && deps=no
[ "$mode" = build ] && deps=no

bin="$root/bin/ctdiag"
man_dir="$root/share/man/man1"
bash_completion="$root/share/bash-completion/completions/ctdiag"
zsh_completion="$root/share/zsh/site-functions/_ctdiag"
fish_completion="$root/share/fish/vendor_completions.d/ctdiag.fish"
other_completions="$root/share/ctdiag/completions"

say() { echo "install.sh: $*"; }

if [ "$mode" = uninstall ]; then
    removed=0
    for f in "$bin" "$bash_completion" "$zsh_completion" "$fish_completion" "$man_dir"/ctdiag.1 "$man_dir"/ctdiag-*.1; do
        if [ -e "$f" ]; then rm -f "$f"; say "removed $f"; removed=$((removed + 1)); fi
    done
    if [ -d "$other_completions" ]; then rm -rf "$root/share/ctdiag"; say "removed $root/share/ctdiag"; removed=$((removed + 1)); fi
    [ "$removed" -eq 0 ] && say "nothing to remove under $root"
    exit 0
fi

# Runtime packages: the lab, and probe's search for the kube-dns ClusterIP in
# kube-proxy's rules, shell out to these.
if [ "$deps" = yes ]; then
    missing=()
    command -v ip >/dev/null 2>&1 || missing+=(iproute2)
    command -v iptables-restore >/dev/null 2>&1 || missing+=(iptables)
    command -v nft >/dev/null 2>&1 || missing+=(nftables)
    command -v conntrack >/dev/null 2>&1 || missing+=(conntrack)
    if [ "${#missing[@]}" -gt 0 ]; then
        if [ "$(id -u)" -ne 0 ]; then
            say "missing runtime packages: ${missing[*]} (run as root to install them, or pass --no-deps)"
        elif command -v apt-get >/dev/null 2>&1; then
            say "installing ${missing[*]} with apt-get"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
        elif command -v dnf >/dev/null 2>&1; then
            pkgs=("${missing[@]/conntrack/conntrack-tools}")
            say "installing ${pkgs[*]} with dnf"
            dnf install -y "${pkgs[@]/iproute2/iproute}"
        elif command -v apk >/dev/null 2>&1; then
            pkgs=("${missing[@]/conntrack/conntrack-tools}")
            say "installing ${pkgs[*]} with apk"
            apk add "${pkgs[@]}"
        else
            say "missing runtime packages: ${missing[*]}; install them with your package manager"
        fi
    else
        say "runtime tools present (ip, iptables-restore, conntrack)"
    fi
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "install.sh: cargo is not installed; install Rust from your distribution (apt-get install cargo) or with rustup, then rerun" >&2
    exit 1
fi

# Why a static, non-PIE binary on glibc hosts: `ctdiag stats` must start as
# fast as `conntrack -S`; without the dynamic loader and PIE relocations it
# touches a third fewer pages (BENCHMARKS.md). Host tools (build scripts,
# proc macros) are built normally: --target keeps RUSTFLAGS off them.
host=$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')
built=""
if [ "$mode" != build ]; then say "building release binary"; fi
case "$host" in
    *-linux-gnu)
        if (cd "$here" && RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
            cargo build --release --locked --quiet --target "$host" 2>/dev/null); then
            built="$here/target/$host/release/ctdiag"
        else
            say "static build failed (is libc6-dev installed?); building a dynamic binary instead" >&2
        fi
        ;;
esac
if [ -z "$built" ]; then
    (cd "$here" && cargo build --release --locked --quiet)
    built="$here/target/release/ctdiag"
fi
if [ "$mode" = build ]; then
    echo "$built"
    exit 0
fi

install -d "$root/bin" "$man_dir" "$(dirname "$bash_completion")" "$(dirname "$zsh_completion")" \
    "$(dirname "$fish_completion")" "$other_completions"
install -m 0755 "$built" "$bin"
install -m 0644 "$here"/man/*.1 "$man_dir/"
install -m 0644 "$here/completions/ctdiag.bash" "$bash_completion"
install -m 0644 "$here/completions/_ctdiag" "$zsh_completion"
install -m 0644 "$here/completions/ctdiag.fish" "$fish_completion"
install -m 0644 "$here/completions/ctdiag.elv" "$here/completions/_ctdiag.ps1" "$other_completions/"
say "installed $bin, man pages in $man_dir, completions for bash, zsh, fish (elvish, powershell in $other_completions)"
