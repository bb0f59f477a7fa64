#!/usr/bin/env bash
# Set up tvmse on a fresh Debian 12 machine: system packages (root, apt) and a local virtual
# environment .venv with the pinned Python dependencies and tvmse itself (editable).
# Safe to run again: it only installs what is missing.
#
# System-wide, and only when run as root (scripts/install_system_packages.sh):
#   - Debian packages qemu-system-arm gcc-arm-none-eabi binutils-arm-none-eabi libnewlib-arm-none-eabi
#     clang gcc libc6-dev xz-utils (apt-get install);
#   - if apt knows no source package of the installed qemu: the apt source files
#     /etc/apt/sources.list.d/tvmse-deb-src.list / .sources (deb-src entries copied from Debian's own
#     repositories, needed once to fetch qemu-plugin.h; they stay; delete them if unwanted);
#   - qemu-plugin.h in ~/.cache/tvmse/qemu-plugin-api/ (per user, not system-wide).
# Everything else goes into .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3

if [ "$(id -u)" = 0 ]; then
    echo "[setup] root: installing the Cortex-M55 emulator's Debian packages system-wide (see the header of this script)"
    bash scripts/install_system_packages.sh
else
    echo "[setup] not root: skipping Debian packages (run scripts/install_system_packages.sh as root for the Cortex-M55 emulator)"
fi

if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import tvmse, tvm, ethosu.vela, torch, onnxruntime, ai_edge_litert, pesq, pytest" 2>/dev/null; then
    echo "[setup] installing Python dependencies into .venv (pinned in pyproject.toml)"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[test]"
fi
.venv/bin/python -m pip check
echo "[setup] ready: $(.venv/bin/python --version), tvmse $(.venv/bin/python -c 'import tvmse; print(tvmse.__version__)')"
