"""Corpora as they come on disk -> validated Kaldi data dirs.

Three layouts (``asr import-corpus {kaldi,librispeech,aligner} SRC OUT``):

LibriSpeech (:func:`import_librispeech`)
    ``SUBSET/SPEAKER/CHAPTER/SPEAKER-CHAPTER-NNNN.flac`` beside
    ``SUBSET/SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt`` (lines
    ``SPEAKER-CHAPTER-NNNN WORD WORD ...``). ``SRC`` is the subset dir
    (``LibriSpeech/train-clean-100``) or its parent when that holds exactly one
    subset. Speakers' sex comes from ``SPEAKERS.TXT`` (``;`` comments, then
    ``ID | SEX | SUBSET | MINUTES | NAME`` rows) in the subset dir or its
    parent, when there: spk2gender is written when it covers every speaker.
    Speaker id = the reader id (Kaldi's librispeech recipe uses reader-chapter
    instead), utterance id = the file name (speaker-prefixed already).
Aligner-style dir (:func:`import_aligner_dir`, as the Montreal Forced Aligner reads)
    ``NAME.wav|flac`` with ``NAME.lab|txt`` beside it (the whole file is the
    transcript). Files in subfolders belong to the speaker named by the
    top-level subfolder; files directly in ``SRC`` are each their own speaker.
    ``speaker_chars=N`` makes the speaker the first N characters of the file
    name instead, everywhere. Utterance ids are ``<speaker>-<name>`` for files
    in subfolders, ``<name>`` otherwise (it starts with its speaker then), so
    that they sort with their speakers; whitespace in names is replaced by ``_``.
Kaldi data dir (:func:`import_kaldi_dir`)
    validated as :func:`asr.corpus.datadir.validate_datadir` does and copied:
    relative audio paths made absolute, transcripts normalised.

Transcripts are kept as written (no case change, no punctuation removed): only
stripped, with runs of whitespace collapsed to one space; ``lowercase=True``
(``--lowercase``) lower-cases them on request. Every transcript must be UTF-8.

Errors are :class:`~asr.errors.DataError`\\ s naming the file (and line): by
default audio without a transcript and a transcript without audio are errors;
with ``skip_incomplete=True`` (``--skip-incomplete``) such utterances are
skipped with one warning each and a count. Unreadable audio (soundfile cannot
read its header, or it has no samples), duplicate utterance ids, non-UTF-8 text
and an empty corpus are always errors.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import soundfile as sf

from asr.audio import is_pipe
from asr.corpus.datadir import DataDir, read_datadir, read_text_lines, write_datadir
from asr.errors import DataError

log = logging.getLogger(__name__)

LAYOUTS = ("kaldi", "librispeech", "aligner")
SPEAKERS_TXT = "SPEAKERS.TXT"
LIBRISPEECH_AUDIO = ".flac"
ALIGNER_AUDIO = (".wav", ".flac")
ALIGNER_TRANSCRIPTS = (".lab", ".txt")
_LIBRI_ID = re.compile(r"^(\d+)-(\d+)-(\d+)$")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class CorpusUtt:
    """One utterance found in a corpus: ids, its audio file, its transcript and
    where the transcript came from (``file`` or ``file:line``, for messages)."""

    utt_id: str
    spk: str
    audio: Path
    text: str
    where: str


def normalise_transcript(text: str, lowercase: bool = False) -> str:
    """``text`` stripped, runs of whitespace (line breaks too) collapsed to one space;
    lower-cased only when ``lowercase``. Words are otherwise kept as written."""
    out = " ".join(text.split())
    return out.lower() if lowercase else out


def check_audio_file(path: Path) -> int:
    """Number of samples of an audio file, read from its header.

    Raises:
        DataError: soundfile cannot read it, or it holds no samples (naming the file).
    """
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError, ValueError) as exc:
        raise DataError(f"{path}: cannot read audio ({exc})") from None
    if info.frames <= 0:
        raise DataError(f"{path}: audio file is empty (0 samples)")
    return int(info.frames)


def _incomplete(message: str, skip: bool, skipped: list[str]) -> None:
    """Raise DataError(message), or, when ``skip``, warn and count it in ``skipped``."""
    if not skip:
        raise DataError(message + " (--skip-incomplete skips such utterances)")
    log.warning("skipping: %s", message)
    skipped.append(message)


def _check_id_order(by_id: dict[str, CorpusUtt]) -> None:
    """DataError naming both sources when sorting the utterance ids does not sort their
    speakers too (Kaldi's rule for utt2spk), before anything is written."""
    ordered = sorted(by_id)
    for a, b in zip(ordered, ordered[1:]):
        if by_id[b].spk < by_id[a].spk:
            raise DataError(f"{by_id[b].audio} (utterance {b!r}, speaker {by_id[b].spk!r}) sorts before "
                            f"speaker {by_id[a].spk!r} of {by_id[a].audio}, but its id sorts after "
                            f"{a!r}: Kaldi data dirs need utterance ids in speaker order; rename the "
                            f"speakers (e.g. names of one length, no '-') or set --speaker-chars")


def write_corpus(out_dir: Path, utts: Iterable[CorpusUtt], src: Path,
                 spk2gender: Optional[dict[str, str]] = None) -> DataDir:
    """Write the data dir of ``utts`` (audio headers checked, ids unique) and return it.

    Raises:
        DataError: no utterance, a duplicate utterance id (naming both sources),
            unreadable audio, or anything :func:`write_datadir` rejects.
    """
    by_id: dict[str, CorpusUtt] = {}
    for u in utts:
        if u.utt_id in by_id:
            raise DataError(f"{u.audio}: utterance id {u.utt_id!r} is also the id of {by_id[u.utt_id].audio}")
        by_id[u.utt_id] = u
    if not by_id:
        raise DataError(f"{src}: empty corpus: no utterance with audio and a transcript")
    _check_id_order(by_id)
    for u in by_id.values():
        check_audio_file(u.audio)
    wav = {k: os.path.abspath(u.audio) for k, u in by_id.items()}
    text = {k: u.text for k, u in by_id.items()}
    utt2spk = {k: u.spk for k, u in by_id.items()}
    speakers = set(utt2spk.values())
    genders = {s: g for s, g in (spk2gender or {}).items() if s in speakers}
    if spk2gender is not None and set(genders) != speakers:
        missing = sorted(speakers - set(genders))
        log.warning("%s: no sex for speaker %s (%d of %d): no spk2gender written", src, missing[0],
                    len(missing), len(speakers))
        genders = {}
    dd = write_datadir(out_dir, wav, text, utt2spk, genders)
    log.info("%s -> %s: %d utterances, %d speakers", src, out_dir, len(dd.utts), len(dd.spk2utt))
    return dd


# ------------------------------------------------------------------ LibriSpeech


def read_librispeech_speakers(path: Path) -> dict[str, str]:
    """Speaker id -> ``m``/``f`` from a LibriSpeech ``SPEAKERS.TXT``.

    Lines starting with ``;`` are comments; rows are ``ID | SEX | SUBSET | MINUTES | NAME``.
    Only ID and SEX are used, so bytes that are not UTF-8 (in names) are replaced.

    Raises:
        DataError: a row without an id and a sex of M or F (naming the line).
    """
    out: dict[str, str] = {}
    text = Path(path).read_bytes().decode("utf-8", errors="replace")
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        fields = [f.strip() for f in line.split("|", 4)]
        if len(fields) < 2 or not fields[0] or fields[1].lower() not in ("m", "f"):
            raise DataError(f"{path}:{lineno}: expected 'ID | SEX | SUBSET | MINUTES | NAME' "
                            f"with SEX M or F, got {line.strip()!r}")
        if fields[0] in out:
            raise DataError(f"{path}:{lineno}: speaker {fields[0]!r} is listed twice")
        out[fields[0]] = fields[1].lower()
    return out


def _is_librispeech_subset(path: Path) -> bool:
    return next(iter(path.glob("*/*/*.trans.txt")), None) is not None


def find_librispeech_subset(src: Path) -> tuple[Path, Optional[Path]]:
    """(subset dir, its SPEAKERS.TXT or None) for ``src``: a subset dir or the parent of one.

    Raises:
        DataError: ``src`` missing, holding no subset, or several (name one).
    """
    src = Path(src)
    if not src.is_dir():
        raise DataError(f"{src}: corpus directory does not exist")
    if _is_librispeech_subset(src):
        subset = src
    else:
        subsets = sorted(c for c in src.iterdir() if c.is_dir() and _is_librispeech_subset(c))
        if not subsets:
            raise DataError(f"{src}: no LibriSpeech layout in it (SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt)")
        if len(subsets) > 1:
            raise DataError(f"{src}: holds several LibriSpeech subsets ({', '.join(c.name for c in subsets)}); "
                            f"import one at a time, e.g. {subsets[0]}")
        subset = subsets[0]
    speakers = [d / SPEAKERS_TXT for d in (subset, subset.parent) if (d / SPEAKERS_TXT).is_file()]
    return subset, (speakers[0] if speakers else None)


def _read_trans(trans: Path, spk: str, chapter: str) -> dict[str, tuple[int, str]]:
    """Utterance id -> (line, words) of one ``SPEAKER-CHAPTER.trans.txt``."""
    rows: dict[str, tuple[int, str]] = {}
    for lineno, line in enumerate(read_text_lines(trans), start=1):
        if not line.strip():
            continue
        utt, _, words = line.strip().partition(" ")
        m = _LIBRI_ID.match(utt)
        if m is None or m.group(1) != spk or m.group(2) != chapter:
            raise DataError(f"{trans}:{lineno}: utterance id {utt!r} is not {spk}-{chapter}-NNNN")
        if utt in rows:
            raise DataError(f"{trans}:{lineno}: duplicate utterance id {utt!r} (first on line {rows[utt][0]})")
        rows[utt] = (lineno, words)
    return rows


def _librispeech_chapter(chap_dir: Path, spk: str, skip: bool, lowercase: bool,
                         skipped: list[str]) -> list[CorpusUtt]:
    """The utterances of one ``SPEAKER/CHAPTER`` dir."""
    chapter = chap_dir.name
    trans = chap_dir / f"{spk}-{chapter}.trans.txt"
    audio = {p.name[: -len(LIBRISPEECH_AUDIO)]: p for p in sorted(chap_dir.iterdir())
             if p.is_file() and p.name.lower().endswith(LIBRISPEECH_AUDIO)}
    rows = _read_trans(trans, spk, chapter) if trans.is_file() else {}
    utts = []
    for utt, (lineno, words) in rows.items():
        if utt not in audio:
            _incomplete(f"{trans}:{lineno}: transcript of {utt} has no audio {chap_dir / (utt + LIBRISPEECH_AUDIO)}",
                        skip, skipped)
            continue
        utts.append(CorpusUtt(utt, spk, audio[utt], normalise_transcript(words, lowercase), f"{trans}:{lineno}"))
    for utt in sorted(set(audio) - set(rows)):
        _incomplete(f"{audio[utt]}: no transcript for it in {trans}", skip, skipped)
    return utts


def librispeech_utts(subset: Path, skip_incomplete: bool = False, lowercase: bool = False) -> list[CorpusUtt]:
    """Every utterance of a LibriSpeech subset dir, in speaker and chapter order.

    Raises:
        DataError: a speaker or chapter dir whose name is not a number, or an
            incomplete utterance (unless ``skip_incomplete``).
    """
    utts: list[CorpusUtt] = []
    skipped: list[str] = []
    for spk_dir in sorted(p for p in subset.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for chap_dir in sorted(p for p in spk_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if not (spk_dir.name.isdigit() and chap_dir.name.isdigit()):
                raise DataError(f"{chap_dir}: not SPEAKER/CHAPTER (LibriSpeech ids are numbers)")
            utts += _librispeech_chapter(chap_dir, spk_dir.name, skip_incomplete, lowercase, skipped)
    if skipped:
        log.warning("%s: skipped %d incomplete utterance(s)", subset, len(skipped))
    return utts


def import_librispeech(src: Path, out_dir: Path, skip_incomplete: bool = False,
                       lowercase: bool = False) -> DataDir:
    """Write the data dir ``out_dir`` (wav.scp, text, utt2spk, spk2utt, spk2gender when
    SPEAKERS.TXT knows every speaker) of a LibriSpeech subset; see the module docstring.

    Raises:
        DataError: naming the file and line (see the module docstring).
    """
    subset, speakers_txt = find_librispeech_subset(Path(src))
    genders = read_librispeech_speakers(speakers_txt) if speakers_txt is not None else None
    return write_corpus(Path(out_dir), librispeech_utts(subset, skip_incomplete, lowercase), subset, genders)


# ------------------------------------------------------------------ aligner-style dirs


def _corpus_files(src: Path) -> dict[tuple[Path, str], dict[str, Path]]:
    """(directory, name) -> {extension: file} for the audio and transcript files under ``src``
    (hidden files and dirs skipped). DataError when a name has two audio files or two transcripts."""
    groups: dict[tuple[Path, str], dict[str, Path]] = {}
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            stem, ext = os.path.splitext(name)
            ext = ext.lower()
            if name.startswith(".") or ext not in ALIGNER_AUDIO + ALIGNER_TRANSCRIPTS:
                continue
            group = groups.setdefault((Path(dirpath), stem), {})
            kind = ALIGNER_AUDIO if ext in ALIGNER_AUDIO else ALIGNER_TRANSCRIPTS
            other = [p for e, p in group.items() if e in kind]
            if other:
                raise DataError(f"{Path(dirpath) / name}: {other[0].name} is beside it: keep one "
                                f"{'audio file' if kind is ALIGNER_AUDIO else 'transcript'} per name")
            group[ext] = Path(dirpath) / name
    return groups


def _aligner_ids(src: Path, directory: Path, stem: str, speaker_chars: Optional[int]) -> tuple[str, str]:
    """(speaker, utterance id) of the file ``directory/stem.*`` (see the module docstring)."""
    name = _SPACE.sub("_", stem.strip())
    if speaker_chars is not None:
        return name[:speaker_chars], name
    rel = directory.relative_to(src)
    if not rel.parts:
        return name, name
    spk = _SPACE.sub("_", rel.parts[0].strip())
    return spk, f"{spk}-{name}"


def aligner_utts(src: Path, speaker_chars: Optional[int] = None, skip_incomplete: bool = False,
                 lowercase: bool = False) -> list[CorpusUtt]:
    """Every utterance of an aligner-style corpus dir (see the module docstring).

    Raises:
        DataError: an incomplete utterance (unless ``skip_incomplete``), two audio
            files or transcripts for one name, a transcript that is not UTF-8.
    """
    utts: list[CorpusUtt] = []
    skipped: list[str] = []
    for (directory, stem), files in sorted(_corpus_files(src).items()):
        audio = next((files[e] for e in ALIGNER_AUDIO if e in files), None)
        trans = next((files[e] for e in ALIGNER_TRANSCRIPTS if e in files), None)
        if audio is None or trans is None:
            have = audio or trans
            missing = "transcript (.lab or .txt)" if trans is None else "audio file (.wav or .flac)"
            _incomplete(f"{have}: no {missing} named {stem} beside it", skip_incomplete, skipped)
            continue
        spk, utt = _aligner_ids(src, directory, stem, speaker_chars)
        text = normalise_transcript(" ".join(read_text_lines(trans)), lowercase)
        utts.append(CorpusUtt(utt, spk, audio, text, str(trans)))
    if skipped:
        log.warning("%s: skipped %d incomplete utterance(s)", src, len(skipped))
    return utts


def import_aligner_dir(src: Path, out_dir: Path, speaker_chars: Optional[int] = None,
                       skip_incomplete: bool = False, lowercase: bool = False) -> DataDir:
    """Write the data dir ``out_dir`` of an aligner-style corpus dir (audio + .lab/.txt).

    Raises:
        DataError: ``src`` missing, ``speaker_chars`` < 1, or as :func:`aligner_utts`
            and :func:`write_corpus`.
    """
    src = Path(src)
    if not src.is_dir():
        raise DataError(f"{src}: corpus directory does not exist")
    if speaker_chars is not None and speaker_chars < 1:
        raise DataError(f"speaker_chars must be at least 1, not {speaker_chars}")
    return write_corpus(Path(out_dir), aligner_utts(src, speaker_chars, skip_incomplete, lowercase), src)


# ------------------------------------------------------------------ Kaldi data dirs


def _absolute_entry(entry: str) -> str:
    """A wav.scp value with a relative path made absolute (pipes kept as they are)."""
    return entry if is_pipe(entry) else os.path.abspath(entry)


def import_kaldi_dir(src: Path, out_dir: Path, lowercase: bool = False) -> DataDir:
    """Validate the Kaldi data dir ``src`` and copy it to ``out_dir``: audio paths made
    absolute, transcripts normalised (see the module docstring), ``segments``,
    ``spk2gender`` and ``phone_segments`` kept; other files are not copied.

    Raises:
        DataError: as :func:`asr.corpus.datadir.validate_datadir`.
    """
    dd = read_datadir(Path(src))
    wav = {k: _absolute_entry(v) for k, v in dd.wav.items()}
    text = {u: normalise_transcript(t, lowercase) for u, t in dd.text.items()}
    out = write_datadir(Path(out_dir), wav, text, dd.utt2spk, dd.spk2gender, dd.phone_segments,
                        segments=dd.segments)
    log.info("%s -> %s: %d utterances, %d speakers", src, out_dir, len(out.utts), len(out.spk2utt))
    return out


def import_corpus(layout: str, src: Path, out_dir: Path, speaker_chars: Optional[int] = None,
                  skip_incomplete: bool = False, lowercase: bool = False) -> DataDir:
    """Import a corpus in ``layout`` (one of :data:`LAYOUTS`) as the data dir ``out_dir``.

    Raises:
        DataError: an unknown layout, an option the layout does not take, or bad input.
    """
    if layout not in LAYOUTS:
        raise DataError(f"unknown corpus layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if speaker_chars is not None and layout != "aligner":
        raise DataError(f"speaker_chars applies to the aligner layout only, not {layout}")
    if layout == "kaldi":
        if skip_incomplete:
            raise DataError("skip_incomplete does not apply to a Kaldi data dir: fix it with utils/fix_data_dir.sh")
        return import_kaldi_dir(src, out_dir, lowercase)
    if layout == "librispeech":
        return import_librispeech(src, out_dir, skip_incomplete, lowercase)
    return import_aligner_dir(src, out_dir, speaker_chars, skip_incomplete, lowercase)
