"""MkDocs hook: keep links that leave the docs folder working on the built site.

Pages written to be read on GitHub link to files outside ``docs/`` (the changelog, which is
included from the top-level ``CHANGELOG.md``, says ``docs/errors.md``; a page may point at
``../smtpkit/providers/presets.toml``). In strict mode those would fail the build, so this
rewrites them before MkDocs validates links:

* a link to a page inside ``docs/`` written from the repository root becomes relative;
* a link to any other file in the repository becomes a link to it on the repository site.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

_LINK = re.compile(r"(?P<head>\]\()(?P<target>[^)\s#]+)(?P<tail>[^)]*\))")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Rewrite relative links whose target is outside the docs folder."""
    docs_dir = posixpath.basename(str(config["docs_dir"]).rstrip("/")) or "docs"
    repo_url = str(config.get("repo_url") or "").rstrip("/")
    page_dir = posixpath.dirname(page.file.src_uri)

    def fix(match: re.Match[str]) -> str:
        target = match["target"]
        if "://" in target or target.startswith(("/", "mailto:")):
            return match[0]
        # The changelog is written relative to the repository root.
        if page.file.src_uri == "changelog.md":
            in_repo = posixpath.normpath(target)
        else:
            in_repo = posixpath.normpath(posixpath.join(docs_dir, page_dir, target))
        if in_repo.startswith(f"{docs_dir}/"):
            inside = in_repo[len(docs_dir) + 1 :]
            relative = posixpath.relpath(inside, page_dir or ".")
            return f"{match['head']}{relative}{match['tail']}"
        if in_repo.startswith("..") or not repo_url:
            return match[0]
        return f"{match['head']}{repo_url}/blob/main/{in_repo}{match['tail']}"

    return _LINK.sub(fix, markdown)
