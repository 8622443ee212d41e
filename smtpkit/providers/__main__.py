"""``python -m smtpkit.providers`` prints the preset table embedded in docs/providers.md."""

import sys

from smtpkit.providers import render_markdown

sys.stdout.write(render_markdown())
