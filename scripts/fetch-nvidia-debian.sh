#!/usr/bin/env bash
# fetch-nvidia-debian.sh DEST
#
# Puts Debian's real NVIDIA user-space binaries — libnvidia-ml.so.1 (package libnvidia-ml1)
# and nvidia-smi (package nvidia-smi), from the non-free component — under DEST, without
# touching the system: apt runs on a private sources list, package lists and cache in a
# temporary directory, and the packages are unpacked with dpkg-deb -x, not installed.
# On a machine without an NVIDIA kernel driver they fail the way a user's machine without a
# loaded driver does (NVML 9, nvidia-smi exit 9), which the tests rely on.
#
# Prints, on stdout, two lines:
#   NVML_LIB=<absolute path of libnvidia-ml.so.1>
#   NVIDIA_SMI=<absolute path of the nvidia-smi executable>
# Everything else goes to stderr. Does nothing but print them when DEST already has both.
#
# The Debian mirror and suite are those of this machine's own apt sources when it is Debian
# (else deb.debian.org, bookworm); HYPOMNESIS_DEBIAN_MIRROR and HYPOMNESIS_DEBIAN_SUITE
# override them.
set -euo pipefail

say() { printf 'fetch-nvidia-debian: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

[ $# -eq 1 ] || die "usage: $0 DEST"
mkdir -p "$1" || die "cannot create $1"
dest=$(cd "$1" && pwd)

# The files, wherever the packages put them (Debian: usr/lib/x86_64-linux-gnu/nvidia/current/
# and usr/lib/nvidia/current/).
find_lib() { find "$dest" -name libnvidia-ml.so.1 \( -type f -o -type l \) 2>/dev/null | sort | head -n 1; }
find_smi() { find "$dest" -name nvidia-smi -type f -perm -u+x 2>/dev/null | sort | head -n 1; }

report() {
    local lib smi
    lib=$(find_lib)
    smi=$(find_smi)
    [ -n "$lib" ] && [ -n "$smi" ] || return 1
    [ -e "$lib" ] || return 1 # a dangling symlink is not a library
    printf 'NVML_LIB=%s\nNVIDIA_SMI=%s\n' "$lib" "$smi"
}

if report; then
    exit 0
fi

# Parallel runs (test processes under cargo-nextest) wait for one another.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$dest/.fetch.lock"
    flock 9
    if report; then
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

work=$(mktemp -d "${TMPDIR:-/tmp}/fetch-nvidia-debian.XXXXXX")
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
    die "apt-get update of $mirror $suite failed (log above): cannot download the NVIDIA packages; check the network or set HYPOMNESIS_DEBIAN_MIRROR"
fi
say "downloading libnvidia-ml1 and nvidia-smi"
if ! (cd "$work/debs" && apt-get "${apt_opts[@]}" -q download libnvidia-ml1 nvidia-smi) >"$work/download.log" 2>&1; then
    cat "$work/download.log" >&2
    die "apt-get download libnvidia-ml1 nvidia-smi from $mirror $suite failed (log above)"
fi

for deb in "$work"/debs/*.deb; do
    [ -e "$deb" ] || die "apt-get download produced no .deb files"
    say "unpacking $(basename "$deb")"
    dpkg-deb -x "$deb" "$work/root" || die "dpkg-deb -x $deb failed"
done
# Into place only once both packages unpacked, so that a failed run leaves nothing half done.
cp -a "$work/root/." "$dest/" || die "cannot copy the unpacked files into $dest"

report || die "the packages unpacked, but libnvidia-ml.so.1 or nvidia-smi is not among their files under $dest"
