"""Forced alignment of a corpus of recordings with their transcripts (``asr align-corpus``),
the job of the Montreal Forced Aligner: Praat TextGrids with a ``words`` and a ``phones``
tier, or CTM files, for every recording.

Input: an aligner-style corpus dir, as :mod:`asr.corpus.layouts` reads it:
``NAME.wav|flac`` with its transcript ``NAME.txt|lab`` beside it (the whole
file is the transcript), in ``CORPUS_DIR`` or in (speaker) subfolders of it,
any sample rate or channel count (resampled and down-mixed as ``asr
transcribe`` does). Output, per recording, under the same relative path
(speaker subfolders are mirrored): ``OUT_DIR/NAME.TextGrid``; or, with
``fmt="ctm"``, one ``OUT_DIR/words.ctm`` and ``OUT_DIR/phones.ctm`` for the
corpus (lines ``NAME 1 START DUR LABEL``, seconds; NAME is the relative path
without the extension); ``fmt="both"`` writes both. ``OUT_DIR/oovs.txt`` lists
the transcript words the lexicon lacked with the pronunciation they were
aligned with (``word phone phone ...``, one line per pronunciation; empty when
there were none).

How each recording is aligned:

* the words: each transcript token is stripped of the punctuation around it
  (``"Hello,"`` → ``Hello``; apostrophes and hyphens inside are kept) and
  looked up in the bundle's lexicon (its word graph's ``lexicon.txt``) as
  written, then lower-cased; a hyphenated word the lexicon lacks is split at its
  hyphens. A word still missing gets CMUdict's or flite's letter-to-sound
  pronunciation (:meth:`TrainingGraphs.add_new_words`); one that gets neither
  is aligned as ``<unk>``, said with the lang's garbage phone (``sil`` in
  TIMIT's 48-phone lang). The ``words`` tier shows the words as looked up
  (lower-cased where the lexicon's are);
* the features: those ``asr transcribe`` computes (per-file CMVN over the frames
  Silero VAD calls speech, for bundles trained so);
* the alignment: Viterbi over the file's training graph H∘C∘L∘(its words)
  (:meth:`TrainingGraphs.graph`: every pronunciation variant, optional silence
  before, between and after the words with probability ``sil_prob``), with the
  beams of :data:`asr.steps.align.ALIGN_BEAMS` tried in turn (``beam``: that beam
  first, then the wider ones). The whole file is one utterance: with the
  demo's CD BLSTM, a 63 s file of 205 words takes 0.07 s to build its graph
  and 0.3 s to align on one CPU thread (the network's posteriors 1.3 s, the
  features with Silero VAD 1.3 s), and its word boundaries are 14 ms from the
  true ones on average, so long files are not cut at pauses. Its CMVN is
  the whole file's, as for ``asr transcribe``: a file of several speakers
  aligns worse than the same speech file by file (markedly so with a weak model).

Times: the boundary before frame ``t`` is at ``t · shift + offset`` (the offset is
half of window − shift, 7.5 ms: frames are labelled by their windows' centres, as
:mod:`asr.hmm.alignment` says; on the medium demo's test set this takes the mean
phone-boundary error from 9.9 to 8.2 ms and its bias from −6.3 to +1.2 ms,
``bench/alignment.py``); the last interval of each tier is extended to the end of
the file, so the tiers cover ``[0, duration]`` exactly. In the ``words`` tier the stretches between words are empty
intervals, as in Praat and MFA's TextGrids; in the ``phones`` tier the phones
of the words carry labels and the optional silence between words is an empty
interval too. ``phone_set="arpabet"`` (for TIMIT's 48-phone lang only) writes
the phones as CMUdict's ARPAbet, without stress digits: a stop's or
affricate's closure and release (``cl t``, ``vcl jh``) become one interval of the
ARPAbet phone (``T``, ``JH``), ``ax`` → ``AH``, ``ix`` → ``IH``, ``el`` → ``L``,
``en`` → ``N``, the flap ``dx`` → ``T``, and the garbage phone inside an unknown
word → ``spn``. The CTM files list the words and the phones of the words (no
silence lines).

A recording that cannot be aligned is reported by name with the reason and
left out; the others are written. Reasons: no transcript beside it (or a
transcript with no audio), two audio files or two transcripts of one name,
unreadable audio, a transcript that is empty or not UTF-8, no speech (fewer
than 0.1 s of speech frames: Silero VAD for bundles with speech CMVN, else the
energy detector of :mod:`asr.decode.segment`; silence is not aligned to
words), too short for its transcript (fewer frames than its shortest
pronunciation needs), and no path through the graph at any beam (the
transcript does not match the audio).
"""

