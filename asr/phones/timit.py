"""TIMIT phone sets, the 61 → 48 → 39 foldings and TIMIT's lang (:func:`timit_lang`).

The mapping follows Kaldi's ``egs/timit/s5/conf/phones.60-48-39.map``:
models are trained on 48 phones, and error rates are scored after folding
reference and hypothesis to 39 phones. ``q`` (glottal stop) is deleted;
closures fold to ``cl`` / ``vcl`` (48) and to ``sil`` (39), as do ``pau``,
``h#`` and ``epi``. Silence is scored, as in Kaldi's recipe.
"""

from __future__ import annotations

from typing import Iterable, Optional

from asr.errors import DataError
from asr.phones.lang import Lang
from asr.phones.topology import Topology

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

#: Closure symbol of each TIMIT stop / affricate release.
CLOSURE = {"b": "bcl", "d": "dcl", "g": "gcl", "p": "pcl", "t": "tcl", "k": "kcl", "jh": "dcl", "ch": "tcl"}

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


def timit_lang() -> Lang:
    """TIMIT's 48-phone lang, as Kaldi's ``egs/timit/s5`` makes it.

    ``sil`` is the one silence phone, the optional silence and the garbage
    phone (the set has no spoken-noise phone), and is never split by the
    tree; every phone has 3 states with self-loop probability 0.75; PER folds
    the 48 phones to 39 (``MAP_48_39``). Bundles written before the lang dir
    existed were all trained on it.
    """
    return Lang(PHONES48, (SIL,), SIL, Topology(3, 0.75), garbage=GARBAGE_PHONE, not_split=(SIL,),
                score_map=MAP_48_39)



# ---- ARPAbet (CMUdict, flite) → the 48 phones: the TIMIT lang's lexicon mapping ---------------
#
# ``asr prepare-lang --phone-lang`` with TIMIT's lang maps every pronunciation
# (user lexicon, CMUdict, flite's letter-to-sound rules) onto the 48 phones the
# way the synthetic training corpus is labelled (:mod:`asr.synth.labels`):
# flite's ARPAbet phones, each stop and affricate split into closure + release
# (``p t k ch`` get ``cl`` before them, ``b d g jh`` get ``vcl``), then TIMIT's
# 61 → 48 folding (``axr`` → ``er``, ``em`` → ``m``, ``hv`` → ``hh``, ``nx`` → ``n``).
#
# ARPAbet → 48 (:func:`arpabet_to_phones48`): stress digits are dropped, except
# that ``AH0`` → ``ax`` and ``AH1``/``AH2`` → ``ah``; ``ER0/1/2`` → ``er``;
# ``IH0`` → ``ih``, except in the ``-ed`` suffix after ``T``/``D`` (word-final
# ``T IH0 D`` / ``D IH0 D``), where flite says ``ax``. Measured against flite's
# own pronunciation (:func:`asr.synth.tts.word_pronunciations`, voice kal16,
# same closure expansion) over the 4,000-word prompt vocabulary
# (``load_sampler(4000).vocab``, all 4,000 words in CMUdict), the fraction of
# words whose mapped CMUdict pronunciation equals flite's:
#
# =============================================  ===========  =============
# mapping                                        any variant  first variant
# =============================================  ===========  =============
# AH1/AH2 → ``aa``, IH0 → ``ih``                 90.95 %      90.53 %
# AH1/AH2 → ``ah``, IH0 → ``ih``                 97.55 %      97.08 %
# AH1/AH2 → ``ah``, IH0 → ``ax`` everywhere      84.15 %
# AH1/AH2 → ``aa``, ``-ed`` rule                 91.53 %      91.10 %
# AH1/AH2 → ``ah``, ``-ed`` rule (the default)   98.13 %      97.65 %
# default + ``IY1 R`` → ``ih r`` (not used)      98.18 %
# =============================================  ===========  =============
#
# Flite's voices disagree on AH1: ``kal16``, ``awb``, ``rms`` and ``slt`` say
# ``ah`` ("but" → b ah t) and give identical phones on the whole vocabulary,
# while the 8 kHz diphone voice ``kal`` says ``aa`` (b aa t) and differs from
# kal16 only in that (267 of 4,000 words); against kal's phones ``aa`` + the
# ``-ed`` rule scores 98.13 % and the default 91.55 %. Only one speaker voice
# in five is kal, so ``ah`` is the default. The ``IY1 R`` → ``ih r`` rule was left
# out: it fixes only "here" and "hear" and breaks "tier". The remaining ~2 %
# are flite's own lexicon entries (older CMUdict: "even" iy v ax n, "poor"
# p uh r), spelled-out abbreviations ("xbox") and letter-to-sound guesses.

