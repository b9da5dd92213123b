"""Near-duplicate detection by token-set Jaccard similarity, with prefix filtering.

Benchmarks copy prompts from each other with small edits (a dropped article, a changed word);
exact matching after normalisation misses those. Comparing every pair is quadratic, so each
token set is indexed by a short prefix of its rarest tokens: two sets with Jaccard >= t must
share a token within those prefixes (the All-Pairs prefix filter), which leaves few candidates.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence

__all__ = ["UnionFind", "jaccard", "near_duplicate_pairs"]


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """|a & b| / |a | b|; 1.0 for two empty sets."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def near_duplicate_pairs(texts: Sequence[str], threshold: float = 0.9) -> list[tuple[int, int]]:
    """Index pairs ``(i, j)``, ``i < j``, whose whitespace-token sets have Jaccard >= threshold.

    Args:
        texts: already normalised texts (see ``normalize_text``); empty ones are skipped.
        threshold: in (0, 1].

    Example:
        >>> texts = ["write a poem about the sea", "write poem about the sea", "hi"]
        >>> near_duplicate_pairs(texts)  # Jaccard 5/6 = 0.83
        []
        >>> near_duplicate_pairs(texts, threshold=0.8)
        [(0, 1)]
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold={threshold} is outside (0, 1]; use e.g. 0.9.")
    sets = [frozenset(t.split()) for t in texts]
    freq = Counter(tok for s in sets for tok in s)
    index: dict[str, list[int]] = defaultdict(list)
    pairs: set[tuple[int, int]] = set()
    for i in sorted(range(len(sets)), key=lambda k: len(sets[k])):  # small sets first
        s = sets[i]
        if not s:
            continue
        # The epsilon keeps 0.9 * 10 from rounding up to 10 and shortening the prefix.
        prefix_len = len(s) - math.ceil(threshold * len(s) - 1e-9) + 1
        candidates: set[int] = set()
        for tok in sorted(s, key=lambda t: (freq[t], t))[:prefix_len]:
            candidates.update(index[tok])
            index[tok].append(i)
        for j in candidates:  # every j is no larger than s, so the size test is one-sided
            if len(sets[j]) >= threshold * len(s) - 1e-9 and jaccard(s, sets[j]) >= threshold:
                pairs.add((min(i, j), max(i, j)))
    return sorted(pairs)


class UnionFind:
    """Disjoint sets over ``range(n)``; ``find`` returns the smallest index of the set."""

    def __init__(self, n: int) -> None:
        self._parent = list(range(n))

    def find(self, i: int) -> int:
        root = i
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[i] != root:  # path compression
            self._parent[i], i = root, self._parent[i]
        return root

    def union(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a != b:
            self._parent[max(a, b)] = min(a, b)