from __future__ import annotations

import logging
import os
import re
import string
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import soundfile as sf
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from asr.audio import read_audio
from asr.corpus.layouts import ALIGNER_AUDIO, ALIGNER_TRANSCRIPTS
from asr.decode.hybrid import HybridModel, scaled_loglikes
from asr.decode.segment import frame_energy_db, speech_mask
from asr.decode.words import load_word_graph, word_spans
from asr.errors import AsrError, DataError, GraphError, ModelError
from asr.features.cmvn import MIN_SPEECH_FRAMES, apply_cmvn, enough_speech, speech_stats
from asr.features.extract import features_and_speech
from asr.hmm.alignment import textgrid_text
from asr.hmm.transitions import PhoneRun, ci_transitions
from asr.io import atomic_write_text
from asr.lang.lexicon import Lexicon, Pron
from asr.lang.train_graph import DEFAULT_SIL_PROB, TrainingGraphs
from asr.phones.timit import PHONES48
from asr.steps.align import ALIGN_BEAMS, forced_path, frame_offset_s
from asr.symbols import UNK, is_garbage_word

log = logging.getLogger(__name__)

FORMATS = ("textgrid", "ctm", "both")
PHONE_SETS = ("model", "arpabet")
TEXTGRID_SUFFIX = ".TextGrid"
WORDS_CTM, PHONES_CTM, OOVS_TXT, FAILED_TXT = "words.ctm", "phones.ctm", "oovs.txt", "failed.txt"
#: Punctuation stripped from either end of a transcript token (``<`` and ``>`` are kept: ``<unk>``).
EDGE_PUNCTUATION = "".join(c for c in string.punctuation if c not in "<>") + "“”‘’«»„‚‹›…–—¡¿"
#: The label of the garbage phone inside an unknown word in the ARPAbet phones tier (MFA's).
SPOKEN_NOISE = "spn"

#: TIMIT's 48 phones → CMUdict's ARPAbet (no stress); the silences map to "" (no label) and
#: the closures to None (merged into the release that follows them).
TIMIT48_TO_ARPABET: dict[str, str | None] = {
    **{p: p.upper() for p in ("aa ae ah ao aw ay b ch d dh eh er ey f g hh ih iy jh k l m n ng ow "
                               "oy p r s sh t th uh uw v w y z zh").split()},
    "ax": "AH", "ix": "IH", "el": "L", "en": "N", "dx": "T",
    "sil": "", "epi": "", "cl": None, "vcl": None,
}
#: The releases a closure is merged into.
_RELEASES = {"cl": ("p", "t", "k", "ch"), "vcl": ("b", "d", "g", "jh")}
assert set(TIMIT48_TO_ARPABET) == set(PHONES48)


class AlignFailure(Exception):
    """One recording cannot be aligned; the message says why (without its name)."""


@dataclass(frozen=True)
class CorpusFile:
    """One recording of the corpus and its transcript.

    Attributes:
        name: its path relative to the corpus dir without the extension, ``/``-separated
            (``spk1/a``): where its output goes and how messages name it.
        audio: the audio file, or None (a transcript without audio).
        transcript: the transcript file, or None (audio without a transcript).
        problem: why it cannot be aligned, found when the corpus was listed ("" if none).
    """

    name: str
    audio: Path | None
    transcript: Path | None
    problem: str = ""

    @property
    def path(self) -> Path | None:
        """The file messages name: the audio, else the transcript."""
        return self.audio or self.transcript


