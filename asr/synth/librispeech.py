"""The synthetic corpus in the LibriSpeech layout (``asr synth-corpus OUT --layout librispeech``).

The same speech as the TIMIT layout (same size and seed: the very same
16-bit samples, losslessly in FLAC) with word transcripts only, as real
corpora come. Written under ``OUT``::

    SPEAKERS.TXT                                    LibriSpeech's format: ';' comments, then
                                                    ID | SEX | SUBSET | MINUTES | NAME (NAME: the
                                                    TIMIT-layout speaker id and the flite voice)
    <subset>/<SPK>/<CHAPTER>/<SPK>-<CHAPTER>-<NNNN>.flac   16 kHz mono 16-bit FLAC
    <subset>/<SPK>/<CHAPTER>/<SPK>-<CHAPTER>.trans.txt     <utt> WORD WORD ... (upper case, as LibriSpeech)
    alignments/<subset>.phones                      <utt> <start> <end> <phone>: the true phones
    alignments/<subset>.words                       <utt> <start> <end> <WORD>: the true words
    .complete                                       JSON settings with "layout": "librispeech" (last)

Subsets: ``train``, ``dev``, ``test``, ``test_unseen`` and ``dev_unseen``
(when voices are held out), ``dev_neural`` and ``test_neural`` (the neural
voice's; its training speakers are in ``train``; no side-file rows). ``alignments/`` is for benchmarks only (the importer never reads
it): the rows of the TIMIT layout's .PHN (TIMIT 61-phone symbols, stop
closures split, ``h#`` at both ends, contiguous) and .WRD files with the
utterance id in front, offsets in samples at 16 kHz (end exclusive), sorted
by utterance then start; read them with :func:`read_alignment_file`.

Mapping to the TIMIT layout: the generator's speaker i (0-based, train,
dev, test, then test_unseen speakers, as :func:`asr.synth.corpus.make_speakers`
lists them) is speaker ``100 + i`` reading the one chapter ``1000 + i``;
its utterances in increasing TIMIT utterance number (its SX prompts, then
its SI prompts) are ``NNNN`` = 0000, 0001, ... The words are those the TIMIT
importer reads from the .TXT (:func:`asr.corpus.timit.read_txt`), upper-cased.

Generation (:func:`asr.synth.corpus.generate_corpus` with ``layout="librispeech"``)
first makes the TIMIT layout in ``OUT/.timit_layout`` (resumable as ever),
then converts it here (each FLAC written atomically and kept on a rerun) and
removes the work dir once ``.complete`` is written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import soundfile as sf

from asr.synth.perturb import OUT_RATE
from asr.synth.labels import Row
from asr.corpus.timit import read_txt
from asr.errors import DataError
from asr.io import atomic_path, atomic_write_text

log = logging.getLogger(__name__)

SPEAKER_BASE = 100
CHAPTER_BASE = 1000
ALIGNMENT_DIR = "alignments"
SPEAKERS_TXT = "SPEAKERS.TXT"
#: Side-file suffix -> the TIMIT-layout label file it is made from.
ALIGNMENT_KINDS = {"phones": "PHN", "words": "WRD"}


@dataclass(frozen=True)
class LibriSpeaker:
    """A synthetic speaker's LibriSpeech ids: reader ``spk``, ``chapter``, subset and TIMIT-layout dir."""

    spk: str
    chapter: str
    subset: str
    timit_id: str
    voice: str
    sex: str  # "M" or "F"
    timit_dir: Path

    def chapter_dir(self, out_dir: Path) -> Path:
        return out_dir / self.subset / self.spk / self.chapter


def librispeech_speakers(speakers: Sequence, timit_root: Path) -> list[LibriSpeaker]:
    """The LibriSpeech ids of the generator's speakers (:class:`asr.synth.corpus.Speaker`)."""
    return [LibriSpeaker(str(SPEAKER_BASE + s.index), str(CHAPTER_BASE + s.index), _subset(s.partition), s.spk_id,
                         s.voice.voice, s.spk_id[0], s.directory(timit_root)) for s in speakers]


def _subset(partition: str) -> str:
    """The LibriSpeech subset of a generator partition: the neural voice's training speakers are
    in ``train`` (every utterance of this layout has word transcripts only), the rest keep their name."""
    return "train" if partition == "train_neural" else partition


def timit_utterances(spk_dir: Path) -> list[Path]:
    """A TIMIT-layout speaker's utterance stems (``.../SX12``) in increasing utterance number.

    Raises:
        DataError: the speaker dir holds no .WAV file.
    """
    stems = sorted((p.with_suffix("") for p in spk_dir.glob("*.WAV")), key=lambda p: int(p.name[2:]))
    if not stems:
        raise DataError(f"{spk_dir}: no .WAV files: the TIMIT-layout corpus is incomplete")
    return stems


