"""The docs' runnable examples: the user-pairs block of docs/vectors.md (train, steer, save, load)."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _doctest_blocks(text: str) -> list[str]:
    return [
        b
        for b in re.findall(r"```python\n(.*?)```", text, flags=re.S)
        if b.lstrip().startswith(">>>")
    ]


@pytest.mark.slow
def test_the_user_pairs_snippet_runs_and_is_short(tmp_path, monkeypatch):
    blocks = _doctest_blocks((DOCS / "vectors.md").read_text())
    assert len(blocks) == 1
    code_lines = [line for line in blocks[0].splitlines() if line.startswith((">>>", "..."))]
    assert len(code_lines) <= 10, code_lines
    monkeypatch.chdir(tmp_path)  # it writes happy.safetensors
    parser = doctest.DocTestParser()
    test = parser.get_doctest(blocks[0], {}, "docs/vectors.md", "docs/vectors.md", 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0 and runner.tries >= 8
    assert (tmp_path / "happy.safetensors").exists()
