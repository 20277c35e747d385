#!/usr/bin/env bash
# Regenerate deploy/requirements.lock: pyproject.toml's dependencies pinned with hashes
# (pip-compile --generate-hashes), resolved for the image's Python. Run it after changing
# the dependencies; tests/test_deploy.py fails while the lock misses one.
#
#   scripts/lock.sh                  # needs python3.12 (the image's); LOCK_PYTHON=... to choose
set -euo pipefail
cd "$(dirname "$0")/.."

python="${LOCK_PYTHON:-python3.12}"
venv="$(mktemp -d)"
trap 'rm -rf "$venv"' EXIT

# PIP_CONFIG_FILE=/dev/null: no local mirror or extra index of this machine's pip config
# ends up in the lock; the public index is pip's default.
export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 CUSTOM_COMPILE_COMMAND=scripts/lock.sh
"$python" -m venv "$venv"
"$venv/bin/pip" install -q pip-tools
"$venv/bin/pip-compile" --quiet --generate-hashes --strip-extras --allow-unsafe \
  --no-emit-index-url --no-emit-find-links \
  --extra s3 --output-file deploy/requirements.lock pyproject.toml
