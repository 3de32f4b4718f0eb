"""The toy lang and its corpora of tones, shared by the tests that run stages on them.

The lang is unlike TIMIT's: 10 phones named nothing like TIMIT's, Kaldi's
ergodic 5-state silence, a 1-state phone, a spoken-noise phone that scoring
deletes and a phone that scores as another. Each spoken phone is two sine
waves of its own, silence faint noise, spoken noise loud noise.

Two kinds of corpora are generated, deterministically from a seed:

* :func:`phone_corpus`: random phone strings, written with their phone
  segmentation (``phone_segments``) and no words (tests/test_toy_lang.py);
* :func:`word_corpus`: random sentences of the words of :data:`LEXICON`
  (one with two pronunciations), optional silence between words and silence
  at both ends, written with their word transcripts only; the true phone
  segments, pronunciations and silences are returned for scoring
  (tests/test_flat_start.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from asr.corpus.datadir import write_datadir
from asr.phones.lang import Lang
from asr.phones.topology import PhoneHmm, Topology

RATE = 16000
PHONES = ("SIL", "NSN", "ka", "ke", "ki", "ko", "ku", "te", "to", "Q")
SPOKEN = ("ka", "ke", "ki", "ko", "ku", "te", "to", "Q")
#: (f1, f2) Hz of each spoken phone's tone
TONES = {p: (300 + 180 * i, 1400 + 260 * i) for i, p in enumerate(SPOKEN)}
#: Kaldi's silence: states 0-3 go on to 1-4 (state 0 only forward), state 4 loops or leaves
_SIL = np.zeros((5, 6))
_SIL[0, :4], _SIL[1:4, 1:5], _SIL[4, 4:] = 0.25, 0.25, [0.75, 0.25]
HMMS = {"SIL": PhoneHmm(5, transitions=tuple(map(tuple, _SIL))), "Q": PhoneHmm(1, 0.5)}
TOY = Lang(PHONES, silence=("SIL", "NSN"), optional_silence="SIL",
           topology=Topology.of({p: HMMS.get(p, PhoneHmm(3, 0.75)) for p in PHONES}),
           garbage="NSN", not_split=("SIL", "NSN"), extra_questions=(("ka", "ke", "ki", "ko", "ku"),),
           score_map={"NSN": None, "to": "te"})

#: The toy words (Kaldi lexicon order: the first pronunciation is the one the flat start uses).
#: ``kite`` has two pronunciations that differ in their first phone.
LEXICON = {
    "kato": [("ka", "to")],
    "keki": [("ke", "ki")],
    "kuko": [("ku", "ko")],
    "teka": [("te", "ka")],
    "toku": [("to", "ku")],
    "kiqe": [("ki", "Q", "ke")],
    "koteki": [("ko", "te", "ki")],
    "kite": [("ki", "te"), ("ke", "te")],
}
#: The word with two pronunciations.
TWO_PRON_WORD = "kite"


def render(phone: str, dur: float, rng: np.random.Generator) -> np.ndarray:
    """``dur`` seconds (rounded to samples) of ``phone``: its tone (none for silence and
    spoken noise) plus noise (faint for silence, loud for spoken noise), float64."""
    n = int(round(dur * RATE))
    time = np.arange(n) / RATE
    if phone in TONES:
        f1, f2 = TONES[phone]
        wave = 0.3 * np.sin(2 * np.pi * f1 * time) + 0.2 * np.sin(2 * np.pi * f2 * time)
    else:
        wave = np.zeros(n)
    noise = {"SIL": 0.003, "NSN": 0.15}.get(phone, 0.01)
    return wave + noise * rng.standard_normal(n)


def _join(phones: list[str], durs: list[float], rng: np.random.Generator
          ) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """Samples (float32) and phone segments (start_s, end_s, phone) of phones said in turn."""
    parts, segs, t = [], [], 0.0
    for phone, dur in zip(phones, durs):
        samples = render(phone, dur, rng)
        parts.append(samples)
        segs.append((round(t, 5), round(t + len(samples) / RATE, 5), phone))
        t += len(samples) / RATE
    return np.concatenate(parts).astype(np.float32), segs


def phone_string(rng: np.random.Generator) -> list[str]:
    """One random phone string of the toy corpus: silence, 5–8 phones, silence."""
    return ["SIL"] + [str(rng.choice(SPOKEN + ("NSN",), p=[0.12] * 8 + [0.04])) for _ in range(rng.integers(5, 9))] + ["SIL"]


def phone_lm_text(path: Path, num: int, seed: int) -> Path:
    """A dir with a ``phone_text`` of ``num`` random phone strings (a phone LM's text, larger than
    a toy corpus's: a bigram of a few dozen strings has backoff weights above 1, whose
    negative-cost loops let a 1-state HMM's phone be entered again on every frame)."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    (path / "phone_text").write_text("".join(f"lm{i:05d} {' '.join(phone_string(rng))}\n" for i in range(num)))
    return path


def phone_utterance(rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """Samples (float32) and phone segments (start_s, end_s, phone) of one random phone string."""
    seq = phone_string(rng)
    parts, segs, t = [], [], 0.0
    for phone in seq:
        dur = {"SIL": rng.uniform(0.12, 0.2), "Q": rng.uniform(0.03, 0.05)}.get(phone, rng.uniform(0.07, 0.12))
        samples = render(phone, dur, rng)
        parts.append(samples)
        segs.append((round(t, 5), round(t + len(samples) / RATE, 5), phone))
        t += len(samples) / RATE
    return np.concatenate(parts).astype(np.float32), segs


def phone_corpus(root: Path, name: str, speakers: int, seed: int) -> Path:
    """A data dir ``root/name`` of ``speakers`` x 8 random phone strings with their phone
    segmentation and empty text; returns its path."""
    rng = np.random.default_rng(seed)
    wav, text, utt2spk, segments = {}, {}, {}, {}
    for s in range(speakers):
        for u in range(8):
            utt = f"{name}{s}_{u:02d}"
            samples, segs = phone_utterance(rng)
            path = root / "audio" / f"{utt}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, samples, RATE, subtype="PCM_16")
            wav[utt], text[utt], utt2spk[utt], segments[utt] = str(path), "", f"{name}{s}", segs
    write_datadir(root / name, wav, text, utt2spk, phone_segments=segments, phones=PHONES)
    return root / name


@dataclass
class WordUtterance:
    """What was said in one utterance of :func:`word_corpus`.

    Attributes:
        words: the transcript.
        prons: the pronunciation index (into :data:`LEXICON`) each word was said with.
        sil_after: whether silence follows each word (the last always: the closing silence).
        segments: the true phone segments (start_s, end_s, phone), silences included.
    """

    words: list[str]
    prons: list[int]
    sil_after: list[bool]
    segments: list[tuple[float, float, str]]


def word_utterance(rng: np.random.Generator, sil_between: float = 0.4
                   ) -> tuple[np.ndarray, WordUtterance]:
    """Samples (float32) and the truth of one random sentence of 3 to 6 words of :data:`LEXICON`:
    silence, the words, each followed by silence with probability ``sil_between``, silence.
    Each word is said with a pronunciation drawn uniformly from its list."""
    vocab = sorted(LEXICON)
    words = [vocab[int(i)] for i in rng.integers(0, len(vocab), int(rng.integers(3, 7)))]
    prons = [int(rng.integers(0, len(LEXICON[w]))) for w in words]
    sil_after = [bool(rng.random() < sil_between) for _ in words[:-1]] + [True]
    phones, durs = ["SIL"], [rng.uniform(0.12, 0.2)]
    for i, (w, k, sil) in enumerate(zip(words, prons, sil_after)):
        for ph in LEXICON[w][k]:
            phones.append(ph)
            durs.append(rng.uniform(0.03, 0.05) if ph == "Q" else rng.uniform(0.07, 0.12))
        if sil:  # between words shorter than at the ends
            phones.append("SIL")
            durs.append(rng.uniform(0.12, 0.2) if i == len(words) - 1 else rng.uniform(0.08, 0.15))
    samples, segs = _join(phones, durs, rng)
    return samples, WordUtterance(words, prons, sil_after, segs)


def word_corpus(root: Path, name: str, speakers: int, utts: int, seed: int
                ) -> tuple[Path, dict[str, WordUtterance]]:
    """A data dir ``root/name`` of ``speakers`` x ``utts`` random sentences of :data:`LEXICON`,
    with word transcripts and no phone segmentation; returns its path and the truth of each
    utterance."""
    rng = np.random.default_rng(seed)
    wav, text, utt2spk, truth = {}, {}, {}, {}
    for s in range(speakers):
        for u in range(utts):
            utt = f"{name}{s}_{u:02d}"
            samples, said = word_utterance(rng)
            path = root / "audio" / f"{utt}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, samples, RATE, subtype="PCM_16")
            wav[utt], text[utt], utt2spk[utt], truth[utt] = str(path), " ".join(said.words), f"{name}{s}", said
    write_datadir(root / name, wav, text, utt2spk)
    return root / name, truth


def write_word_lang(lang_dir: Path, sil_prob: float = 0.5) -> Path:
    """A word lang dir as :meth:`asr.lang.train_graph.TrainingGraphs.load` reads it: the toy
    phone lang's files, ``lexicon.txt`` of :data:`LEXICON` and ``lang.yaml`` with ``sil_prob``."""
    TOY.write(lang_dir)
    (lang_dir / "lexicon.txt").write_text("".join(f"{w} {' '.join(p)}\n" for w in sorted(LEXICON)
                                                  for p in LEXICON[w]))
    (lang_dir / "lang.yaml").write_text(f"sil_prob: {sil_prob}\n")
    return lang_dir
