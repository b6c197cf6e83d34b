#!/usr/bin/env bash
# One-step set-up on a fresh machine: a virtual environment in .venv with pinpoint installed.
#   bash scripts/setup.sh          # what `pinpoint demo` needs
#   bash scripts/setup.sh --test   # plus pytest, hypothesis, ONNX and the headless browser for the UI tests
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch first and pinned: 2.13.0 is the CPU build; a looser requirement pulls a multi-GB CUDA build.
python -m pip install -q "torch==2.13.0"
if [ "${1:-}" = "--test" ]; then
  python -m pip install -q -e ".[test,onnx]"
  if [ -f .ci/browser-deps.sh ]; then bash .ci/browser-deps.sh; fi
else
  python -m pip install -q -e .
fi
# HOTA (pinpoint eval --track) comes from TrackEval, whose package asks for opencv-python and
# pycocotools: the first would clash with opencv-python-headless and neither is used by its HOTA.
python -m pip install -q --no-deps "trackeval==1.3.0"
echo "pinpoint installed in $(pwd)/.venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
