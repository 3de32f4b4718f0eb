"""The phone side of a lang dir (Kaldi's ``data/lang``): the one place a phone
set is defined. Every stage — targets, H, the tree, graphs, training,
decoding, the RNN decoder, scoring and the model bundle — asks a
:class:`Lang` (read from the lang dir, or from the copy a bundle keeps).

Files, Kaldi's names and formats where Kaldi has them::

    phones.txt                   <eps> 0, the phones 1..N (model order), then #0 … (ignored here)
    phones/silence.txt           silence, noise and garbage phones, one per line
    phones/nonsilence.txt        the other phones
    phones/optional_silence.txt  the phone of optional silence between words and at the edges
    phones/garbage.txt           the phone of <unk> and noises (spoken noise); empty: none of its own
    phones/roots.txt             "not-shared split|not-split PHONE" per line (Kaldi's syntax)
    phones/extra_questions.txt   phone sets the decision tree may ask about, one per line
    phones/score_map.txt         "PHONE [SCORED-AS]" per line: how PER folds the phones
    topo                         Kaldi's topology file (left-to-right entries)

``garbage.txt`` and ``score_map.txt`` are this toolkit's: a phone that
``score_map.txt`` maps to nothing is deleted before scoring, a phone it does
not list is scored as itself (no file: every phone as itself). ``roots.txt``:
every (phone, HMM state) has a root of its own here; ``shared`` is read as
``not-shared`` (logged) and a line naming several phones (roots shared among
phones) is refused, because each pdf must say which phone it belongs to.
``not-split`` phones keep one pdf per state whatever their context (silence,
by default). ``topo`` may give each phone any HMM with one pdf class per
state (for example Kaldi's 5-state silence, a 1-state noise phone, 3 states
for the rest), as long as no state but state 0 goes back to state 0
(:mod:`asr.phones.topology`); a wrong entry is refused with its line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

from asr.errors import DataError, ModelError
from asr.io import atomic_write_text
from asr.phones.topology import PhoneHmm, Topology
from asr.symbols import read_phone_table, write_symbol_table

log = logging.getLogger(__name__)

PHONES_TXT, TOPO = "phones.txt", "topo"
SILENCE, NONSILENCE, OPTIONAL_SILENCE = "phones/silence.txt", "phones/nonsilence.txt", "phones/optional_silence.txt"
GARBAGE, ROOTS, EXTRA_QUESTIONS, SCORE_MAP = ("phones/garbage.txt", "phones/roots.txt",
                                              "phones/extra_questions.txt", "phones/score_map.txt")
#: Every file :meth:`Lang.write` writes (what a bundle copies).
FILES = (PHONES_TXT, SILENCE, NONSILENCE, OPTIONAL_SILENCE, GARBAGE, ROOTS, EXTRA_QUESTIONS, SCORE_MAP, TOPO)
_PHONE = re.compile(r"^[^\s#<>][^\s]*$")


@dataclass(frozen=True)
class Lang:
    """A phone set with everything the stages need to know about it.

    Attributes:
        phones: the phones in model order (phone i has id i + 1 in phones.txt).
        silence: the silence phones (a subset of ``phones``).
        optional_silence: the phone of optional silence (in ``silence``).
        garbage: the phone of ``<unk>`` and noises (``optional_silence`` when
            the set has no spoken-noise phone).
        topology: the HMM of every phone.
        not_split: phones whose pdfs ignore context (the tree never splits them).
        extra_questions: phone sets the tree may ask about besides its own clusters.
        score_map: phone → the symbol it is scored as, or None (deleted);
            phones not in it are scored as themselves.
    """

    phones: tuple[str, ...]
    silence: tuple[str, ...]
    optional_silence: str
    topology: Topology
    garbage: str = ""
    not_split: tuple[str, ...] = ()
    extra_questions: tuple[tuple[str, ...], ...] = ()
    score_map: Mapping[str, Optional[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "phones", tuple(self.phones))
        object.__setattr__(self, "silence", tuple(self.silence))
        object.__setattr__(self, "not_split", tuple(self.not_split))
        object.__setattr__(self, "extra_questions", tuple(tuple(q) for q in self.extra_questions))
        object.__setattr__(self, "score_map", dict(self.score_map))
        if not self.garbage:
            object.__setattr__(self, "garbage", self.optional_silence)
        self._check()
        for name in ("silence", "not_split"):  # sets, kept in phone order: a lang reads back equal
            members = set(getattr(self, name))
            object.__setattr__(self, name, tuple(p for p in self.phones if p in members))

    def _check(self) -> None:
        known = set(self.phones)
        if not self.phones or len(known) != len(self.phones):
            raise DataError("lang: the phone list is empty or repeats a phone")
        bad = [p for p in self.phones if not _PHONE.match(p)]
        if bad:
            raise DataError(f"lang: {bad[0]!r} cannot be a phone (blank, or starts with # < >)")
        for what, names in (("silence phone", self.silence), ("not-split phone", self.not_split),
                            ("topology phone", self.topology.phones),
                            ("score-map phone", self.score_map),
                            ("extra-question phone", [p for q in self.extra_questions for p in q])):
            unknown = sorted(set(names) - known)
            if unknown:
                raise DataError(f"lang: {what} {unknown[0]!r} is not in the phone list")
        if self.optional_silence not in self.silence:
            raise DataError(f"lang: the optional silence {self.optional_silence!r} is not a silence phone")
        if self.garbage not in known:
            raise DataError(f"lang: the garbage phone {self.garbage!r} is not in the phone list")

    # ---- queries -----------------------------------------------------
    @property
    def nonsilence(self) -> tuple[str, ...]:
        return tuple(p for p in self.phones if p not in set(self.silence))

    def index(self, phone: str) -> int:
        """0-based index of ``phone`` (its id in phones.txt is one more)."""
        return self.phones.index(phone)

    def score(self, phones: Iterable[str], where: str = "") -> list[str]:
        """``phones`` as PER scores them (folded by the score map, deletions dropped).

        Raises:
            DataError: a symbol outside the phone set (``where`` names the file).
        """
        out: list[str] = []
        known = set(self.phones)
        for p in phones:
            if p not in known:
                raise DataError(f"{where}: unknown phone {p!r} (not in the lang's {len(known)} phones)")
            mapped = self.score_map.get(p, p)
            if mapped is not None:
                out.append(mapped)
        return out

    @property
    def folds(self) -> bool:
        """True when scoring changes some phone (the score map is not the identity)."""
        return any(v != k for k, v in self.score_map.items())

    def to_dict(self) -> dict:
        return {"phones": list(self.phones), "silence": list(self.silence),
                "optional_silence": self.optional_silence, "garbage": self.garbage,
                "topology": self.topology.to_dict(), "not_split": list(self.not_split),
                "extra_questions": [list(q) for q in self.extra_questions],
                "score_map": dict(sorted(self.score_map.items()))}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Lang":
        return cls(d["phones"], d["silence"], d["optional_silence"], Topology.from_dict(d["topology"]),
                   d.get("garbage", ""), d.get("not_split", ()), d.get("extra_questions", ()),
                   d.get("score_map", {}))

    def digest(self) -> str:
        """SHA-256 of the canonical form (identifies the lang)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    # ---- files -------------------------------------------------------
    def write(self, lang_dir: Path) -> None:
        """Write the files of the module docstring into ``lang_dir`` (each atomically).

        An existing phones.txt with the same phones (e.g. with more
        disambiguation symbols, from ``asr prepare-lang``) is kept.
        """
        lang_dir = Path(lang_dir)
        (lang_dir / "phones").mkdir(parents=True, exist_ok=True)
        table = lang_dir / PHONES_TXT
        if not (table.is_file() and _same_phones(table, self.phones)):
            write_symbol_table(self.phones, table)
        lines = {SILENCE: self.silence, NONSILENCE: self.nonsilence, OPTIONAL_SILENCE: [self.optional_silence],
                 GARBAGE: [self.garbage] if self.garbage != self.optional_silence else [],
                 ROOTS: [f"not-shared {'not-split' if p in self.not_split else 'split'} {p}" for p in self.phones],
                 EXTRA_QUESTIONS: [" ".join(q) for q in self.extra_questions],
                 SCORE_MAP: [f"{p} {m}" if m is not None else p for p, m in sorted(self.score_map.items())]}
        for name, rows in lines.items():
            atomic_write_text(lang_dir / name, "".join(f"{r}\n" for r in rows))
        atomic_write_text(lang_dir / TOPO, format_topo(self.topology, self.phones))

    @classmethod
    def load(cls, lang_dir: Path) -> "Lang":
        """Read a lang dir's phone files; DataError naming the file (and line) when one is wrong."""
        lang_dir = Path(lang_dir)
        if not (lang_dir / PHONES_TXT).is_file():
            raise DataError(f"{lang_dir / PHONES_TXT}: not found: {lang_dir} is not a lang dir "
                            f"(make one with 'asr prepare-lang', or your corpus's preparation)")
        try:
            phones = read_phone_table(lang_dir / PHONES_TXT)
        except Exception as exc:  # GraphError from the symbol-table reader
            raise DataError(str(exc)) from None
        silence = _read_phone_list(lang_dir / SILENCE, phones)
        opt = _read_phone_list(lang_dir / OPTIONAL_SILENCE, phones)
        if len(opt) != 1:
            raise DataError(f"{lang_dir / OPTIONAL_SILENCE}: must name exactly one phone, found {len(opt)}")
        garbage = _read_phone_list(lang_dir / GARBAGE, phones, required=False)
        if len(garbage) > 1:
            raise DataError(f"{lang_dir / GARBAGE}: names {len(garbage)} phones; at most one")
        not_split = _read_roots(lang_dir / ROOTS, phones, silence)
        questions = _read_questions(lang_dir / EXTRA_QUESTIONS, phones)
        score_map = _read_score_map(lang_dir / SCORE_MAP, phones)
        topology = parse_topo(lang_dir / TOPO, phones)
        try:
            return cls(phones, silence, opt[0], topology, garbage[0] if garbage else "", not_split,
                       questions, score_map)
        except DataError as exc:
            raise DataError(f"{lang_dir}: {exc}") from None


