#!/usr/bin/env bash
# Install what the benchmarks need; safe to run again. Run as root (apt-get) from anywhere:
#   bash benchmarks/setup.sh
# - postfix, for /usr/sbin/smtp-sink (the daemon itself is not started);
# - aiosmtplib and matplotlib in the project's virtual environment;
# - nodemailer (pinned by benchmarks/node/package-lock.json).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
python="${PYTHON:-$repo/.venv/bin/python}"

if [ ! -x /usr/sbin/smtp-sink ]; then
    apt-get update
    # noninteractive: no debconf questions; Postfix is configured as "No configuration".
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postfix
fi
# Postfix's package may start its daemon; the benchmarks only need the smtp-sink binary.
if command -v postfix >/dev/null && postfix status >/dev/null 2>&1; then
    postfix stop || true
fi

"$python" -m pip install --quiet aiosmtplib matplotlib

if command -v npm >/dev/null; then
    (cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error)
else
    echo "npm not found: the Nodemailer rows will be skipped" >&2
fi

test -x /usr/sbin/smtp-sink && echo "smtp-sink: ok"
"$python" -c "import aiosmtplib, matplotlib; print('aiosmtplib', aiosmtplib.__version__)"
if [ -d "$here/node/node_modules/nodemailer" ]; then
    echo "nodemailer: $(cd "$here/node" && node -p "require('nodemailer/package.json').version")"
fi
