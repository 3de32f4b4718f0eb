"""TIMIT phone sets and the 61 → 48 → 39 foldings.

The mapping follows Kaldi's ``egs/timit/s5/conf/phones.60-48-39.map``:
models are trained on 48 phones, and error rates are scored after folding
reference and hypothesis to 39 phones. ``q`` (glottal stop) is deleted;
closures fold to ``cl`` / ``vcl`` (48) and to ``sil`` (39), as do ``pau``,
``h#`` and ``epi``. Silence is scored, as in Kaldi's recipe.
"""

from __future__ import annotations

from typing import Iterable, Optional

from asr.errors import DataError

# (61-phone symbol, 48-phone symbol or None when deleted, 39-phone symbol or None)
_MAP_ROWS: tuple[tuple[str, Optional[str], Optional[str]], ...] = (
    ("aa", "aa", "aa"), ("ae", "ae", "ae"), ("ah", "ah", "ah"), ("ao", "ao", "aa"),
    ("aw", "aw", "aw"), ("ax", "ax", "ah"), ("ax-h", "ax", "ah"), ("axr", "er", "er"),
    ("ay", "ay", "ay"), ("b", "b", "b"), ("bcl", "vcl", "sil"), ("ch", "ch", "ch"),
    ("d", "d", "d"), ("dcl", "vcl", "sil"), ("dh", "dh", "dh"), ("dx", "dx", "dx"),
    ("eh", "eh", "eh"), ("el", "el", "l"), ("em", "m", "m"), ("en", "en", "n"),
    ("eng", "ng", "ng"), ("epi", "epi", "sil"), ("er", "er", "er"), ("ey", "ey", "ey"),
    ("f", "f", "f"), ("g", "g", "g"), ("gcl", "vcl", "sil"), ("h#", "sil", "sil"),
    ("hh", "hh", "hh"), ("hv", "hh", "hh"), ("ih", "ih", "ih"), ("ix", "ix", "ih"),
    ("iy", "iy", "iy"), ("jh", "jh", "jh"), ("k", "k", "k"), ("kcl", "cl", "sil"),
    ("l", "l", "l"), ("m", "m", "m"), ("n", "n", "n"), ("ng", "ng", "ng"),
    ("nx", "n", "n"), ("ow", "ow", "ow"), ("oy", "oy", "oy"), ("p", "p", "p"),
    ("pau", "sil", "sil"), ("pcl", "cl", "sil"), ("q", None, None), ("r", "r", "r"),
    ("s", "s", "s"), ("sh", "sh", "sh"), ("t", "t", "t"), ("tcl", "cl", "sil"),
    ("th", "th", "th"), ("uh", "uh", "uh"), ("uw", "uw", "uw"), ("ux", "uw", "uw"),
    ("v", "v", "v"), ("w", "w", "w"), ("y", "y", "y"), ("z", "z", "z"),
    ("zh", "zh", "sh"),
)

#: The 61 TIMIT phone symbols (60 plus ``q``), in map order.
PHONES61: tuple[str, ...] = tuple(r[0] for r in _MAP_ROWS)
#: 61 → 48 (``q`` → None: deleted).
MAP_61_48: dict[str, Optional[str]] = {r[0]: r[1] for r in _MAP_ROWS}
#: The 48 training phones, sorted.
PHONES48: tuple[str, ...] = tuple(sorted({r[1] for r in _MAP_ROWS if r[1]}))
#: 48 → 39.
MAP_48_39: dict[str, str] = {r[1]: r[2] for r in _MAP_ROWS if r[1] and r[2]}
#: The 39 scoring phones, sorted.
PHONES39: tuple[str, ...] = tuple(sorted(set(MAP_48_39.values())))
#: The silence phone of the 48 and 39 sets.
SIL = "sil"
#: The phone the LM's garbage words (``<unk>``, ``<SPOKEN_NOISE>``) are pronounced with,
#: as Kaldi's ``<UNK>`` is with ``spn``. The 48-phone set has no spoken-noise phone, so
#: it is silence.
GARBAGE_PHONE = SIL

assert len(PHONES61) == 61 and len(PHONES48) == 48 and len(PHONES39) == 39


def fold_61_to_48(phones: Iterable[str], where: str = "") -> list[str]:
    """Map TIMIT 61-phone symbols to the 48-phone set; ``q`` is dropped.

    Raises:
        DataError: on a symbol outside the 61-phone set (``where`` names the file).
    """
    out: list[str] = []
    for p in phones:
        if p not in MAP_61_48:
            raise DataError(f"{where}: unknown TIMIT phone {p!r}")
        mapped = MAP_61_48[p]
        if mapped is not None:
            out.append(mapped)
    return out


def fold_to_39(phones: Iterable[str], where: str = "") -> list[str]:
    """Fold 48-phone (or 61-phone) symbols to the 39-phone scoring set.

    Raises:
        DataError: on a symbol in neither set.
    """
    out: list[str] = []
    for p in phones:
        if p in MAP_48_39:
            out.append(MAP_48_39[p])
        elif p in MAP_61_48:
            m48 = MAP_61_48[p]
            if m48 is not None:
                out.append(MAP_48_39[m48])
        else:
            raise DataError(f"{where}: unknown phone {p!r}")
    return out
