"""Print the reply classification table as Markdown: ``python -m smtpkit.errors``.

``docs/errors.md`` embeds this output between markers; a test keeps the two equal.
"""

from smtpkit.errors._table import render_markdown

print(render_markdown(), end="")
