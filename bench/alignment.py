#!/usr/bin/env python3
"""Forced-alignment accuracy on the synthetic corpus: word and phone boundaries of
our hybrid systems (``asr align --words``) and of pocketsphinx's aligner, against
the true boundaries the synthesizer wrote.

Run the recipe first (``make demo``), then, for example::

    python bench/alignment.py --model cd=exp/synth_medium/cd_lstm_1000 --model ci=exp/synth_medium/ci_lstm \\
        --data data/synth_medium/test --data data/synth_medium/test_unseen \\
        --lang-words data/synth_medium/lang_words --out exp/bench_alignment/alignment.md

(with no ``--model``, ``--data`` or ``--lang-words`` the recipe's ``exp/synth_<size>/ci_lstm`` and
``cd_lstm_*``, ``data/synth_<size>/{test,test_unseen}`` and ``data/synth_<size>/lang_words``).

What each aligner is given: the audio and the utterance's WORD transcript (the data
dir's ``text``), never its true phones.

* ours: ``asr align MODEL DATA ALI --words LANG_WORDS`` (:func:`asr.steps.align.align_set`):
  Viterbi over the utterance's training graph H∘C∘L∘words, which picks each word's
  pronunciation and the optional silences. Words from ``ALI/words.ctm``, phones from
  the alignment (:func:`asr.hmm.alignment.read_alignments`, its phone runs), times
  as the alignment dir gives them (:meth:`AlignmentSet.boundary_s`: the boundary before
  frame k at k × shift + offset, the offset half of window − shift, 7.5 ms, as
  frames are labelled by their windows' centres in training).
* pocketsphinx 5 (en-us acoustic model): ``Decoder.set_align_text(words)`` and a first
  pass (an FSG over the words with optional silences and alternative pronunciations),
  then ``set_alignment()`` and a second pass, whose ``get_alignment()`` gives the
  words and their phones, times = frame index / ``frate`` (100 per second). Its
  dictionary is written for the transcripts' words (pocketsphinx's cmudict, flite's
  letter-to-sound for the rest: ``bench/pocketsphinx_words.py``). Lattice best path
  is off, as in pocketsphinx's own ``align`` command; an utterance its default beams
  cannot align is retried with wide ones (:class:`PocketsphinxAligner`), as ours
  retries with wider beams (:data:`asr.steps.align.ALIGN_BEAMS`).

pocketsphinx's times are taken as it reports them (frame k at k × 10 ms); the bias
column shows any systematic offset of either.

The truth: each utterance's ``.PHN`` and ``.WRD`` files beside its audio (the TIMIT
layout: ``wav.scp`` names ``…/<SPK>/<UTT>.WAV``) or, in the LibriSpeech layout,
``alignments/<subset>.{phones,words}`` of the corpus root
(:func:`asr.synth.librispeech.read_alignment_file`); ``--corpus`` names the corpus
root instead (TIMIT layout: utterance ``<spk>_<utt>`` is ``*/*/<SPK>/<UTT>.PHN``, as
:mod:`asr.corpus.timit` names them; LibriSpeech layout: the utterance id or the audio
file's stem). Offsets are samples at 16 kHz; phones are TIMIT's 61 symbols.

What is compared:

* Words: the truth's words and the aligner's words (lower case; pocketsphinx's
  ``(2)`` variant suffixes, ``<s>``, ``</s>``, ``<sil>`` and fillers removed) are
  paired by a minimum-edit alignment of the two word sequences
  (:func:`asr.score.align.align_indices`); every pair of equal words counts two
  boundaries, its start and its end (hypothesis − truth).
* Phones: every phone sequence is mapped onto one set, TIMIT's 39 scoring phones with
  each stop closure merged into the stop after it: ``bcl b`` → ``b`` (61 set) and
  ``vcl b`` → ``b`` (our 48 set) span closure and release, a closure with no release
  after it is its stop (``tcl`` → ``t``; a lone ``cl``/``vcl`` stays ``cl``/``vcl``
  and matches nothing), ``q`` is deleted and its time given to the phone before it,
  the rest folds 61/48 → 39 (``asr.phones.timit``); ARPAbet (pocketsphinx, or a lang
  derived from a lexicon) is lower-cased with stress digits and Kaldi's word-position
  suffixes removed, so that ``ao`` → ``aa``, ``zh`` → ``sh``, ``ah``/``ax`` → ``ah``;
  silence and noise (``h#``, ``pau``, ``epi``, ``sil``, ``SIL``, ``SPN``, ``+NSN+``, …)
  are ``sil``. The non-silence phones of the truth and of the aligner are paired by
  a minimum-edit alignment, and every pair of equal phones counts two boundaries, its
  start and its end. "matched" is the share of truth words / phones so paired.
* Silence is never a unit: the edges of the utterance (time 0 and the end) are not
  boundaries; the start of the first word / phone (the end of the leading
  silence) and the end of the last one are, like any other.

Columns, per system and set: utterances aligned / given, failures (our aligner
found no path through the training graph; pocketsphinx gave no alignment, or one
whose words are not the transcript's, e.g. a search that never reached the FSG's
final state: failed utterances are left out of the figures and named below the
table); for words and for phones the mean absolute boundary error (ms), the share
of boundaries within 10 / 20 / 50 ms, the mean signed error (bias, ms: negative =
early) and the share of truth units matched; the wall seconds the alignment took
(ours: the whole ``asr align`` command, model loading, features and network
included; pocketsphinx: audio reading and both passes).

Anchors: the Montreal Forced Aligner's published mean absolute phone-boundary
errors are 17.0–17.8 ms on TIMIT and 17.0 ms on Buckeye (McAuliffe et al.,
Interspeech 2017), and 80–89 % of boundaries within 20 ms is typical of HMM aligners
on TIMIT. The synthetic corpus' truth is flite's own segmentation (stop closures
split at a detected burst), not a phonetician's, so the figures are comparable in
kind, not in value.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runs  # noqa: E402  (puts the venv's bin on PATH; asr commands)

from asr.phones.timit import MAP_48_39, MAP_61_48  # noqa: E402
from asr.score.align import align_indices  # noqa: E402

#: The truth's sample rate (TIMIT layout and LibriSpeech side files).
TRUTH_RATE = 16000
#: Error thresholds reported, in ms.
WITHIN_MS = (10, 20, 50)
SIL = "sil"
#: Symbols (lower case, after stress / position stripping) that are silence or noise.
SILENCE_SYMBOLS = frozenset({"sil", "sp", "spn", "nsn", "h#", "pau", "epi", "garbage"})
#: A TIMIT-61 closure standing alone is its stop.
LONE_CLOSURE = {"bcl": "b", "dcl": "d", "gcl": "g", "pcl": "p", "tcl": "t", "kcl": "k"}
CLOSURES = frozenset(LONE_CLOSURE) | {"cl", "vcl"}
#: Common-set phones a closure before them merges into.
STOPS = frozenset({"b", "d", "g", "p", "t", "k", "jh", "ch"})
#: Kaldi's word-position suffixes.
_POSITIONS = ("_B", "_E", "_I", "_S")
_STRESS = re.compile(r"^(.*\D)[012]$")
_VARIANT = re.compile(r"\(\d+\)$")

Seg = tuple[float, float, str]  # start s, end s, label


# ---- phone and word labels ------------------------------------------------------------


def common_phone(symbol: str) -> Optional[str]:
    """One phone symbol (TIMIT 61 / 48, ARPAbet with or without stress, position
    suffixes, pocketsphinx fillers) → the common set: a TIMIT-39 phone, ``sil``, a
    closure symbol (resolved by :func:`common_phones`), None for ``q`` (deleted), or
    the lower-cased symbol itself when it is none of these (it then matches nothing)."""
    s = symbol.strip()
    if s[:1] in "+[<":  # +NSN+, [NOISE], <sil>
        return SIL
    if len(s) > 2 and s[-2:] in _POSITIONS:
        s = s[:-2]
    m = _STRESS.match(s)
    s = (m.group(1) if m else s).lower()
    if s in SILENCE_SYMBOLS:
        return SIL
    if s in CLOSURES:
        return s
    if s in MAP_48_39:
        return MAP_48_39[s]
    if s in MAP_61_48:
        folded = MAP_61_48[s]
        return None if folded is None else MAP_48_39[folded]
    return s


def common_phones(segs: Iterable[Seg]) -> list[Seg]:
    """Phone segments in any of the sets → segments in the common set (module docstring):
    closures merged into the stop after them (a lone one is its stop), ``q``'s time
    given to the phone before it (the one after it when it comes first), adjacent
    silences merged."""
    out: list[list] = []
    pending: Optional[float] = None  # start of a leading deleted phone
    for start, end, sym in segs:
        p = common_phone(sym)
        if p is None:
            if out:
                out[-1][1] = end
            elif pending is None:
                pending = start
            continue
        if pending is not None:
            start, pending = pending, None
        if out and ((out[-1][2] in CLOSURES and p in STOPS) or (p == SIL and out[-1][2] == SIL)):
            out[-1][1], out[-1][2] = end, p
            continue
        out.append([start, end, p])
    return [(s, e, LONE_CLOSURE.get(p, p)) for s, e, p in out]


def speech(segs: Iterable[Seg]) -> list[Seg]:
    """The segments that are not silence."""
    return [s for s in segs if s[2] != SIL]


def clean_word(token: str) -> Optional[str]:
    """An aligner's word token → the word (lower case, ``(2)`` removed); None for
    silence, sentence markers and fillers (``<sil>``, ``<s>``, ``+NSN+``, ``[NOISE]``)."""
    if not token or token[:1] in "<[+":
        return None
    return _VARIANT.sub("", token).lower()


# ---- scoring ----------------------------------------------------------------------------


def matched_pairs(ref: Sequence[Seg], hyp: Sequence[Seg]) -> list[tuple[int, int]]:
    """Index pairs (i, j) of a minimum-edit alignment of the labels where ref[i] equals hyp[j]."""
    pairs = align_indices([s[2] for s in ref], [s[2] for s in hyp])
    return [(i, j) for i, j in pairs if i is not None and j is not None and ref[i][2] == hyp[j][2]]


@dataclass
class Tally:
    """Boundary errors (hypothesis − truth, seconds) of one kind of unit over a set."""

    errors: list[float] = field(default_factory=list)
    ref_units: int = 0
    matched: int = 0

    def add(self, ref: Sequence[Seg], hyp: Sequence[Seg]) -> None:
        """Pair ``ref`` and ``hyp`` by label and add the starts and ends of the pairs."""
        pairs = matched_pairs(ref, hyp)
        self.ref_units += len(ref)
        self.matched += len(pairs)
        for i, j in pairs:
            self.errors += [hyp[j][0] - ref[i][0], hyp[j][1] - ref[i][1]]

    def summary(self) -> dict:
        """mae_ms, within (% per :data:`WITHIN_MS`), bias_ms, boundaries, matched_pct (None when empty)."""
        n = len(self.errors)
        if not n:
            return {"mae_ms": None, "within": [None] * len(WITHIN_MS), "bias_ms": None, "boundaries": 0,
                    "matched_pct": 100.0 * self.matched / self.ref_units if self.ref_units else None}
        abs_ms = [abs(e) * 1000 for e in self.errors]
        # a hair of slack: times in frames and samples rarely land exactly on a threshold
        return {"mae_ms": sum(abs_ms) / n,
                "within": [100.0 * sum(a <= t + 1e-6 for a in abs_ms) / n for t in WITHIN_MS],
                "bias_ms": 1000 * sum(self.errors) / n, "boundaries": n,
                "matched_pct": 100.0 * self.matched / self.ref_units}


@dataclass
class Alignment:
    """One utterance as an aligner (or the truth) sees it: word and phone segments."""

    words: list[Seg]
    phones: list[Seg]


@dataclass
class SetResult:
    """One system's alignments of one set."""

    system: str
    set_name: str
    utts: list[str]
    alignments: dict[str, Alignment]
    failed: dict[str, str]  # utt -> why
    seconds: float
    retried: list[str] = field(default_factory=list)  # aligned only with wide beams


