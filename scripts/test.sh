#!/usr/bin/env bash
# Install everything the test suite needs on a fresh machine, then run the whole suite.
#
#   bash scripts/test.sh [pytest arguments]
#
# 1. .venv with smtpkit and its development tools (pip install -e '.[dev]').
# 2. Postfix, for the real CHUNKING (BDAT) server test, and redis-server, for the quota
#    tests, when running as root with apt-get (scripts/ensure-test-services.sh; skipped
#    elsewhere - those tests then skip).
# 3. A second virtualenv with Django 6.1 for the MAILERS tests when a Python >= 3.12 is on
#    the machine (Django 6.1 needs it); without one, those tests skip and say why.
# Nothing in the tests themselves touches the network: all downloads happen here.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'

if [ -f scripts/ensure-test-services.sh ]; then
    bash scripts/ensure-test-services.sh || echo "scripts/test.sh: test services not installed; their tests will skip"
fi

newer_python() {
    local candidate
    for candidate in python3.13 python3.12 "$HOME"/.pyenv/versions/3.1[2-9]*/bin/python3; do
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

if python=$(newer_python); then
    if "$python" -m venv .venv-django \
        && .venv-django/bin/pip install -q --disable-pip-version-check -e '.[testing]' 'Django>=6.1'; then
        export SMTPKIT_TEST_DJANGO_PYTHON="$PWD/.venv-django/bin/python"
    else
        echo "scripts/test.sh: could not set up Django 6.1; its MAILERS tests will skip"
    fi
fi

exec .venv/bin/python -m pytest "$@"
