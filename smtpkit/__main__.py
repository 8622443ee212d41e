"""``python -m smtpkit``: the command line."""

import sys

from smtpkit.cli import main

sys.exit(main())
