#!/usr/bin/env bash
# fetch-prometheus-debian.sh DEST
#
# Puts Debian's Prometheus server (package prometheus) under DEST, without installing it: no
# service is started and no root is needed (scripts/fetch-debian-packages.sh unpacks it; see
# there for the mirror and suite). The hmn serve tests scrape the exporter with it.
#
# Prints, on stdout, one line:
#   PROMETHEUS=<absolute path of the prometheus executable>
# Everything else goes to stderr. Downloads nothing when DEST already has it.
set -euo pipefail

die() {
    printf 'fetch-prometheus-debian: error: %s\n' "$*" >&2
    exit 1
}

[ $# -eq 1 ] || die "usage: $0 DEST"
"$(dirname "$0")/fetch-debian-packages.sh" "$1" prometheus
dest=$(cd "$1" && pwd)

binary=$dest/usr/bin/prometheus
[ -x "$binary" ] || die "the package unpacked, but $binary is not there"
printf 'PROMETHEUS=%s\n' "$binary"
