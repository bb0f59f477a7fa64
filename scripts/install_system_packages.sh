#!/usr/bin/env bash
# Install what the emulated Corstone-300 (Cortex-M55) harness needs on Debian 12,
# as root, non-interactively; safe to run again (fast when all is in place).
#
#  1. Debian packages: QEMU 7.2 (mps3-an547 machine), the Arm GCC bare-metal
#     toolchain with newlib (semihosting via rdimon), clang 14 (the compiler that
#     vectorises for Helium), and host gcc/libc headers to build the QEMU plugin.
#  2. qemu-plugin.h, which no Debian binary package ships: it is taken from
#     Debian's qemu source package of the installed version (a deb-src entry is
#     added for Debian's own mirrors if none exists) and stored in
#     ${TVMSE_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/tvmse}/qemu-plugin-api/.
#
# The plugin itself (targets/cortex_m/runtime/insn_count_plugin.c) is compiled
# lazily by targets/cortex_m/qemu.py (ensure_plugin) into <cache>/qemu-plugins/.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

PACKAGES=(
    qemu-system-arm
    gcc-arm-none-eabi
    binutils-arm-none-eabi
    libnewlib-arm-none-eabi
    clang
    gcc
    libc6-dev
    xz-utils
)
CACHE_DIR="${TVMSE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tvmse}"
HEADER_DIR="$CACHE_DIR/qemu-plugin-api"
DEB_SRC_BASE=/etc/apt/sources.list.d/tvmse-deb-src
APT_UPDATED=0

say() { echo "[install_system_packages] $*"; }

apt_update_once() {
    if [ "$APT_UPDATED" = 0 ]; then
        say "apt-get update"
        apt-get update -q
        APT_UPDATED=1
    fi
}

missing_packages() {
    local pkg
    for pkg in "${PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -F "install ok installed" >/dev/null; then
            echo "$pkg"
        fi
    done
}

install_packages() {
    local missing
    missing=$(missing_packages)
    if [ -z "$missing" ]; then
        say "Debian packages already installed: ${PACKAGES[*]}"
        return
    fi
    apt_update_once
    say "apt-get install" $missing
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
}

# Print, as a deb-src entry, the apt sources entry FILE:N that apt reports for a
# Debian binary repository (N is a line for one-line .list files, a stanza for
# deb822 .sources files). Copying the entry keeps its options (Signed-By etc.),
# which apt requires to match between deb and deb-src of the same repository.
deb_src_entry() {
    local file=$1 n=$2
    case "$file" in
    *.sources)
        awk -v want="$n" 'BEGIN { RS = ""; FS = "\n" }
            NR == want { for (i = 1; i <= NF; i++) {
                             if ($i ~ /^Types:/) $i = "Types: deb-src"; print $i }
                         print "" }' "$file" ;;
    *)
        awk -v want="$n" 'NR == want { sub(/^deb[ \t]/, "deb-src "); print }' "$file" ;;
    esac
}

# Make qemu's source package VERSION visible to apt, adding deb-src entries that
# mirror the Debian binary repositories apt already uses if necessary.
ensure_deb_src() {
    local version=$1 entry
    apt_update_once
    if apt-cache showsrc qemu 2>/dev/null | grep -Fx "Version: $version" >/dev/null; then
        return
    fi
    say "adding deb-src entries for Debian's repositories: $DEB_SRC_BASE.{list,sources}"
    : >"$DEB_SRC_BASE.list"
    : >"$DEB_SRC_BASE.sources"
    for entry in $(apt-get indextargets --format '$(SOURCESENTRY)' \
        'Identifier: Packages' 'Origin: Debian' | sort -u); do
        case "${entry%:*}" in
        *.sources) deb_src_entry "${entry%:*}" "${entry##*:}" >>"$DEB_SRC_BASE.sources" ;;
        *) deb_src_entry "${entry%:*}" "${entry##*:}" >>"$DEB_SRC_BASE.list" ;;
        esac
    done
    [ -s "$DEB_SRC_BASE.list" ] || rm -f "$DEB_SRC_BASE.list"
    [ -s "$DEB_SRC_BASE.sources" ] || rm -f "$DEB_SRC_BASE.sources"
    if [ ! -e "$DEB_SRC_BASE.list" ] && [ ! -e "$DEB_SRC_BASE.sources" ]; then
        echo "no Debian repository in apt's sources: cannot fetch qemu-plugin.h" >&2
        exit 1
    fi
    APT_UPDATED=0
    apt_update_once
    if ! apt-cache showsrc qemu 2>/dev/null | grep -Fx "Version: $version" >/dev/null; then
        echo "Debian's mirrors offer no source package qemu=$version" >&2
        exit 1
    fi
}

fetch_plugin_header() {
    local version
    version=$(dpkg-query -W -f='${source:Version}' qemu-system-arm)
    if [ -f "$HEADER_DIR/qemu-plugin.h" ] &&
        [ "$(cat "$HEADER_DIR/SOURCE_VERSION" 2>/dev/null)" = "qemu $version" ]; then
        say "qemu-plugin.h for qemu $version already in $HEADER_DIR"
        return
    fi
    ensure_deb_src "$version"
    TMP_DIR=$(mktemp -d)
    # let apt's unprivileged _apt user write the download (no sandbox warning)
    chown _apt "$TMP_DIR" 2>/dev/null || chmod 777 "$TMP_DIR"
    trap 'rm -rf "$TMP_DIR"' EXIT
    say "downloading Debian source package qemu=$version (orig tarball ~24 MB)"
    (cd "$TMP_DIR" && apt-get source --download-only -q "qemu=$version")
    mkdir -p "$HEADER_DIR"
    tar -xJf "$TMP_DIR"/qemu_*.orig.tar.xz --wildcards --no-anchored -O \
        'include/qemu/qemu-plugin.h' >"$HEADER_DIR/qemu-plugin.h.tmp"
    mv "$HEADER_DIR/qemu-plugin.h.tmp" "$HEADER_DIR/qemu-plugin.h"
    echo "qemu $version" >"$HEADER_DIR/SOURCE_VERSION"
    say "stored qemu-plugin.h in $HEADER_DIR"
}

if [ "$(id -u)" != 0 ]; then
    echo "run as root (apt-get install)" >&2
    exit 1
fi
install_packages
fetch_plugin_header
for f in "$DEB_SRC_BASE.list" "$DEB_SRC_BASE.sources"; do
    [ ! -e "$f" ] || say "left in place: apt source file $f (deb-src entries; delete it if unwanted)"
done
say "done"
