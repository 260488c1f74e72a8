#!/usr/bin/env bash
# fetch-nvidia-debian.sh DEST
#
# Puts Debian's real NVIDIA user-space binaries — libnvidia-ml.so.1 (package libnvidia-ml1)
# and nvidia-smi (package nvidia-smi), from the non-free component — under DEST, without
# touching the system (scripts/fetch-debian-packages.sh unpacks them; see there for the
# mirror and suite). On a machine without an NVIDIA kernel driver they fail the way a user's
# machine without a loaded driver does (NVML 9, nvidia-smi exit 9), which the tests rely on.
#
# Prints, on stdout, two lines:
#   NVML_LIB=<absolute path of libnvidia-ml.so.1>
#   NVIDIA_SMI=<absolute path of the nvidia-smi executable>
# Everything else goes to stderr. Downloads nothing when DEST already has both.
set -euo pipefail

die() {
    printf 'fetch-nvidia-debian: error: %s\n' "$*" >&2
    exit 1
}

[ $# -eq 1 ] || die "usage: $0 DEST"
"$(dirname "$0")/fetch-debian-packages.sh" "$1" libnvidia-ml1 nvidia-smi
dest=$(cd "$1" && pwd)

# The files, wherever the packages put them (Debian: usr/lib/x86_64-linux-gnu/nvidia/current/
# and usr/lib/nvidia/current/).
lib=$(find "$dest" -name libnvidia-ml.so.1 \( -type f -o -type l \) 2>/dev/null | sort | head -n 1)
smi=$(find "$dest" -name nvidia-smi -type f -perm -u+x 2>/dev/null | sort | head -n 1)
[ -n "$lib" ] && [ -e "$lib" ] && [ -n "$smi" ] ||
    die "the packages unpacked, but libnvidia-ml.so.1 or nvidia-smi is not among their files under $dest"
printf 'NVML_LIB=%s\nNVIDIA_SMI=%s\n' "$lib" "$smi"