def _same_phones(table: Path, phones: Sequence[str]) -> bool:
    try:
        return read_phone_table(table) == list(phones)
    except Exception:
        return False


def _lines(path: Path, required: bool = True) -> list[tuple[int, list[str]]]:
    """(line number, fields) of the non-empty lines of a UTF-8 file."""
    if not path.is_file():
        if required:
            raise DataError(f"{path}: not found (a lang dir needs it)")
        return []
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text") from None
    return [(n, line.split()) for n, line in enumerate(text.splitlines(), 1) if line.split()]


def _check_known(path: Path, lineno: int, names: Iterable[str], phones: Sequence[str]) -> None:
    known = set(phones)
    for p in names:
        if p not in known:
            raise DataError(f"{path}:{lineno}: {p!r} is not a phone of phones.txt")


def _read_phone_list(path: Path, phones: Sequence[str], required: bool = True) -> list[str]:
    out: list[str] = []
    for lineno, fields in _lines(path, required):
        _check_known(path, lineno, fields, phones)
        out += fields
    if len(set(out)) != len(out):
        raise DataError(f"{path}: a phone is listed twice")
    return out


def _read_roots(path: Path, phones: Sequence[str], silence: Sequence[str]) -> list[str]:
    """The not-split phones of roots.txt (no file: the silence phones). As in Kaldi, every
    phone has a root, once."""
    rows = _lines(path, required=False)
    if not rows:
        return list(silence)
    not_split: list[str] = []
    seen: dict[str, int] = {}
    warned = False
    for lineno, fields in rows:
        if len(fields) < 3 or fields[0] not in ("shared", "not-shared") or fields[1] not in ("split", "not-split"):
            raise DataError(f"{path}:{lineno}: expected 'not-shared split|not-split PHONE', got {' '.join(fields)!r}")
        if len(fields) > 3:
            raise DataError(f"{path}:{lineno}: the phones {' '.join(fields[2:])} share a root; every phone "
                            f"needs a root of its own here (each pdf must name its phone): one per line")
        _check_known(path, lineno, fields[2:], phones)
        if fields[2] in seen:
            raise DataError(f"{path}:{lineno}: phone {fields[2]!r} has a root already (line {seen[fields[2]]})")
        seen[fields[2]] = lineno
        if fields[0] == "shared" and not warned:
            log.info("%s: 'shared' roots are read as 'not-shared' (one root per HMM state)", path)
            warned = True
        if fields[1] == "not-split":
            not_split.append(fields[2])
    missing = [p for p in phones if p not in seen]
    if missing:
        raise DataError(f"{path}: phone {missing[0]!r} has no root (every phone needs one line)")
    return not_split