def _read_rows(path: Path) -> list[Row]:
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if len(fields) != 3:
            raise DataError(f"{path}:{lineno}: expected '<start> <end> <label>', got {line!r}")
        rows.append((int(fields[0]), int(fields[1]), fields[2]))
    return rows


def _write_flac(wav: Path, flac: Path) -> float:
    """Copy a SPHERE file's 16-bit samples into a FLAC file (atomically; kept when it
    exists) and return its duration in seconds."""
    if flac.is_file():
        info = sf.info(str(flac))
        return info.frames / info.samplerate
    data, rate = sf.read(str(wav), dtype="int16")
    if rate != OUT_RATE:
        raise DataError(f"{wav}: sample rate is {rate} Hz, expected {OUT_RATE} Hz")
    with atomic_path(flac) as tmp:
        sf.write(str(tmp), data, rate, format="FLAC", subtype="PCM_16")
    return len(data) / rate


def _convert_speaker(spk: LibriSpeaker, out_dir: Path, labels: dict[str, list[str]]) -> float:
    """Write one speaker's FLAC files and trans.txt; add its label lines to ``labels``
    ({"phones"|"words": lines}); return its seconds of audio."""
    chap_dir = spk.chapter_dir(out_dir)
    trans: list[str] = []
    seconds = 0.0
    for k, stem in enumerate(timit_utterances(spk.timit_dir)):
        utt = f"{spk.spk}-{spk.chapter}-{k:04d}"
        seconds += _write_flac(stem.with_suffix(".WAV"), chap_dir / f"{utt}.flac")
        trans.append(f"{utt} {read_txt(stem.with_suffix('.TXT')).upper()}\n")
        for kind, ext in ALIGNMENT_KINDS.items():
            if not stem.with_suffix(f".{ext}").is_file():  # a neural voice's utterance: no true labels
                continue
            for s, e, label in _read_rows(stem.with_suffix(f".{ext}")):
                labels[kind].append(f"{utt} {s} {e} {label.upper() if kind == 'words' else label}\n")
    atomic_write_text(chap_dir / f"{spk.spk}-{spk.chapter}.trans.txt", "".join(trans))
    return seconds


def _speakers_txt(speakers: Sequence[LibriSpeaker], minutes: dict[str, float]) -> str:
    lines = [
        "; Synthetic speakers (flite voices), in LibriSpeech's SPEAKERS.TXT format.\n",
        "; NAME is the speaker's id in the TIMIT layout of the same corpus, then its flite voice.\n",
        ";ID  |SEX| SUBSET           |MINUTES| NAME\n",
    ]
    for s in sorted(speakers, key=lambda s: s.spk):
        lines.append(f"{s.spk:<5}| {s.sex} | {s.subset:<17}| {minutes[s.spk]:5.2f} | {s.timit_id} {s.voice}\n")
    return "".join(lines)


def write_librispeech_layout(timit_root: Path, out_dir: Path, speakers: Sequence) -> None:
    """Write the LibriSpeech layout of the finished TIMIT-layout corpus ``timit_root``
    under ``out_dir`` (see the module docstring); FLAC files already there are kept.

    Args:
        timit_root: the synthetic corpus in the TIMIT layout.
        out_dir: where the LibriSpeech layout goes.
        speakers: the generator's speakers (:func:`asr.synth.corpus.make_speakers`) of ``timit_root``.

    Raises:
        DataError: a speaker dir of ``timit_root`` missing or incomplete.
    """
    libri = librispeech_speakers(speakers, Path(timit_root))
    labels: dict[str, dict[str, list[str]]] = {}
    minutes: dict[str, float] = {}
    for spk in libri:
        subset_labels = labels.setdefault(spk.subset, {kind: [] for kind in ALIGNMENT_KINDS})
        minutes[spk.spk] = _convert_speaker(spk, Path(out_dir), subset_labels) / 60.0
    for subset, kinds in labels.items():
        for kind, lines in kinds.items():
            lines.sort(key=lambda line: (line.split()[0], int(line.split()[1])))
            atomic_write_text(Path(out_dir) / ALIGNMENT_DIR / f"{subset}.{kind}", "".join(lines))
    atomic_write_text(Path(out_dir) / SPEAKERS_TXT, _speakers_txt(libri, minutes))
    log.info("%s: LibriSpeech layout of %d speakers written", out_dir, len(libri))


def read_alignment_file(path: Path) -> dict[str, list[Row]]:
    """Read an ``alignments/<subset>.phones|words`` side file: utt -> [(start, end, label)],
    offsets in samples at 16 kHz, in file order.

    Raises:
        DataError: a malformed line (naming the file and line).
    """
    out: dict[str, list[Row]] = {}
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if len(fields) != 4 or not (fields[1].isdigit() and fields[2].isdigit()):
            raise DataError(f"{path}:{lineno}: expected '<utt> <start> <end> <label>', got {line!r}")
        out.setdefault(fields[0], []).append((int(fields[1]), int(fields[2]), fields[3]))
    return out
