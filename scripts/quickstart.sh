#!/usr/bin/env bash
# Set up (see setup.sh) and compile the bundled TinyLSTM for Ethos-U55; prints the summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m tvmse.compile examples/tinylstm_int8.onnx --target ethos-u55 --output-dir out/tinylstm_int8-ethos-u55-128 "$@"
