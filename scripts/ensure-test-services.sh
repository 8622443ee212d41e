#!/usr/bin/env bash
# Make sure the servers some integration tests need are installed.
#
#   bash scripts/ensure-test-services.sh
#
# Postfix: tests/test_postfix_chunking.py runs a private Postfix instance (its own
# configuration and queue in a temporary directory, listening on 127.0.0.1 only) to test
# CHUNKING/BDAT against a real server. When /usr/sbin/postfix is missing and this runs as
# root on a machine with apt-get, the Debian package is installed without configuring the
# system mail service ("No configuration"), and any system Postfix daemon the package
# started is stopped and disabled: only the tests' own instance ever runs. Elsewhere this
# says what it skipped and the Postfix tests skip themselves.
#
# Silent when there is nothing to do or the installation succeeds; exits non-zero only
# when an installation was attempted and failed.
set -euo pipefail

if [ -x /usr/sbin/postfix ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-test-services: Postfix is not installed and this is not root; skipped (the Postfix tests will skip)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-test-services: Postfix is not installed and apt-get is unavailable; skipped (the Postfix tests will skip)"
    exit 0
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! {
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections \
        && apt-get update -qq \
        && apt-get install -y -qq --no-install-recommends postfix
} >"$log" 2>&1; then
    echo "ensure-test-services: installing postfix failed:" >&2
    tail -n 30 "$log" >&2
    exit 1
fi

# The tests start their own instance; keep the system one stopped and off at boot.
{
    service postfix stop || true
    if postfix status; then postfix stop || true; fi
    if command -v systemctl >/dev/null 2>&1; then systemctl disable postfix || true; fi
    if command -v update-rc.d >/dev/null 2>&1; then update-rc.d postfix disable || true; fi
} >/dev/null 2>&1
exit 0