def _read_questions(path: Path, phones: Sequence[str]) -> list[tuple[str, ...]]:
    out = []
    for lineno, fields in _lines(path, required=False):
        _check_known(path, lineno, fields, phones)
        out.append(tuple(fields))
    return out


def _read_score_map(path: Path, phones: Sequence[str]) -> dict[str, Optional[str]]:
    out: dict[str, Optional[str]] = {}
    for lineno, fields in _lines(path, required=False):
        if len(fields) > 2:
            raise DataError(f"{path}:{lineno}: expected 'PHONE [SCORED-AS]', got {' '.join(fields)!r}")
        _check_known(path, lineno, fields[:1], phones)
        if fields[0] in out:
            raise DataError(f"{path}:{lineno}: phone {fields[0]!r} is mapped twice")
        out[fields[0]] = fields[1] if len(fields) == 2 else None
    return out


# ---- Kaldi's topo file ------------------------------------------------------------------
def format_topo(topology: Topology, phones: Sequence[str]) -> str:
    """Kaldi's topology file: one ``<TopologyEntry>`` per distinct HMM (phone ids of phones.txt)."""
    groups: dict[PhoneHmm, list[int]] = {}
    for i, p in enumerate(phones):
        groups.setdefault(topology.hmm(p), []).append(i + 1)
    out = ["<Topology>"]
    for hmm, ids in groups.items():
        out += ["<TopologyEntry>", "<ForPhones>", " ".join(map(str, ids)), "</ForPhones>"]
        m = hmm.matrix
        for k in range(hmm.num_states):
            trans = " ".join(f"<Transition> {j} {float(m[k, j])!r}" for j in range(hmm.num_states + 1)
                             if m[k, j] > 0)
            out.append(f"<State> {k} <PdfClass> {k} {trans} </State>")
        out += [f"<State> {hmm.num_states} </State>", "</TopologyEntry>"]
    return "\n".join(out + ["</Topology>"]) + "\n"