@dataclass
class FileAlignment:
    """The words and phones of one recording, in seconds.

    Attributes:
        duration_s: the length of the audio file (seconds).
        words: (start_s, end_s, word) of each transcript word, in order.
        phones: (start_s, end_s, label) covering [0, duration_s] contiguously;
            label "" between words (optional silence).
        notes: what was done to it (resampled, down-mixed, beam used).
    """

    duration_s: float
    words: list[tuple[float, float, str]]
    phones: list[tuple[float, float, str]]
    notes: list[str] = field(default_factory=list)


@dataclass
class CorpusReport:
    """What :func:`align_corpus` did: the names aligned, {name: reason} of those that failed,
    the new words' pronunciations, and the seconds taken."""

    aligned: list[str]
    failed: dict[str, str]
    new_words: dict[str, list[Pron]]
    seconds: float

    def summary(self, out_dir: Path) -> str:
        """The lines printed at the end: counts, then each failure with its reason."""
        total = len(self.aligned) + len(self.failed)
        lines = [f"{len(self.aligned)} aligned, {len(self.failed)} failed (of {total} recordings, "
                 f"{self.seconds:.1f} s); output in {out_dir}"]
        lines += [f"  failed: {name}: {why}" for name, why in sorted(self.failed.items())]
        return "\n".join(lines)


# ---- the corpus ---------------------------------------------------------------------------