def score_set(result: SetResult, truth: dict[str, Alignment]) -> dict:
    """{"words": summary, "phones": summary} of the aligned utterances of ``result``."""
    words, phones = Tally(), Tally()
    for utt, ali in result.alignments.items():
        ref = truth[utt]
        words.add([w for w in ref.words if w[2] != SIL], [w for w in ali.words if w[2] != SIL])
        phones.add(speech(common_phones(ref.phones)), speech(common_phones(ali.phones)))
    return {"words": words.summary(), "phones": phones.summary()}


# ---- the truth ----------------------------------------------------------------------------


def read_label_rows(path: Path) -> list[tuple[int, int, str]]:
    """A .PHN / .WRD file: ``start end label`` rows (samples)."""
    rows = []
    for lineno, line in enumerate(Path(path).read_text(encoding="latin-1").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3 or not (fields[0].isdigit() and fields[1].isdigit()):
            sys.exit(f"{path}:{lineno}: expected '<start> <end> <label>', got {line!r}")
        rows.append((int(fields[0]), int(fields[1]), fields[2]))
    return rows


def rows_to_alignment(words: Sequence[tuple[int, int, str]], phones: Sequence[tuple[int, int, str]]) -> Alignment:
    """Sample rows → an :class:`Alignment` in seconds, labels lower-cased."""
    def segs(rows):
        return [(s / TRUTH_RATE, e / TRUTH_RATE, label.lower()) for s, e, label in rows]
    return Alignment(segs(words), segs(phones))


def _sibling(path: Path, ext: str) -> Optional[Path]:
    """``path`` with extension ``ext`` (any case), when that file exists."""
    for cand in (path.with_suffix("." + ext.upper()), path.with_suffix("." + ext.lower())):
        if cand.is_file():
            return cand
    if path.parent.is_dir():
        want = f"{path.stem}.{ext}".lower()
        for f in path.parent.iterdir():
            if f.name.lower() == want:
                return f
    return None


class TruthFinder:
    """The true words and phones of an utterance (module docstring: where they are found)."""

    def __init__(self, corpus: Optional[Path] = None) -> None:
        self.corpus = corpus
        self._side: dict[Path, dict] = {}  # alignments/<subset>.<kind> read once
        self._timit: Optional[dict[str, Path]] = None

    def _side_file(self, path: Path) -> dict:
        if path not in self._side:
            from asr.errors import DataError
            from asr.synth.librispeech import read_alignment_file
            try:
                self._side[path] = read_alignment_file(path) if path.is_file() else {}
            except DataError as exc:
                sys.exit(str(exc))
        return self._side[path]

    def _timit_index(self) -> dict[str, Path]:
        """``<spk>_<utt>`` (lower case) → the utterance's path without extension, over the corpus."""
        if self._timit is None:
            self._timit = {}
            for phn in self.corpus.glob("*/*/*/*"):
                if phn.suffix.lower() == ".phn":
                    self._timit[f"{phn.parent.name.lower()}_{phn.stem.lower()}"] = phn.with_suffix("")
        return self._timit

    def _libri(self, root: Path, subsets: Iterable[str], keys: Sequence[str]) -> Optional[Alignment]:
        for subset in subsets:
            phones = self._side_file(root / "alignments" / f"{subset}.phones")
            words = self._side_file(root / "alignments" / f"{subset}.words")
            for key in keys:
                if key in phones and key in words:
                    return rows_to_alignment(words[key], phones[key])
        return None

    def find(self, utt: str, audio: Optional[Path]) -> Optional[Alignment]:
        """The truth of ``utt`` (audio file ``audio``, None for a pipe), or None when not found."""
        if self.corpus is not None:
            if (self.corpus / "alignments").is_dir():
                subsets = sorted(p.name.rsplit(".", 1)[0] for p in (self.corpus / "alignments").glob("*.phones"))
                return self._libri(self.corpus, subsets, [utt] + ([audio.stem] if audio else []))
            stem = self._timit_index().get(utt.lower())
            return self._timit_files(stem) if stem is not None else None
        if audio is None:
            return None
        found = self._timit_files(audio)
        if found is None and len(audio.parents) > 3:  # <root>/<subset>/<spk>/<chapter>/<utt>.flac
            found = self._libri(audio.parents[3], [audio.parents[2].name], [audio.stem])
        return found

    def _timit_files(self, stem: Path) -> Optional[Alignment]:
        phn, wrd = _sibling(stem, "phn"), _sibling(stem, "wrd")
        if phn is None or wrd is None:
            return None
        return rows_to_alignment(read_label_rows(wrd), read_label_rows(phn))


# ---- data ----------------------------------------------------------------------------------


def pick_utts(spk2utt: dict[str, list[str]], max_utts: Optional[int]) -> list[str]:
    """Every utterance, or ``max_utts`` of them taken from the speakers in turn
    (each speaker's first, then each one's second, …), sorted."""
    utts = sorted(u for us in spk2utt.values() for u in us)
    if max_utts is None or max_utts >= len(utts):
        return utts
    queues = [sorted(spk2utt[s]) for s in sorted(spk2utt)]
    picked: list[str] = []
    for k in range(max(map(len, queues))):
        picked += [q[k] for q in queues if k < len(q)]
    return sorted(picked[:max_utts])


def subset_by_utts(src: Path, dst: Path, utts: Sequence[str]) -> Path:
    """The data dir ``dst``: ``src`` with only ``utts`` (features' scp files filtered too)."""
    from asr.corpus.datadir import read_datadir, read_scp, write_datadir, write_scp
    from asr.io import atomic_write_text

    dd = read_datadir(src)
    keep = set(utts)
    spks = {dd.utt2spk[u] for u in keep}
    write_datadir(dst, {u: dd.wav[u] for u in keep}, {u: dd.text[u] for u in keep},
                  {u: dd.utt2spk[u] for u in keep}, {s: g for s, g in dd.spk2gender.items() if s in spks},
                  {u: dd.phone_segments[u] for u in keep if u in dd.phone_segments})
    for name in ("feats.scp", "cmvn.scp"):
        write_scp(dst / name, {k: v for k, v in read_scp(src / name).items() if k in keep | spks})
    atomic_write_text(dst / "feats.yaml", (src / "feats.yaml").read_text())
    return dst


def audio_path(entry: str) -> Optional[Path]:
    """The file a ``wav.scp`` entry names (None for a pipe)."""
    from asr.audio import is_pipe

    return None if is_pipe(entry) else Path(entry)


# ---- the aligners ----------------------------------------------------------------------------


def read_ctm(path: Path) -> dict[str, list[Seg]]:
    """``utt channel start duration word`` lines → {utt: [(start, end, word)]}."""
    out: dict[str, list[Seg]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        f = line.split()
        if len(f) >= 5:
            start = float(f[2])
            out.setdefault(f[0], []).append((start, start + float(f[3]), f[4].lower()))
    return out


def align_ours(name: str, model: Path, data: Path, set_name: str, utts: list[str], lang: Path,
               work: Path, device: str) -> SetResult:
    """``asr align MODEL DATA ALI --words LANG`` and its words and phones."""
    from asr.hmm.alignment import read_alignments

    ali = work / name / set_name
    start = time.perf_counter()
    try:
        runs.asr(work / "logs" / f"{name}.{set_name}.align.log", "align", str(model), str(data), str(ali),
                 "--words", str(lang), "--device", device)
    except SystemExit as exc:
        if "no utterance could be aligned" not in str(exc):
            raise
        return SetResult(name, set_name, utts, {}, {u: "no path (every utterance failed)" for u in utts},
                         time.perf_counter() - start)
    seconds = time.perf_counter() - start
    alignments = read_ali_dir(ali)
    log = work / "logs" / f"{name}.{set_name}.align.log"
    failed = {u: f"no path through its training graph (see {log})" for u in utts if u not in alignments}
    return SetResult(name, set_name, utts, alignments, failed, seconds)


def read_ali_dir(ali: Path) -> dict[str, Alignment]:
    """The words (``words.ctm``) and phones (the alignment's runs, the dir's times) of an alignment dir."""
    from asr.hmm.alignment import read_alignments

    aset = read_alignments(ali)
    ctm = read_ctm(ali / "words.ctm") if (ali / "words.ctm").is_file() else {}
    return {utt: Alignment(ctm.get(utt, []), aset.segments(utt)) for utt in aset.utts}


def ali_source_data(ali: Path) -> Path:
    """The data dir an alignment dir aligned (``ali.yaml``'s ``source.data``)."""
    import yaml

    meta = yaml.safe_load((ali / "ali.yaml").read_text()) or {}
    return Path((meta.get("source") or {})["data"])


class PocketsphinxAligner:
    """pocketsphinx's aligner: the en-us acoustic model, ``dict_path``, no LM, and no
    lattice best path (``bestpath`` off, as its own ``pocketsphinx align`` runs: the
    lattice adds overlapping ``<s>`` / ``</s>`` words that break the second pass). An
    utterance its default beams cannot align is retried with wide beams (beam, pbeam and
    wbeam :data:`WIDE_BEAM`), as our aligner retries with wider beams."""

    WIDE_BEAM = 1e-80

    def __init__(self, dict_path: Path) -> None:
        from pocketsphinx import get_model_path

        self.hmm = Path(get_model_path()) / "en-us" / "en-us"
        if not self.hmm.is_dir():
            sys.exit(f"{self.hmm}: pocketsphinx's en-us model is missing (is pocketsphinx installed?)")
        self.dict_path = dict_path
        self._decoders: dict[bool, object] = {}

    def decoder(self, wide: bool):
        if wide not in self._decoders:
            from pocketsphinx import Decoder

            beams = {k: self.WIDE_BEAM for k in ("beam", "pbeam", "wbeam")} if wide else {}
            self._decoders[wide] = Decoder(hmm=str(self.hmm), dict=str(self.dict_path), lm=None,
                                           bestpath=False, loglevel="FATAL", **beams)
        return self._decoders[wide]

    def align(self, pcm: bytes, words: list[str]) -> tuple[Alignment | str, bool]:
        """(the :class:`Alignment` or why it failed, whether the wide beams were used)."""
        why = ""
        for wide in (False, True):
            try:
                got = ps_align(self.decoder(wide), pcm, words)
            except RuntimeError as exc:  # a pass that cannot finish; the decoder is not reused
                self._decoders.pop(wide, None)
                got = f"pocketsphinx failed ({exc})"
            if not isinstance(got, str):
                return got, wide
            why = got if not wide else f"{why}; with wide beams: {got}"
        return why, True


def _decode(decoder, pcm: bytes) -> None:
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()


def ps_align(decoder, pcm: bytes, words: list[str]) -> Alignment | str:
    """Align ``words`` to 16 kHz int16 ``pcm`` → its :class:`Alignment`, or why it failed."""
    try:
        decoder.set_align_text(" ".join(words))
    except (RuntimeError, ValueError) as exc:
        return f"set_align_text failed ({exc})"
    _decode(decoder, pcm)
    if decoder.hyp() is None:
        return "no hypothesis"
    try:
        decoder.set_alignment()
    except (RuntimeError, ValueError) as exc:
        return f"set_alignment failed ({exc})"
    _decode(decoder, pcm)
    al = decoder.get_alignment()
    if al is None:
        return "no alignment"
    rate = float(decoder.config["frate"])
    word_segs, phone_segs = [], []
    for w in al.words():
        word = clean_word(w.name)
        if word is not None:
            word_segs.append((w.start / rate, (w.start + w.duration) / rate, word))
        phone_segs += [(p.start / rate, (p.start + p.duration) / rate, p.name) for p in w]
    got = [w[2] for w in word_segs]
    if got != [w.lower() for w in words]:
        return f"aligned words are not the transcript's: {' '.join(got)[:120]!r}"
    return Alignment(word_segs, phone_segs)


def align_pocketsphinx(aligner: PocketsphinxAligner, data: Path, set_name: str, utts: list[str]) -> SetResult:
    """pocketsphinx's alignment of ``utts`` of the data dir ``data``."""
    from asr.audio import MODEL_RATE, read_audio_entry
    from asr.corpus.datadir import read_datadir
    from pocketsphinx_peer import _to_int16  # bench/ is on sys.path (top of this file)

    dd = read_datadir(data)
    alignments, failed, wide = {}, {}, []
    start = time.perf_counter()
    for utt in utts:
        audio = read_audio_entry(dd.wav[utt], rate=MODEL_RATE, resample=True)
        got, retried = aligner.align(_to_int16(audio.samples, audio.rate).tobytes(), dd.text[utt].split())
        if isinstance(got, str):
            failed[utt] = got
        else:
            alignments[utt] = got
            wide += [utt] if retried else []
    return SetResult("pocketsphinx", set_name, utts, alignments, failed, time.perf_counter() - start, wide)


# ---- the table ------------------------------------------------------------------------------


def _num(x: Optional[float], fmt: str = ".1f") -> str:
    return "–" if x is None else format(x, fmt)


def table(rows: list[tuple[SetResult, dict]]) -> str:
    """The markdown table: one row per (system, set)."""
    within = "/".join(f"≤{t}" for t in WITHIN_MS)
    head = ["system", "set", "aligned", "failed",
            "word MAE ms", f"word {within} ms %", "word bias ms", "words matched %",
            "phone MAE ms", f"phone {within} ms %", "phone bias ms", "phones matched %", "seconds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for res, s in rows:
        cells = [res.system, res.set_name, f"{len(res.alignments)}/{len(res.utts)}", str(len(res.failed))]
        for kind in ("words", "phones"):
            k = s[kind]
            cells += [_num(k["mae_ms"]), "/".join(_num(w, ".0f") for w in k["within"]),
                      _num(k["bias_ms"], "+.1f"), _num(k["matched_pct"])]
        cells.append(f"{res.seconds:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def failures(results: list[SetResult]) -> str:
    """Failed utterances, system by system."""
    lines = []
    for res in results:
        for utt, why in sorted(res.failed.items()):
            lines.append(f"- {res.system} / {res.set_name}: {utt}: {why}")
    text = "Failed utterances:\n\n" + "\n".join(lines) if lines else "No utterance failed to align."
    wide = [f"{res.system} / {res.set_name}: {', '.join(res.retried)}" for res in results if res.retried]
    return text + ("\n\nAligned only on the retry with wide beams: " + "; ".join(wide) if wide else "")


NOTE = """Boundaries: the start and end of every word (or non-silence phone, TIMIT-39 with
closures merged into their stops) paired with an equal truth unit by a minimum-edit
alignment; error = aligner − truth; utterance edges (silence) are not boundaries.
Times as each aligner gives them (ours: the alignment dir's, boundaries between frame centres; pocketsphinx: frame index × 10 ms). Anchors: the
Montreal Forced Aligner's mean phone-boundary error is 17.0–17.8 ms on TIMIT and 17.0 ms
on Buckeye; 80–89 % of boundaries within 20 ms is typical of HMM aligners on TIMIT.
See bench/alignment.py's docstring for the details."""


# ---- main ------------------------------------------------------------------------------------


def parse_model(text: str) -> tuple[str, Path]:
    """``NAME=DIR`` or ``DIR`` (named after the dir)."""
    name, sep, path = text.partition("=")
    return (name, Path(path)) if sep and name and path else (Path(text).name, Path(text))


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="medium", help="corpus size of the defaults (default medium)")
    p.add_argument("--model", action="append", default=[], metavar="NAME=DIR",
                   help="a system to align with, repeatable (default exp/synth_<size>/ci_lstm and cd_lstm_*)")
    p.add_argument("--data", type=Path, action="append",
                   help="data dir with features, repeatable (default data/synth_<size>/test and test_unseen)")
    p.add_argument("--lang-words", type=Path, help="word lang dir of asr prepare-lang "
                   "(default data/synth_<size>/lang_words)")
    p.add_argument("--corpus", type=Path, help="corpus root holding the truth (default: the .PHN/.WRD "
                   "beside each audio file, or the LibriSpeech layout's alignments/)")
    p.add_argument("--max-utts", type=int, help="align at most N utterances of each set (spread over its speakers)")
    p.add_argument("--no-pocketsphinx", action="store_true", help="leave pocketsphinx out")
    p.add_argument("--ali", action="append", default=[], metavar="NAME=DIR",
                   help="also score an alignment dir made already (asr align / align-equal: e.g. the flat "
                        "start's rounds); its set is the data dir its ali.yaml names")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="asr align's device")
    p.add_argument("--work", type=Path, default=Path("exp/bench_alignment"), help="alignments and logs go here")
    p.add_argument("--out", type=Path, default=Path("exp/bench_alignment/alignment.md"), help="the table goes here")
    args = p.parse_args(argv)
    command = "python " + " ".join(shlex.quote(a) for a in [p.prog if argv is not None else sys.argv[0],
                                                              *(argv if argv is not None else sys.argv[1:])])
    if args.max_utts is not None and args.max_utts < 1:
        p.error("--max-utts must be at least 1")

    exp = Path(f"exp/synth_{args.size}")
    models = [parse_model(m) for m in args.model] or ([] if args.ali else [
        (d.name, d) for d in [exp / "ci_lstm", *sorted(exp.glob("cd_lstm_*"))] if (d / "bundle.yaml").is_file()])
    aligning = bool(models) or not args.no_pocketsphinx
    data_dirs = args.data or ([Path(f"data/synth_{args.size}/{n}") for n in ("test", "test_unseen")] if aligning else [])
    lang = args.lang_words or Path(f"data/synth_{args.size}/lang_words")
    names = [n for n, _ in models] + ([] if args.no_pocketsphinx else ["pocketsphinx"])
    problems = [f"{d}: not a model dir (no bundle.yaml)" for _, d in models if not (d / "bundle.yaml").is_file()]
    if len(set(names)) != len(names):
        problems.append(f"system names repeat: {names}")
    if models and not (lang / "lexicon.txt").is_file():
        problems.append(f"{lang}: not a word lang dir (no lexicon.txt; make one with asr prepare-lang)")
    for d in data_dirs:
        lacking = [f for f in ("feats.scp", "cmvn.scp", "feats.yaml", "text", "wav.scp") if not (d / f).is_file()]
        if lacking:
            problems.append(f"{d}: no {', '.join(lacking)} (a data dir with features: asr make-feats)")
        elif (d / "segments").is_file():
            problems.append(f"{d}: has segments; only data dirs of whole recordings can be scored")
    if len({d.name for d in data_dirs}) != len(data_dirs):
        problems.append(f"data dirs must have distinct names: {[str(d) for d in data_dirs]}")
    if args.corpus is not None and not args.corpus.is_dir():
        problems.append(f"{args.corpus}: no such corpus dir")
    if not names and not args.ali:
        problems.append("no system to align: give --model, or leave out --no-pocketsphinx")
    problems += [f"{d}: not an alignment dir (no ali.yaml)" for _, d in map(parse_model, args.ali)
                 if not (d / "ali.yaml").is_file()]
    if problems:
        sys.exit("missing inputs (run the recipe first: make demo):\n  " + "\n  ".join(problems))

    from asr.corpus.datadir import read_datadir

    finder = TruthFinder(args.corpus)
    sets = []  # (set name, data dir to align, utts, truth)
    for d in data_dirs:
        dd = read_datadir(d)
        utts = pick_utts(dd.spk2utt, args.max_utts)
        truth, lacking = {}, []
        for u in utts:
            t = finder.find(u, audio_path(dd.wav[u]))
            if t is None:
                lacking.append(u)
            else:
                truth[u] = t
        if lacking:
            sys.exit(f"{d}: no true boundaries found for {len(lacking)} of {len(utts)} utterances (e.g. "
                     f"{lacking[0]}, audio {dd.wav[lacking[0]]}): expected .PHN/.WRD beside the audio or "
                     f"alignments/<subset>.phones|words; give --corpus")
        aligned = d if len(utts) == len(dd.utts) else subset_by_utts(d, args.work / "data" / d.name, utts)
        sets.append((d.name, aligned, utts, truth, dd))

    print(command, flush=True)
    results: list[tuple[SetResult, dict]] = []
    for name, ali in map(parse_model, args.ali):
        data = ali_source_data(ali)
        dd = read_datadir(data)
        alignments = read_ali_dir(ali)
        truth = {u: finder.find(u, audio_path(dd.wav[u])) for u in alignments}
        missing = [u for u, t in truth.items() if t is None]
        if missing:
            sys.exit(f"{ali}: no true boundaries for {len(missing)} utterances (e.g. {missing[0]}); give --corpus")
        res = SetResult(name, data.name, sorted(dd.utts), alignments,
                        {u: "not in the alignment dir" for u in dd.utts if u not in alignments}, 0.0)
        results.append((res, score_set(res, truth)))
    for name, model in models:
        for set_name, data, utts, truth, _ in sets:
            res = align_ours(name, model, data, set_name, utts, lang, args.work, args.device)
            results.append((res, score_set(res, truth)))
            print(f"{name} / {set_name}: {len(res.alignments)} aligned, {len(res.failed)} failed, "
                  f"{res.seconds:.0f} s", flush=True)
    if not args.no_pocketsphinx:
        from pocketsphinx_words import pocketsphinx_dict

        words = sorted({w for _, _, utts, _, dd in sets for u in utts for w in dd.text[u].split()})
        args.work.mkdir(parents=True, exist_ok=True)
        pocketsphinx_dict(words, args.work / "pocketsphinx.dict")
        aligner = PocketsphinxAligner(args.work / "pocketsphinx.dict")
        for set_name, data, utts, truth, _ in sets:
            res = align_pocketsphinx(aligner, data, set_name, utts)
            results.append((res, score_set(res, truth)))
            print(f"pocketsphinx / {set_name}: {len(res.alignments)} aligned, {len(res.failed)} failed, "
                  f"{res.seconds:.0f} s", flush=True)

    text = f"`{command}`\n\n{table(results)}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs.report(args.out, "Forced-alignment boundary errors against the synthesizer's truth", text,
                f"{failures([r for r, _ in results])}\n\n{NOTE}")
    print()
    print(failures([r for r, _ in results]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