import re  # noqa: E402  (this section was appended: TIMIT's lexicon mapping)
from typing import Sequence  # noqa: E402

#: AH by stress digit ('' = no stress mark: CMUdict's AH is mostly unstressed).
_AH = {"0": "ax", "1": "ah", "2": "ah", "": "ax"}
#: Upper-case ARPAbet (CMUdict's 39, plus TIMIT-style extras) → TIMIT 61 symbol.
_ARPABET_TO_TIMIT: dict[str, str] = {
    **{s: s.lower() for s in (
        "AA AE AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S "
        "SH T TH UH UW V W Y Z ZH").split()},
    **{s: s.lower() for s in "AX AXR IX UX DX EL EM EN ENG NX HV".split()},
}
_ARPABET_RE = re.compile(r"([A-Z]+)([012]?)")


def _timit_to_phones48(sym: str, where: str) -> tuple[str, ...]:
    """48-set phones of one TIMIT-61 (= flite) symbol: closure + release for stops and affricates."""
    if sym not in MAP_61_48:
        raise DataError(f"{where}: unknown phone symbol {sym!r}")
    release = MAP_61_48[sym]
    if release is None:  # q (glottal stop) is deleted in the 48 set
        return ()
    if sym in CLOSURE:
        return (MAP_61_48[CLOSURE[sym]], release)  # type: ignore[return-value]
    return (release,)


def arpabet_to_phones48(pron: Sequence[str], where: str) -> tuple[str, ...]:
    """Map one lexicon pronunciation to 48-set phones (see the comment above).

    Upper-case symbols are ARPAbet, with or without a stress digit (CMUdict
    plus AX AXR IX UX DX EL EM EN ENG NX HV); lower-case symbols must be
    48-set phones and are kept as they are (no closure is added).

    Args:
        pron: the symbols of one word's pronunciation, e.g. ``["AH0", "B", "AW1", "T"]``.
        where: names the word / file line in errors.

    Returns:
        The 48-set phones, e.g. ``("ax", "vcl", "b", "aw", "cl", "t")``.

    Raises:
        DataError: on a symbol in neither set (the message names ``where``
            and the symbol).
    """
    out: list[str] = []
    bases = [m.group(1) if (m := _ARPABET_RE.fullmatch(s)) else "" for s in pron]
    n = len(pron)
    for i, sym in enumerate(pron):
        m = _ARPABET_RE.fullmatch(sym)
        if m is None:
            if sym in PHONES48:
                out.append(sym)
                continue
            hint = " (ARPAbet symbols are upper-case)" if sym.upper() != sym else ""
            raise DataError(f"{where}: unknown phone symbol {sym!r}{hint}")
        base, stress = m.groups()
        if base == "AH":
            timit = _AH[stress]
        elif sym == "IH0" and i == n - 2 and bases[-1] == "D" and i > 0 and bases[i - 1] in ("T", "D"):
            timit = "ax"  # the -ed suffix: flite says "wanted" as w aa n t ax d
        elif base in _ARPABET_TO_TIMIT:
            timit = _ARPABET_TO_TIMIT[base]
        else:
            raise DataError(f"{where}: unknown phone symbol {sym!r}")
        out.extend(_timit_to_phones48(timit, where))
    return tuple(out)


def flite_to_phones48(phones: Sequence[str], where: str) -> tuple[str, ...]:
    """Map flite's phones (lower-case ARPAbet = TIMIT symbols, no pauses) to the 48 set.

    Raises:
        DataError: on a symbol that is not a TIMIT symbol.
    """
    out: list[str] = []
    for sym in phones:
        if sym not in PHONES61:
            raise DataError(f"{where}: flite phone {sym!r} has no TIMIT symbol")
        out.extend(_timit_to_phones48(sym, where))
    return tuple(out)


def uses_timit_phones(phones: Iterable[str]) -> bool:
    """Whether pronunciations for ``phones`` are mapped the TIMIT way (:func:`arpabet_to_phones48`):
    the phones are :data:`PHONES48`, or some of them including both closure phones
    (``cl``, ``vcl``), e.g. a test's or a phone LM's subset of the 48."""
    names = set(phones)
    return names <= set(PHONES48) and {"cl", "vcl"} <= names
