"""zxcvbn's ranked dictionaries held compactly: same ranks and scores, a fraction of the memory."""

from __future__ import annotations

import importlib.util
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from bastion.identity.passwords.dictionaries import CompactRanks, frequency_lists, load_zxcvbn


def _zxcvbn_lists() -> dict[str, list[str]]:
    # Executed afresh: the imported module may be the empty stand-in load_zxcvbn() registers.
    spec = importlib.util.find_spec("zxcvbn")
    assert spec is not None
    assert spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "frequency_lists.py"
    lists: dict[str, list[str]] = runpy.run_path(str(path))["FREQUENCY_LISTS"]
    return lists


def test_every_list_has_zxcvbn_s_ranks() -> None:
    lists = _zxcvbn_lists()
    compact = frequency_lists()
    assert set(compact) == set(lists)
    for name, words in lists.items():
        # zxcvbn's own build_ranked_dict: rank 1 is the most frequent word.
        assert dict(compact[name].items()) == {w: i for i, w in enumerate(words, 1)}, name


def test_compact_ranks_is_a_mapping_like_a_dict_built_in_order() -> None:
    ranks = CompactRanks(["alpha", "beta", "alpha", "gamma"])
    expected = {w: i for i, w in enumerate(["alpha", "beta", "alpha", "gamma"], 1)}
    assert dict(ranks.items()) == expected  # a repeated word keeps its last rank, as a dict
    assert len(ranks) == 3
    assert "beta" in ranks
    assert "delta" not in ranks
    assert "" not in ranks
    assert 3 not in ranks  # type: ignore[comparison-overlap]
    assert "alpha\x01" not in ranks  # separators never match across entries
    assert "\x00beta" not in ranks
    with pytest.raises(KeyError):
        ranks["delta"]
    with pytest.raises(ValueError, match="separator"):
        CompactRanks(["a\x00b"])


def test_zxcvbn_scores_with_the_compact_dictionaries() -> None:
    module = load_zxcvbn()
    from zxcvbn import matching  # type: ignore[import-untyped]  # noqa: PLC0415 - after load

    for name in frequency_lists():
        assert isinstance(matching.RANKED_DICTIONARIES[name], CompactRanks)
    result = module.zxcvbn("dragon1987", user_inputs=["someone"])
    dictionary = [m for m in result["sequence"] if m["pattern"] == "dictionary"]
    assert dictionary[0]["token"] == "dragon"
    assert dictionary[0]["dictionary_name"] == "passwords"
    assert dictionary[0]["rank"] == frequency_lists()["passwords"]["dragon"]
    assert result["score"] <= 1
    assert module.zxcvbn("Vivid-otter quarry lantern 42")["score"] == 4


_SCORES = """
import json, sys
sys.path[:0] = {path!r}
{setup}
from zxcvbn import zxcvbn
words = ["Tr0ub4dor&3", "correcthorsebatterystaple", "jessica1987", "p@ssw0rd!", "qwerty uiop",
         "Dragon-slayer-99", "the quick brown fox", "michael jordan 23", "drowssap", "nimda4321"]
out = []
for w in words:
    r = zxcvbn(w, user_inputs=["bench", "example"])
    out.append([r["score"], r["guesses"], r["feedback"]["warning"],
                [[m["pattern"], m["token"], m.get("rank")] for m in r["sequence"]]])
print(json.dumps(out, default=str))
"""


def test_the_same_scores_as_zxcvbn_s_own_dictionaries() -> None:
    def scores(setup: str) -> object:
        program = _SCORES.format(path=sys.path, setup=setup)
        done = subprocess.run(  # noqa: S603 - our own interpreter, a fixed program
            [sys.executable, "-c", program], capture_output=True, text=True, check=True
        )
        return done.stdout

    compact = "from bastion.identity.passwords.dictionaries import load_zxcvbn; load_zxcvbn()"
    assert scores(compact) == scores("")


_MEMORY = """
import gc, sys, tracemalloc
sys.path[:0] = {path!r}
from bastion.identity.passwords import dictionaries
tracemalloc.start()
{load}
gc.collect()
print(tracemalloc.get_traced_memory()[0])
"""


def test_the_dictionaries_hold_a_fraction_of_zxcvbn_s_memory() -> None:
    def retained(load: str) -> int:
        program = _MEMORY.format(path=sys.path, load=load)
        done = subprocess.run(  # noqa: S603 - our own interpreter, a fixed program
            [sys.executable, "-c", program], capture_output=True, text=True, check=True
        )
        return int(done.stdout.split()[-1])

    own = retained("import zxcvbn")
    compact = retained("dictionaries.load_zxcvbn()")
    assert own > 10 << 20  # zxcvbn's word objects and dicts: ~14 MiB
    assert compact < 3 << 20  # measured 1.5 MiB