def list_corpus(corpus_dir: Path) -> list[CorpusFile]:
    """Every recording (and every lone transcript) under ``corpus_dir``, sorted by name.

    Hidden files and folders are skipped; extensions are matched in any case
    (``.WAV`` is audio). Two audio files or two transcripts of one name are not
    an error here: that name's :attr:`CorpusFile.problem` says so.

    Raises:
        DataError: ``corpus_dir`` is missing, or holds no audio file and no transcript.
    """
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise DataError(f"{corpus_dir}: corpus directory does not exist")
    groups: dict[str, dict[str, list[Path]]] = {}
    for dirpath, dirnames, filenames in os.walk(corpus_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = Path(dirpath).relative_to(corpus_dir)
        for fname in sorted(filenames):
            stem, ext = os.path.splitext(fname)
            ext = ext.lower()
            if fname.startswith(".") or ext not in ALIGNER_AUDIO + ALIGNER_TRANSCRIPTS:
                continue
            kind = "audio" if ext in ALIGNER_AUDIO else "transcript"
            name = (rel / stem).as_posix()
            groups.setdefault(name, {"audio": [], "transcript": []})[kind].append(Path(dirpath) / fname)
    if not groups:
        raise DataError(f"{corpus_dir}: no audio files ({', '.join(ALIGNER_AUDIO)}) or transcripts "
                        f"({', '.join(ALIGNER_TRANSCRIPTS)}) in it or its subfolders")
    out = []
    for name in sorted(groups):
        audio, trans = groups[name]["audio"], groups[name]["transcript"]
        problem, stem = "", name.rsplit("/", 1)[-1]
        if len(audio) > 1 or len(trans) > 1:
            both = audio if len(audio) > 1 else trans
            problem = (f"{' and '.join(p.name for p in both)} are both there: keep one "
                       f"{'audio file' if both is audio else 'transcript'} per name")
        elif not trans:
            problem = f"no transcript ({' or '.join(stem + e for e in ALIGNER_TRANSCRIPTS)}) beside it"
        elif not audio:
            problem = f"no audio file ({' or '.join(stem + e for e in ALIGNER_AUDIO)}) beside it"
        out.append(CorpusFile(name, audio[0] if audio else None, trans[0] if trans else None, problem))
    return out


def read_transcript(path: Path) -> list[str]:
    """The tokens of a transcript file: whitespace-separated, punctuation around each stripped.

    Raises:
        AlignFailure: the file cannot be read, is not UTF-8, or holds no word.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AlignFailure(f"transcript {path.name} is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise AlignFailure(f"cannot read transcript {path.name} ({exc.strerror or exc})") from None
    tokens = [t if is_garbage_word(t) else t.strip(EDGE_PUNCTUATION) for t in text.split()]
    tokens = [t for t in tokens if t]
    if not tokens:
        raise AlignFailure(f"transcript {path.name} is empty (no words to align)")
    return tokens


def lexicon_words(tokens: Sequence[str], prons: dict) -> list[str]:
    """The transcript ``tokens`` as the lexicon ``prons`` spells them: as written, else
    lower-cased; a hyphenated token neither finds is split at its hyphens; a word
    still missing is returned lower-cased (a new word)."""
    out: list[str] = []
    for tok in tokens:
        for cand in (tok, tok.lower()):
            if cand in prons:
                out.append(cand)
                break
        else:
            parts = [p for p in tok.split("-") if p]
            if len(parts) > 1:
                out += lexicon_words(parts, prons)
            else:
                out.append(tok.lower())
    return out


# ---- output formats -----------------------------------------------------------------------


def word_tier(words: Sequence[tuple[float, float, str]], duration_s: float) -> list[tuple[float, float, str]]:
    """The ``words`` tier: the words with empty intervals between them, covering [0, duration_s]."""
    out: list[tuple[float, float, str]] = []
    t = 0.0
    for a, b, w in words:
        if a > t:
            out.append((t, a, ""))
        out.append((a, b, w))
        t = b
    if t < duration_s:
        out.append((t, duration_s, ""))
    return out


def ctm_lines(name: str, intervals: Iterable[tuple[float, float, str]]) -> str:
    """CTM lines ``name 1 start dur label`` (seconds, 3 decimals) of the labelled intervals;
    start and end are rounded to the millisecond first, so the lines of contiguous intervals
    meet exactly."""
    lines = []
    for a, b, label in intervals:
        if label:
            ms_a, ms_b = round(a * 1000), round(b * 1000)
            lines.append(f"{name} 1 {ms_a / 1000:.3f} {(ms_b - ms_a) / 1000:.3f} {label}\n")
    return "".join(lines)


def arpabet_phones(phones: Sequence[tuple[float, float, str]], garbage: str
                   ) -> list[tuple[float, float, str]]:
    """The phone intervals of TIMIT's 48-phone lang relabelled as ARPAbet (see the module docstring):
    closures merged into their release; the ``garbage`` phone inside a word → ``spn``."""
    out: list[tuple[float, float, str]] = []
    i = 0
    while i < len(phones):
        a, b, p = phones[i]
        if p in _RELEASES and i + 1 < len(phones) and phones[i + 1][2] in _RELEASES[p]:
            out.append((a, phones[i + 1][1], TIMIT48_TO_ARPABET[phones[i + 1][2]]))  # type: ignore[arg-type]
            i += 2
            continue
        if not p:
            label = ""
        elif p == garbage and not TIMIT48_TO_ARPABET.get(p):
            label = SPOKEN_NOISE
        else:
            mapped = TIMIT48_TO_ARPABET.get(p)
            label = p if mapped is None else mapped  # a closure without its release keeps its name
        out.append((a, b, label))
        i += 1
    return _merge_empty(out)


def _merge_empty(intervals: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """``intervals`` with runs of neighbouring empty intervals joined."""
    out: list[tuple[float, float, str]] = []
    for a, b, label in intervals:
        if out and not label and not out[-1][2]:
            out[-1] = (out[-1][0], b, "")
        else:
            out.append((a, b, label))
    return out


# ---- the aligner --------------------------------------------------------------------------


class CorpusAligner:
    """A model bundle, its lexicon and training-graph maker, loaded once for a corpus."""

    def __init__(self, model: HybridModel, sil_prob: float = DEFAULT_SIL_PROB, beam: float | None = None,
                 acwt: float = 1.0, phone_set: str = "model") -> None:
        """Args:
            model: a bundle with a word graph installed (its lexicon is used).
            sil_prob: probability of optional silence before, between and after words.
            beam: the first decoding beam (acoustic scale 1 units); None: :data:`ALIGN_BEAMS`.
            acwt: acoustic scale.
            phone_set: ``model`` (the model's phones) or ``arpabet`` (TIMIT's 48-phone lang only).

        Raises:
            ModelError: the bundle has no word graph, or its phones have no ARPAbet mapping.
            GraphError: ``sil_prob`` outside [0, 1); DataError: a bad beam, scale or phone set.
        """
        if phone_set not in PHONE_SETS:
            raise DataError(f"unknown phone set {phone_set!r}; choose one of {', '.join(PHONE_SETS)}")
        if phone_set == "arpabet" and not set(model.phones) <= set(PHONES48):
            raise ModelError(f"{model.model_dir}: --phone-set arpabet maps TIMIT's 48 phones only; this "
                             f"model's phones ({', '.join(model.phones[:5])}, ...) are not TIMIT's: "
                             f"use --phone-set model")
        if beam is not None and not beam > 0:
            raise DataError(f"the beam must be positive, not {beam}")
        if not acwt > 0:
            raise DataError(f"the acoustic scale must be positive, not {acwt}")
        self.model, self.acwt, self.phone_set = model, acwt, phone_set
        self.beams = ALIGN_BEAMS if beam is None else (beam, *(b for b in ALIGN_BEAMS if b > beam))
        lexicon = load_word_graph(model).lexicon
        lexicon = Lexicon({w: list(p) for w, p in lexicon.prons.items()})  # a copy: new words go in it
        self.graphs = TrainingGraphs(model.lang, lexicon, sil_prob, str(model.model_dir / "graph_words"))
        self.shift_s = model.frame_rate.shift_s
        self.offset_s = frame_offset_s(model.feat_cfg)
        self.ci = ci_transitions(model.phones, model.topology)
        self.new_words: dict[str, list[Pron]] = {}

    @property
    def lexicon(self) -> Lexicon:
        return self.graphs.lexicon

    def add_new_words(self, token_lists: Iterable[Sequence[str]]) -> dict[str, list[Pron]]:
        """Give the words of the transcripts that the lexicon lacks pronunciations (CMUdict,
        then flite); words with none are aligned as ``<unk>`` (the garbage phone). Returns
        {word: pronunciations used} of every new word, those with the garbage phone too."""
        words = [w for tokens in token_lists for w in lexicon_words(tokens, self.lexicon.prons)]
        missing = list(dict.fromkeys(w for w in words if w not in self.lexicon.prons))
        if not missing:
            return {}
        found = self.graphs.add_new_words([" ".join(missing)])
        garbage = (self.model.lang.garbage,)
        none = [w for w in missing if w not in found]
        if none:
            self.lexicon.prons.setdefault(UNK, [garbage])
            log.warning("%d words have no pronunciation in the lexicon, CMUdict or flite; they are aligned "
                        "as %s (the garbage phone %s): %s", len(none), UNK, garbage[0], ", ".join(none[:10]))
        self.new_words = {w: list(found.get(w) or self.lexicon.prons[UNK]) for w in missing}
        return self.new_words

    def min_frames(self, words: Sequence[str]) -> int:
        """The fewest frames the words' shortest pronunciations need (no silence)."""
        topo = self.model.topology
        return int(sum(min(int(topo.min_frames(p).sum()) for p in self.lexicon.prons[w]) for w in words))

    def _decode(self, scores: np.ndarray, graph, name: str) -> tuple[np.ndarray, float]:
        """(CI transition ids, beam) of the best path through ``graph`` that reaches its end,
        trying :attr:`beams` in turn; AlignFailure when none does."""
        found = forced_path(self.model, scores, graph, name, self.beams)
        if found is not None:
            return found
        raise AlignFailure(f"no alignment of its transcript to its {len(scores)} frames at beams "
                           f"{', '.join(f'{b:g}' for b in self.beams)}: does the transcript match the audio?")

    def align_file(self, cf: CorpusFile) -> FileAlignment:
        """Align one recording of the corpus.

        Raises:
            AlignFailure: it cannot be aligned (the message says why).
            AsrError: unreadable audio (AudioError), bad scores (ModelError).
        """
        if cf.problem:
            raise AlignFailure(cf.problem)
        assert cf.audio is not None and cf.transcript is not None
        tokens = read_transcript(cf.transcript)
        shown = lexicon_words(tokens, self.lexicon.prons)
        words = [w if w in self.lexicon.prons else UNK for w in shown]
        missing = [s for s, w in zip(shown, words) if w not in self.lexicon.prons]
        if missing:  # its words were not given to add_new_words first
            raise AlignFailure(f"word {missing[0]!r} is not in the lexicon, which has no {UNK}")
        model = self.model
        audio = read_audio(cf.audio, rate=model.feat_cfg.sample_rate, resample=True)
        duration = _duration_s(cf.audio, audio.seconds)
        feats, speech = features_and_speech(audio.samples, model.feat_cfg, name=str(cf.audio))
        if len(feats) == 0:
            raise AlignFailure(f"too short: {duration:.3f} s gives no feature frame")
        if speech is None:
            speech = speech_mask(np.resize(frame_energy_db(audio.samples, model.feat_cfg.sample_rate), len(feats)))
        if not enough_speech(speech):
            raise AlignFailure(f"no speech found in its {duration:.2f} s ({int(speech.sum())} speech frames, "
                               f"fewer than {MIN_SPEECH_FRAMES}) for its {len(words)}-word transcript")
        need = self.min_frames(words)
        if len(feats) < need:
            raise AlignFailure(f"too short for its transcript: {len(feats)} frames ({duration:.2f} s) for "
                               f"{len(words)} words whose shortest pronunciations need {need} frames")
        feats = apply_cmvn(feats, speech_stats(feats, speech if model.feat_cfg.cmvn == "speech" else None))
        scores = scaled_loglikes(model.posteriors(feats), model.log_priors, self.acwt)
        graph = self.graphs.graph(model.context, words)
        ali, beam = self._decode(scores, graph, cf.name)
        runs = self.ci.phone_runs(ali)
        spans = word_spans(runs, model.phones, model.lang.optional_silence, words, self.lexicon, keep_unk=True)
        notes = list(audio.notes) + ([f"aligned at beam {beam:g}"] if beam != self.beams[0] else [])
        return self._intervals(runs, spans, shown, len(feats), duration, notes)

    def _intervals(self, runs: Sequence[PhoneRun], spans, shown: Sequence[str], num_frames: int,
                   duration: float, notes: list[str]) -> FileAlignment:
        """Seconds of the words and phones of an alignment; the last phone (or silence)
        extended to ``duration``."""
        at = lambda f: 0.0 if f <= 0 else min(f * self.shift_s + self.offset_s, duration)  # noqa: E731
        words = [(at(s.start), at(s.end), w) for s, w in zip(spans, shown)]
        if spans and spans[-1].end == num_frames:
            words[-1] = (words[-1][0], duration, words[-1][2])
        inside = np.zeros(num_frames, dtype=bool)
        for s in spans:
            inside[s.start:s.end] = True
        phones = []
        for r in runs:
            label = self.model.phones[r.phone] if inside[r.start] else ""
            phones.append((at(r.start), at(r.end), label))
        a, _, label = phones[-1]
        phones[-1] = (a, duration, label)
        phones = _merge_empty(phones)
        if self.phone_set == "arpabet":
            phones = arpabet_phones(phones, self.model.lang.garbage)
        return FileAlignment(duration, words, phones, notes)


def _write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (folders made); DataError naming it when that fails."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    except OSError as exc:
        raise DataError(f"{path}: cannot write it ({exc.strerror or exc})") from None


def _duration_s(path: Path, fallback: float) -> float:
    """The length of an audio file in seconds, from its header (``fallback`` when it has none)."""
    try:
        info = sf.info(str(path))
        return info.frames / info.samplerate if info.frames > 0 else fallback
    except (RuntimeError, sf.LibsndfileError, ValueError):
        return fallback


# ---- the corpus run ----------------------------------------------------------------------


def align_corpus(model: HybridModel, corpus_dir: Path, out_dir: Path, fmt: str = "textgrid",
                 sil_prob: float = DEFAULT_SIL_PROB, beam: float | None = None, acwt: float = 1.0,
                 phone_set: str = "model") -> CorpusReport:
    """Align every recording of ``corpus_dir``; write ``out_dir`` (see the module docstring).

    Recordings that cannot be aligned are logged with the reason, listed in
    ``out_dir/failed.txt`` (``NAME<TAB>reason``) and left out (a TextGrid an
    earlier run wrote for one is removed); the others are written.

    Raises:
        DataError: the corpus dir is missing or empty, or a bad option.
        ModelError / GraphError: the model cannot align (no word graph …).
    """
    if fmt not in FORMATS:
        raise DataError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")
    start = time.perf_counter()
    corpus_dir, out_dir = Path(corpus_dir), Path(out_dir)
    files = list_corpus(corpus_dir)
    aligner = CorpusAligner(model, sil_prob, beam, acwt, phone_set)
    failed: dict[str, str] = {}
    tokens: dict[str, list[str]] = {}
    for cf in files:
        if not cf.problem:
            try:
                tokens[cf.name] = read_transcript(cf.transcript)  # type: ignore[arg-type]
            except AlignFailure:
                pass  # reported when the file's turn comes
    new_words = aligner.add_new_words(tokens.values())
    _write(out_dir / OOVS_TXT, "".join(f"{w} {' '.join(p)}\n" for w in sorted(new_words) for p in new_words[w]))
    if new_words:
        log.info("the %d new words and the pronunciations they are aligned with: %s", len(new_words),
                 out_dir / OOVS_TXT)
    textgrids, ctms = fmt in ("textgrid", "both"), fmt in ("ctm", "both")
    words_ctm, phones_ctm, aligned = [], [], []
    with logging_redirect_tqdm():
        for cf in tqdm(files, desc="align-corpus", unit="file", leave=False, disable=None):
            grid = out_dir / f"{cf.name}{TEXTGRID_SUFFIX}"
            try:
                result = aligner.align_file(cf)
            except (AlignFailure, AsrError) as exc:
                failed[cf.name] = _reason(cf, exc)
            except Exception as exc:  # a bug or out of memory: report the file, go on with the rest
                failed[cf.name] = (f"unexpected error ({type(exc).__name__}: {exc}); the traceback is in "
                                   f"the log file (--log-file) and on the console with --verbose")
                log.debug("%s: traceback of the failure", cf.path, exc_info=True)
            if cf.name in failed:
                log.error("%s: %s", cf.path, failed[cf.name])
                if grid.is_file():
                    grid.unlink()
                    log.info("removed %s, written by an earlier run", grid)
                continue
            aligned.append(cf.name)
            for note in result.notes:
                log.info("%s: %s", cf.path, note)
            if textgrids:
                _write(grid, textgrid_text(result.duration_s, [
                    ("words", word_tier(result.words, result.duration_s)), ("phones", result.phones)]))
            if ctms:
                ctm_name = re.sub(r"\s+", "_", cf.name)
                words_ctm.append(ctm_lines(ctm_name, result.words))
                phones_ctm.append(ctm_lines(ctm_name, result.phones))
    if ctms:
        _write(out_dir / WORDS_CTM, "".join(words_ctm))
        _write(out_dir / PHONES_CTM, "".join(phones_ctm))
    if failed:
        _write(out_dir / FAILED_TXT, "".join(f"{n}\t{why}\n" for n, why in sorted(failed.items())))
    else:
        (out_dir / FAILED_TXT).unlink(missing_ok=True)
    return CorpusReport(aligned, failed, new_words, time.perf_counter() - start)


def _reason(cf: CorpusFile, exc: Exception) -> str:
    """The reason a file failed, without the file's path at its start (the report names it)."""
    text = str(exc)
    for path in (cf.audio, cf.transcript):
        if path is not None and text.startswith(f"{path}: "):
            return text[len(f"{path}: "):]
    return text
