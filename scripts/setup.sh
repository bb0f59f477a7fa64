#!/usr/bin/env bash
# Set up tvmse on a fresh Debian 12 machine: system packages (root, apt) and a local virtual
# environment .venv with the pinned Python dependencies and tvmse itself (editable).
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3

if [ "$(id -u)" = 0 ]; then
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
