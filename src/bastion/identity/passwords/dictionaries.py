"""zxcvbn's ranked word lists, held compactly.

zxcvbn (the maintained library that scores password strength) keeps its six frequency lists
(~94,000 words) as one Python string object, rank integer and dict entry per word: ~14 MiB of
every worker's memory once the first password is scored, kept for the process's life. Bastion
loads the same lists into :class:`CompactRanks` instead (~2 MiB) and hands them to zxcvbn, which
does all the matching and scoring unchanged: it only asks ``word in ranks`` and
``ranks[word]`` of a ranked dictionary.

The lists are read from zxcvbn's own ``frequency_lists.py`` (one comma-joined string literal
per list) without executing it, so the per-word objects never exist; if the file ever has
another shape, zxcvbn's own import is used (correct, just larger).
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import sys
import types
from collections.abc import Iterator, Mapping
from pathlib import Path

__all__ = ["CompactRanks", "frequency_lists", "load_zxcvbn"]

_START = "\x00"  # starts each entry of a bucket
_RANK = "\x01"  # separates an entry's word from its rank
#: Words per bucket on average: a lookup scans one bucket (~0.2 KB) with ``str.find``.
_BUCKET_WORDS = 16


class CompactRanks(Mapping[str, int]):
    """A read-only ``word -> rank`` mapping (rank 1 = most frequent) held as a few thousand
    strings: the words are hashed into buckets, each bucket one string of
    ``"\\x00<word>\\x01<rank>"`` entries searched with ``str.find``."""

    __slots__ = ("_buckets", "_longest", "_size")

    def __init__(self, ordered_words: list[str]) -> None:
        count = max(1, len(ordered_words) // _BUCKET_WORDS)
        parts: list[list[str]] = [[] for _ in range(count)]
        for rank, word in enumerate(ordered_words, 1):
            if _START in word or _RANK in word:
                raise ValueError("a word holds a separator character")
            parts[hash(word) % count].append(f"{_START}{word}{_RANK}{rank}")
        # A repeated word keeps the last rank, like zxcvbn's own dict comprehension: put the
        # later entries first so that find() meets them first.
        self._buckets = tuple("".join(reversed(part)) for part in parts)
        self._size = len(set(ordered_words))
        # zxcvbn asks about every substring of a password: most are longer than any word.
        self._longest = max(map(len, ordered_words), default=0)

    def _rank(self, word: str) -> int | None:
        if len(word) > self._longest or _START in word or _RANK in word:
            return None
        bucket = self._buckets[hash(word) % len(self._buckets)]
        needle = f"{_START}{word}{_RANK}"
        at = bucket.find(needle)
        if at < 0:
            return None
        start = at + len(needle)
        end = bucket.find(_START, start)
        return int(bucket[start:] if end < 0 else bucket[start:end])

    def __contains__(self, word: object) -> bool:
        # zxcvbn's hot path (every substring of a password, in every list): inlined.
        if not isinstance(word, str) or len(word) > self._longest:
            return False
        if _START in word or _RANK in word:
            return False
        buckets = self._buckets
        return f"{_START}{word}{_RANK}" in buckets[hash(word) % len(buckets)]

    def __getitem__(self, word: str) -> int:
        rank = self._rank(word) if isinstance(word, str) else None
        if rank is None:
            raise KeyError(word)
        return rank

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for bucket in self._buckets:
            for entry in bucket.split(_START)[1:]:
                word = entry.rpartition(_RANK)[0]
                if word not in seen:
                    seen.add(word)
                    yield word


def _literal_lists(source: str) -> dict[str, str] | None:
    """``{name: "w1,w2,..."}`` from ``FREQUENCY_LISTS = {"name": "w1,w2".split(","), ...}``,
    or None when the source has any other shape."""
    tree = ast.parse(source)
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assign):
        return None
    assign = tree.body[0]
    target, value = assign.targets, assign.value
    if [getattr(t, "id", None) for t in target] != ["FREQUENCY_LISTS"]:
        return None
    if not isinstance(value, ast.Dict):
        return None
    lists: dict[str, str] = {}
    for key, item in zip(value.keys, value.values, strict=True):
        if not (
            isinstance(key, ast.Constant)
            and isinstance(key.value, str)
            and isinstance(item, ast.Call)
            and isinstance(item.func, ast.Attribute)
            and item.func.attr == "split"
            and isinstance(item.func.value, ast.Constant)
            and isinstance(item.func.value.value, str)
            and len(item.args) == 1
            and isinstance(item.args[0], ast.Constant)
            and item.args[0].value == ","
            and not item.keywords
        ):
            return None
        lists[key.value] = item.func.value.value
    return lists


@functools.cache
def frequency_lists() -> dict[str, CompactRanks]:
    """zxcvbn's ranked frequency lists as :class:`CompactRanks` (loaded once)."""
    spec = importlib.util.find_spec("zxcvbn")  # locates the package without importing it
    lists = None
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / "frequency_lists.py"
        if path.is_file():
            lists = _literal_lists(path.read_text(encoding="utf-8"))
    if lists is None:  # pragma: no cover - another zxcvbn release: its own (larger) lists
        from zxcvbn.frequency_lists import FREQUENCY_LISTS  # type: ignore[import-untyped]  # noqa: PLC0415

        return {name: CompactRanks(list(words)) for name, words in FREQUENCY_LISTS.items()}
    ranks = {name: CompactRanks(joined.split(",")) for name, joined in lists.items()}
    del lists
    _release_free_memory()
    return ranks


def _release_free_memory() -> None:
    """Hand the pages freed by the build (~6 MiB of transient word lists, parsed source and
    bucket parts) back to the system: glibc keeps freed memory below the top of its heaps, in
    the process's RSS for good, until ``malloc_trim`` (measured: 11.9 -> 3.4 MiB retained)."""
    if not sys.platform.startswith("linux"):  # pragma: no cover
        return
    import ctypes  # noqa: PLC0415 - once, after the build

    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):  # pragma: no cover - not glibc (musl has no malloc_trim)
        return
    trim(0)


@functools.cache
def load_zxcvbn() -> types.ModuleType:
    """The ``zxcvbn`` package, its ranked dictionaries replaced by :func:`frequency_lists`.

    Its ``frequency_lists`` module is registered empty before zxcvbn is imported, so zxcvbn
    never builds its own word objects; the compact lists then take their place in
    ``zxcvbn.matching.RANKED_DICTIONARIES``, the dict every matcher reads (zxcvbn adds the
    per-call ``user_inputs`` list there itself)."""
    ranks = frequency_lists()  # first: its fallback imports zxcvbn's own lists
    if "zxcvbn.matching" not in sys.modules:
        placeholder = types.ModuleType("zxcvbn.frequency_lists")
        placeholder.FREQUENCY_LISTS = {}  # type: ignore[attr-defined]
        sys.modules.setdefault("zxcvbn.frequency_lists", placeholder)
    import zxcvbn  # type: ignore[import-untyped]  # noqa: PLC0415
    from zxcvbn import matching  # noqa: PLC0415

    matching.RANKED_DICTIONARIES.update(ranks)
    _release_free_memory()  # what importing zxcvbn's modules freed
    module: types.ModuleType = zxcvbn
    return module
