"""Markdown files made of ``## `` sections (RESULTS.md), rewritten one section at a time."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["write_section"]


def write_section(path: str | Path, markdown: str, heading: str) -> Path:
    """Replace (or append) the ``heading`` section of a markdown file with ``markdown`` (which
    starts with that heading), leaving the text before it and every other section alone.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "R.md"
        >>> _ = p.write_text("# R\\n\\n## A\\n\\nold\\n\\n## B\\n\\nkept\\n")
        >>> print(write_section(p, "## A\\n\\nnew\\n", "## A").read_text())
        # R
        <BLANKLINE>
        ## A
        <BLANKLINE>
        new
        <BLANKLINE>
        ## B
        <BLANKLINE>
        kept
        <BLANKLINE>
    """
    path = Path(path)
    text = path.read_text() if path.exists() else "# Results\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: markdown.rstrip() + "\n\n", text, count=1)
    else:
        text = text.rstrip() + "\n\n" + markdown
    path.write_text(text.rstrip() + "\n")
    return path