_STATE = re.compile(r"<State>\s+(\d+)\s*(?:<PdfClass>\s+(\d+)\s*)?((?:<Transition>\s+\S+\s+\S+\s*)*)</State>")
_TRANS = re.compile(r"<Transition>\s+(\S+)\s+(\S+)")


def parse_topo(path: Path, phones: Sequence[str]) -> Topology:
    """Read Kaldi's topology file.

    Raises:
        DataError: naming the file and line, on a malformed file, a phone id
            outside phones.txt, a phone without an entry or with two, or an
            entry that is not an HMM here (a pdf class that is not its state,
            probabilities that do not sum to 1, a state that cannot be
            reached or left, a transition back to state 0).
    """
    _lines(path)  # DataError when missing or not UTF-8
    text = path.read_text(encoding="utf-8")
    outer = re.fullmatch(r"\s*<Topology>(.*)</Topology>\s*", text, re.S)
    if outer is None:
        raise DataError(f"{path}: not a Kaldi topology file (<Topology> … </Topology>)")
    hmms: dict[str, PhoneHmm] = {}
    pos = 0
    entry_re = re.compile(r"<TopologyEntry>(.*?)</TopologyEntry>", re.S)
    _only_space(path, text, outer.start(1), outer.end(1), entry_re, "between topology entries")
    for entry in entry_re.finditer(text, outer.start(1), outer.end(1)):
        lineno = text.count("\n", 0, entry.start()) + 1
        body = entry.group(1)
        where = f"{path}:{lineno}"
        ids_match = re.search(r"<ForPhones>(.*?)</ForPhones>", body, re.S)
        if not ids_match or not all(t.isdigit() for t in ids_match.group(1).split()):
            raise DataError(f"{where}: a <TopologyEntry> needs <ForPhones> phone ids </ForPhones>")
        _only_space(path, text, entry.start(1), entry.end(1),
                    re.compile(r"<ForPhones>.*?</ForPhones>|" + _STATE.pattern, re.S), "in a topology entry")
        hmm = _entry_hmm(body, where)
        for t in ids_match.group(1).split():
            i = int(t)
            if not 1 <= i <= len(phones):
                raise DataError(f"{where}: phone id {i} is not in phones.txt (1..{len(phones)})")
            if phones[i - 1] in hmms:
                raise DataError(f"{where}: phone {phones[i - 1]!r} has two topology entries")
            hmms[phones[i - 1]] = hmm
        pos = entry.end()
    if pos == 0:
        raise DataError(f"{path}: no <TopologyEntry> (not a Kaldi topology file)")
    missing = [p for p in phones if p not in hmms]
    if missing:
        raise DataError(f"{path}: phone {missing[0]!r} has no topology entry")
    return Topology.of(hmms)


