#!/usr/bin/env bash
# What the browser tests (tests/test_annotate_browser.py) need on a fresh Debian machine:
# Debian's chromium package and the Python playwright package in the active virtual environment.
# Playwright drives /usr/bin/chromium through executable_path, so `playwright install` is never run
# and no browser is downloaded. Without these the browser tests skip, saying why.
set -euo pipefail
cd "$(dirname "$0")/.."

# the venv's python: the active one, else the project's .venv, else whatever python is on PATH
if [ -n "${VIRTUAL_ENV:-}" ]; then PYTHON="$VIRTUAL_ENV/bin/python"
elif [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python
else PYTHON=python3; fi

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""
  elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"
  else
    echo "browser-deps: chromium is missing and installing it needs root; the browser tests will be skipped" >&2
    SUDO="none"
  fi
  if [ "$SUDO" != "none" ]; then
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq chromium >/dev/null
  fi
fi

"$PYTHON" -m pip install -q "playwright>=1.40,<2"

echo "browser-deps: $(chromium --version 2>/dev/null | head -n 1 || echo 'no chromium'); playwright $("$PYTHON" -c 'from importlib.metadata import version; print(version("playwright"))')"
