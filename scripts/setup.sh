#!/usr/bin/env bash
# Sets up .venv with everything the app needs; `--dev` adds the test tools and, as root on Debian,
# the chromium browser used by the browser tests. Safe to rerun: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
requirements=requirements.txt
if [ "${1:-}" = "--dev" ]; then requirements=requirements-dev.txt; fi
.venv/bin/python -m pip install -q -r "$requirements"
.venv/bin/python -m pip install -q --no-deps -e .
if [ "${1:-}" = "--dev" ] && [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  # The browser tests drive Debian's chromium through playwright (no browser download).
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
    || echo "setup: could not install chromium; browser tests will be skipped" >&2
fi
