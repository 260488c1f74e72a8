#!/usr/bin/env bash
# fetch-debian-packages.sh DEST PACKAGE...
#
# Unpacks Debian binary packages under DEST without touching the system, for tests that need
# a real program or library (NVIDIA's libnvidia-ml1 and nvidia-smi, Prometheus): apt runs on
# a private sources list, package lists and cache in a temporary directory, and each package
# is unpacked with dpkg-deb -x, not installed (no maintainer scripts, no service started, no
# root needed). Dependencies are not fetched: the callers need files that run without them.
# The callers are scripts/fetch-nvidia-debian.sh and scripts/fetch-prometheus-debian.sh,
# which say where the files they want ended up.
#
# Nothing on stdout; progress and errors on stderr. Does nothing when DEST already holds
# every PACKAGE (listed in DEST/.debian-packages once unpacked); parallel runs (test
# processes) wait for one another.
#
# The Debian archive mirror and suite are those of this machine's own apt sources when it is
# Debian (else deb.debian.org, bookworm); HYPOMNESIS_DEBIAN_MIRROR and HYPOMNESIS_DEBIAN_SUITE
# override them. This is the only file in the repository that names the mirror.
set -euo pipefail

say() { printf 'fetch-debian-packages: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

[ $# -ge 2 ] || die "usage: $0 DEST PACKAGE..."
mkdir -p "$1" || die "cannot create $1"
dest=$(cd "$1" && pwd)
shift
packages=("$@")
stamp=$dest/.debian-packages

have_all() {
    local p
    [ -f "$stamp" ] || return 1
    for p in "${packages[@]}"; do
        grep -qxF "$p" "$stamp" || return 1
    done
}

if have_all; then
    exit 0
fi

if command -v flock >/dev/null 2>&1; then
    exec 9>"$dest/.fetch.lock"
    flock 9
    if have_all; then
        exit 0
    fi
fi

for tool in apt-get dpkg-deb; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool not found: this script needs a Debian-like system (apt-get and dpkg-deb)"
done

keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || die "$keyring not readable: install the debian-archive-keyring package"

# This machine's Debian mirror: the first apt source whose URI ends in /debian.
system_mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        sed -n 's/^[[:space:]]*URIs:[[:space:]]*//p' "$f" | tr ' ' '\n'
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        sed -n 's/^[[:space:]]*deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\2/p' "$f"
    done
}
mirror=${HYPOMNESIS_DEBIAN_MIRROR:-$(system_mirror | grep -E '^https?://[^[:space:]]+/debian/?$' | head -n 1 || true)}
mirror=${mirror:-http://deb.debian.org/debian}
mirror=${mirror%/}

suite=${HYPOMNESIS_DEBIAN_SUITE:-}
if [ -z "$suite" ] && [ -r /etc/os-release ]; then
    suite=$(. /etc/os-release && [ "${ID:-}" = debian ] && printf '%s' "${VERSION_CODENAME:-}" || true)
fi
suite=${suite:-bookworm}

work=$(mktemp -d "${TMPDIR:-/tmp}/fetch-debian-packages.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs" "$work/root"
printf 'deb [signed-by=%s] %s %s main contrib non-free non-free-firmware\n' \
    "$keyring" "$mirror" "$suite" >"$work/sources.list"

apt_opts=(
    -o "Dir::Etc::SourceList=$work/sources.list"
    -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$work/lists"
    -o "Dir::Cache=$work/cache"
    -o Debug::NoLocking=true
)
# As root apt hands downloads to the _apt user, who cannot write into our private directory.
if [ "$(id -u)" -eq 0 ]; then
    apt_opts+=(-o APT::Sandbox::User=root)
fi

say "reading the package lists of $mirror $suite (main contrib non-free) into $work"
if ! apt-get "${apt_opts[@]}" -q --error-on=any update >"$work/update.log" 2>&1; then
    cat "$work/update.log" >&2
    die "apt-get update of $mirror $suite failed (log above): cannot download ${packages[*]}; check the network or set HYPOMNESIS_DEBIAN_MIRROR"
fi
say "downloading ${packages[*]}"
if ! (cd "$work/debs" && apt-get "${apt_opts[@]}" -q download "${packages[@]}") >"$work/download.log" 2>&1; then
    cat "$work/download.log" >&2
    die "apt-get download ${packages[*]} from $mirror $suite failed (log above)"
fi

for deb in "$work"/debs/*.deb; do
    [ -e "$deb" ] || die "apt-get download produced no .deb files"
    say "unpacking $(basename "$deb")"
    dpkg-deb -x "$deb" "$work/root" || die "dpkg-deb -x $deb failed"
done
# Into place only once every package unpacked, so that a failed run leaves nothing half done;
# the stamp last, so that a reader that sees it sees every file.
cp -a "$work/root/." "$dest/" || die "cannot copy the unpacked files into $dest"
printf '%s\n' "${packages[@]}" >>"$stamp"