def _only_space(path: Path, text: str, start: int, end: int, allowed: "re.Pattern[str]", what: str) -> None:
    """DataError naming the line of the first text in ``text[start:end]`` outside ``allowed``."""
    at = start
    for m in allowed.finditer(text, start, end):
        _space_or_error(path, text, at, m.start(), what)
        at = m.end()
    _space_or_error(path, text, at, end, what)


def _space_or_error(path: Path, text: str, start: int, end: int, what: str) -> None:
    stray = re.search(r"\S", text[start:end])
    if stray:
        line = text.count("\n", 0, start + stray.start()) + 1
        raise DataError(f"{path}:{line}: unexpected text {text[start + stray.start():].split()[0]!r} {what}")


def _entry_hmm(body: str, where: str) -> PhoneHmm:
    """The HMM of one ``<TopologyEntry>``: states 0..S-1 emit (``<PdfClass>`` = the state),
    state S is the final, non-emitting one."""
    states = [(int(m.group(1)), m.group(2), _TRANS.findall(m.group(3))) for m in _STATE.finditer(body)]
    if not states or [s for s, _, _ in states] != list(range(len(states))):
        raise DataError(f"{where}: states must be numbered 0, 1, … in order")
    *emitting, (final, final_pdf, final_trans) = states
    if final_pdf is not None or final_trans or not emitting:
        raise DataError(f"{where}: the last state must be the final, non-emitting one, after one or more emitting states")
    n = len(emitting)
    matrix = [[0.0] * (n + 1) for _ in range(n)]
    for k, pdf_class, trans in emitting:
        if pdf_class is None or int(pdf_class) != k:
            raise DataError(f"{where}: state {k} must have <PdfClass> {k} (one pdf class per state)")
        for t, p in trans:
            if not t.isdigit() or int(t) > n:
                raise DataError(f"{where}: state {k} has a transition to {t}, not a state 0..{n}")
            try:
                prob = float(p)
            except ValueError:
                prob = math.nan
            if not 0.0 <= prob <= 1.0:
                raise DataError(f"{where}: state {k}: transition probability {p!r} is not a number in [0, 1]")
            matrix[k][int(t)] += prob
    try:
        return PhoneHmm(n, transitions=tuple(map(tuple, matrix)))
    except ModelError as exc:
        raise DataError(f"{where}: {exc}") from None
