"""Text keys for duplicate detection: exact, normalised, and near (character n-gram TF-IDF cosine).

Normalising catches copies that differ only in case, spacing or punctuation, which is how the same
sentence usually reappears across files (`( kim )` vs `(kim)`, a trailing space); the TF-IDF cosine
catches copies with a word or two changed. Character n-grams need no model, so tests stay fast.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import numpy as np

_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Case-folded, punctuation removed, whitespace collapsed (NFKC first, so lookalike forms match).

    Symbols (emoji, $, +) stay: they carry meaning, and an emoji-only text is not empty."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(c).startswith("P") else c for c in text)
    return _SPACE.sub(" ", text).strip()


def near_duplicate_pairs(
    texts: Sequence[str], threshold: float, *, chunk: int = 1024, max_pairs: int = 100_000
) -> list[tuple[int, int, float]]:
    """Pairs (i, j, cosine) with i < j whose character 3-5-gram TF-IDF cosine is >= `threshold`.

    Computed in row chunks of the sparse similarity matrix, so memory stays at chunk x n. Texts with no
    characters (empty after stripping) are never paired.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    keep = [i for i, t in enumerate(texts) if t.strip()]
    if len(keep) < 2:
        return []
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), lowercase=True, sublinear_tf=True)
    try:
        x = vec.fit_transform([texts[i] for i in keep])  # rows are L2-normalised: dot = cosine
    except ValueError:  # every text shorter than an n-gram
        return []
    pairs: list[tuple[int, int, float]] = []
    for start in range(0, x.shape[0], chunk):
        block = (x[start : start + chunk] @ x.T).tocoo()
        mask = (block.data >= threshold) & (block.row + start < block.col)
        for r, c, v in zip(block.row[mask], block.col[mask], block.data[mask], strict=True):
            pairs.append((keep[r + start], keep[c], float(np.round(v, 4))))
            if len(pairs) >= max_pairs:
                return pairs
    return pairs


def connected_groups(pairs: Sequence[tuple[int, int]], n: int) -> list[list[int]]:
    """Groups of indices linked by `pairs` (union-find), each sorted, singletons left out."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]
