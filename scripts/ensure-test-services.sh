#!/usr/bin/env bash
# Make sure the servers some integration tests need are installed.
#
#   bash scripts/ensure-test-services.sh
#
# Postfix: tests/test_postfix_chunking.py runs a private Postfix instance (its own
# configuration and queue in a temporary directory, listening on 127.0.0.1 only) to test
# CHUNKING/BDAT against a real server.
# Redis: the quota tests (tests/test_quota_*.py) start a private redis-server on
# 127.0.0.1 and a free port (tests/quota_redis.py) to test RedisQuotaStore for real.
#
# When one is missing and this runs as root on a machine with apt-get, the Debian package
# is installed (Postfix without configuring the system mail service: "No configuration"),
# and any system daemon the package started is stopped and disabled: only the tests' own
# instances ever run. Elsewhere this says what it skipped and those tests skip themselves.
#
# Silent when there is nothing to do or the installation succeeds; exits non-zero only
# when an installation was attempted and failed.
set -euo pipefail

missing=()
[ -x /usr/sbin/postfix ] || missing+=(postfix)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-test-services: ${missing[*]} not installed and this is not root; skipped (their tests will skip)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-test-services: ${missing[*]} not installed and apt-get is unavailable; skipped (their tests will skip)"
    exit 0
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! apt-get update -qq >"$log" 2>&1; then
    echo "ensure-test-services: apt-get update failed:" >&2
    tail -n 30 "$log" >&2
    exit 1
fi

status=0
for package in "${missing[@]}"; do
    if [ "$package" = postfix ]; then
        echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    fi
    if ! apt-get install -y -qq --no-install-recommends "$package" >"$log" 2>&1; then
        echo "ensure-test-services: installing $package failed:" >&2
        tail -n 30 "$log" >&2
        status=1
        continue
    fi
    # The tests start their own instance; keep the system one stopped and off at boot.
    {
        service "$package" stop || true
        if [ "$package" = postfix ] && postfix status; then postfix stop || true; fi
        if command -v systemctl >/dev/null 2>&1; then systemctl disable "$package" || true; fi
        if command -v update-rc.d >/dev/null 2>&1; then update-rc.d "$package" disable || true; fi
    } >/dev/null 2>&1
done
exit "$status"
