"""TIMIT (LDC93S1) data preparation: a TIMIT tree -> Kaldi data dirs.

Layout read: ``TRAIN|train/DR1..DR8/<SPK>/<UTT>.WAV|PHN|TXT`` (file and
directory names in upper or lower case). The .WAV files are NIST SPHERE and
are read in place (``wav.scp`` points at the original files; nothing is
converted). SA sentences are excluded, and so are converted copies such as
``SI1027.WAV.wav`` that some redistributions add. ``train`` is all of TRAIN; ``dev``
and ``test`` are the TEST speakers named in the two speaker lists. A speaker
dir with no .PHN file has word transcripts only (the synthetic corpus's
neural voices): TRAIN's such speakers go to ``train_words``, and a test set of
them has no phone segments (WER only).

Ids: speaker ``<spk>`` lower case (e.g. ``fcjf0``), utterance
``<spk>_<utt>`` lower case (``fcjf0_si1027``), so that utterance ids are
prefixed by speaker ids. Gender is the first letter of the speaker dir.

Phones: .PHN (61 phones, offsets in samples) are folded to 48 phones with
:func:`asr.phones.timit.fold_61_to_48`. ``q`` (glottal stop, deleted by the
fold) is merged into the PREVIOUS segment, which is extended over the ``q``
span (the next one when ``q`` comes first), so that segments stay contiguous
and cover the same time as the .PHN file. Zero-length segments are dropped
(with a warning); a gap between two .PHN segments is closed by extending
the earlier one (with a warning); an overlap is an error.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import soundfile as sf

from asr.corpus.datadir import DataDir, Segment, read_speaker_list, write_datadir
from asr.errors import DataError
from asr.phones.timit import MAP_61_48, fold_61_to_48, timit_lang

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
#: Utterance counts of the standard split (SA excluded): train, dev, core test.
STANDARD_COUNTS = {"train": 3696, "dev": 400, "test": 192}
_SPLITS = ("train", "test")
#: The data dir of the TRAIN speakers with word transcripts only (no .PHN files).
TRAIN_WORDS = "train_words"
_PUNCT = re.compile(r"[^a-z0-9' \-]+")


@dataclass
class _Utt:
    spk: str
    utt_id: str
    wav: Path
    phn: Optional[Path]  # None: a speaker with word transcripts only
    txt: Path


def _child_ci(parent: Path, name: str) -> Optional[Path]:
    """The child of ``parent`` whose name equals ``name`` ignoring case."""
    for child in parent.iterdir():
        if child.name.lower() == name.lower():
            return child
    return None


def _has_splits(path: Path) -> bool:
    return all((c := _child_ci(path, s)) is not None and c.is_dir() for s in _SPLITS)


def find_timit_root(path: Path) -> Path:
    """Find the directory holding TRAIN/ and TEST/ (any case).

    Accepts that directory itself or its parent (``TIMIT/`` holding
    ``TIMIT/TRAIN``, or ``timit/`` holding ``data/TRAIN``).

    Raises:
        DataError: when ``path`` does not exist or holds no TRAIN/TEST.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: TIMIT directory does not exist")
    if _has_splits(path):
        return path
    candidates = sorted(c for c in path.iterdir() if c.is_dir() and _has_splits(c))
    if len(candidates) == 1:
        return candidates[0]
    if len(candidates) > 1:
        raise DataError(f"{path}: several TIMIT trees below it: {[c.name for c in candidates]}")
    raise DataError(f"{path}: no TRAIN and TEST directories (upper or lower case) in it or its subdirectories")


def _speaker_utts(spk_dir: Path) -> list[_Utt]:
    """The non-SA utterances of one speaker directory. A speaker with no .PHN file at all has
    word transcripts only (``phn`` None: the synthetic corpus's neural voices).

    Raises:
        DataError: when a .WAV has no .TXT beside it, or no .PHN while others of its speaker have one.
    """
    spk = spk_dir.name.lower()
    files = {f.name.lower(): f for f in spk_dir.iterdir() if f.is_file()}
    words_only = not any(name.endswith(".phn") for name in files)
    utts = []
    for name in sorted(files):
        stem, dot, ext = name.rpartition(".")
        if ext != "wav" or not dot or stem.startswith("sa"):
            continue
        if "." in stem:  # e.g. SI1027.WAV.wav: a converted copy some distributions add
            log.debug("%s: skipping converted copy", files[name])
            continue
        missing = [e for e in ("phn", "txt") if f"{stem}.{e}" not in files and not (e == "phn" and words_only)]
        if missing:
            raise DataError(f"{files[name]}: no .{missing[0].upper()} file beside it")
        utts.append(_Utt(spk, f"{spk}_{stem}", files[name], files.get(f"{stem}.phn"), files[f"{stem}.txt"]))
    return utts


def _scan_split(split_dir: Path) -> dict[str, Path]:
    """Speaker id (lower case) -> speaker dir, over all dialect regions."""
    speakers: dict[str, Path] = {}
    for region in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        for spk_dir in sorted(p for p in region.iterdir() if p.is_dir()):
            spk = spk_dir.name.lower()
            if spk[:1] not in ("m", "f"):
                raise DataError(f"{spk_dir}: speaker dir name must start with m or f")
            if spk in speakers:
                raise DataError(f"{spk_dir}: speaker {spk!r} also in {speakers[spk]}")
            speakers[spk] = spk_dir
    if not speakers:
        raise DataError(f"{split_dir}: no speaker directories (expected DR1..DR8/<SPK>/)")
    return speakers


def _audio_frames(wav: Path) -> int:
    """Number of samples of a 16 kHz mono audio file (SPHERE header via soundfile).

    Raises:
        DataError: unreadable audio, wrong sample rate or channel count.
    """
    try:
        info = sf.info(str(wav))
    except (RuntimeError, sf.LibsndfileError) as e:
        raise DataError(f"{wav}: cannot read audio header ({e})") from None
    if info.samplerate != SAMPLE_RATE:
        raise DataError(f"{wav}: sample rate is {info.samplerate} Hz, expected {SAMPLE_RATE} Hz")
    if info.channels != 1:
        raise DataError(f"{wav}: {info.channels} channels, expected mono")
    return int(info.frames)


def read_txt(path: Path) -> str:
    """The prompt of a TIMIT .TXT file: offsets dropped, lower case, punctuation stripped.

    Apostrophes and hyphens inside words are kept ("don't", "twenty-two").
    """
    fields = path.read_text(encoding="latin-1").split()
    if len(fields) < 3 or not (fields[0].isdigit() and fields[1].isdigit()):
        raise DataError(f"{path}: expected '<start> <end> <prompt>', got {' '.join(fields)[:60]!r}")
    prompt = _PUNCT.sub(" ", " ".join(fields[2:]).lower())
    words = [w.strip("'-") for w in prompt.split()]
    return " ".join(w for w in words if w)


def _parse_phn(path: Path, num_samples: int) -> list[tuple[int, int, str]]:
    """Read (start, end, phone61) rows in samples; check format, order, range, phones."""
    rows: list[tuple[int, int, str]] = []
    for lineno, line in enumerate(path.read_text(encoding="latin-1").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 3 or not fields[0].isdigit() or not fields[1].isdigit():
            raise DataError(f"{path}:{lineno}: expected '<start> <end> <phone>', got {line!r}")
        start, end, phone = int(fields[0]), int(fields[1]), fields[2].lower()
        if phone not in MAP_61_48:
            raise DataError(f"{path}:{lineno}: unknown TIMIT phone {phone!r}")
        if end < start or (rows and start < rows[-1][1]):
            raise DataError(f"{path}:{lineno}: segment {start} {end} {phone} is out of order")
        if end > num_samples:
            raise DataError(f"{path}:{lineno}: end offset {end} is past the audio length ({num_samples} samples)")
        if rows and start > rows[-1][1]:
            log.warning("%s:%d: gap before %s; extending the previous segment", path, lineno, phone)
            rows[-1] = (rows[-1][0], start, rows[-1][2])
        rows.append((start, end, phone))
    if not rows:
        raise DataError(f"{path}: no phone segments")
    return rows


def _fold_segments(path: Path, rows: list[tuple[int, int, str]]) -> list[Segment]:
    """61-phone sample rows -> contiguous 48-phone second segments (q merged into the previous)."""
    merged: list[list] = []
    pending_start: Optional[int] = None  # start of a leading q span
    for start, end, phone in rows:
        if end == start:
            log.warning("%s: dropping zero-length segment %s at sample %d", path, phone, start)
            continue
        folded = fold_61_to_48([phone], where=str(path))
        if not folded:  # q: extend the previous segment (or the next one)
            if merged:
                merged[-1][1] = end
            elif pending_start is None:
                pending_start = start
            continue
        merged.append([start if pending_start is None else pending_start, end, folded[0]])
        pending_start = None
    if not merged:
        raise DataError(f"{path}: no phone segments left after folding to 48 phones")
    return [(s / SAMPLE_RATE, e / SAMPLE_RATE, p) for s, e, p in merged]


def _prepare_utts(utts: list[_Utt]) -> tuple[dict, dict, dict, dict]:
    """Read audio headers, prompts and phones of ``utts``.

    Returns:
        (wav, text, utt2spk, phone_segments) mappings keyed by utterance id.
    """
    wav, text, utt2spk, segs = {}, {}, {}, {}
    for u in utts:
        num_samples = _audio_frames(u.wav)
        if u.phn is not None:
            segs[u.utt_id] = _fold_segments(u.phn, _parse_phn(u.phn, num_samples))
        text[u.utt_id] = read_txt(u.txt)
        wav[u.utt_id] = str(u.wav.resolve())
        utt2spk[u.utt_id] = u.spk
    return wav, text, utt2spk, segs


_SplitData = tuple[dict, dict, dict, dict, dict]


def _collect_split(name: str, spk_dirs: list[Path]) -> _SplitData:
    """(wav, text, utt2spk, spk2gender, phone_segments) of one split, read in memory."""
    utts = [u for d in spk_dirs for u in _speaker_utts(d)]
    if not utts:
        raise DataError(f"{spk_dirs[0].parent.parent if spk_dirs else name}: no utterances for the {name} split")
    labelled = {u.spk for u in utts if u.phn is not None}
    if labelled and len(labelled) < len({u.spk for u in utts}):
        words_only = sorted({u.spk for u in utts} - labelled)
        raise DataError(f"the {name} set mixes speakers with phone labels (.PHN) and speakers without "
                        f"(e.g. {words_only[0]!r}); give each kind its own speaker list")
    wav, text, utt2spk, segs = _prepare_utts(utts)
    spk2gender = {d.name.lower(): d.name[0].lower() for d in spk_dirs}
    return wav, text, utt2spk, spk2gender, segs


def _words_only(spk_dir: Path) -> bool:
    """True when the speaker dir holds no .PHN file (word transcripts only)."""
    return not any(f.suffix.lower() == ".phn" for f in spk_dir.iterdir() if f.is_file())


def _select(speakers: dict[str, Path], wanted: list[str], list_path: Path, split: Path) -> list[Path]:
    missing = [s for s in wanted if s not in speakers]
    if missing:
        raise DataError(f"{list_path}: speaker {missing[0]!r} not found in {split} ({len(missing)} missing)")
    return [speakers[s] for s in wanted]


def prepare_timit(
    timit_dir: Path,
    out_dir: Path,
    dev_spk_list: Path,
    test_spk_list: Path,
    expect_standard_counts: bool = False,
    extra_test: dict[str, Path] | None = None,
) -> dict[str, DataDir]:
    """Write ``out_dir/train``, ``out_dir/dev`` and ``out_dir/test`` from a TIMIT tree,
    and TIMIT's 48-phone lang dir ``out_dir/lang`` (:func:`asr.phones.timit.timit_lang`).

    Args:
        timit_dir: the dir holding TRAIN/TEST, or its parent.
        dev_spk_list, test_spk_list: lower-case TEST speaker ids, one a line.
        expect_standard_counts: check 3696 / 400 / 192 utterances.
        extra_test: more test sets, {name: speaker list} (e.g. the synthetic
            corpus's ``test_unseen``); each speaker in at most one set.

    Returns:
        {"train": DataDir, "dev": DataDir, "test": DataDir, **extra_test sets}, and
        ``train_words`` when TRAIN has speakers with word transcripts only (no .PHN):
        the data dir of those speakers, without phone segments (a test set of such
        speakers likewise has none).

    Raises:
        DataError: naming the file and the problem.
    """
    root = find_timit_root(Path(timit_dir))
    train_dir, test_dir = _child_ci(root, "train"), _child_ci(root, "test")
    assert train_dir is not None and test_dir is not None, root
    train_spk, test_spk = _scan_split(train_dir), _scan_split(test_dir)
    lists = {"dev": Path(dev_spk_list), "test": Path(test_spk_list), **(extra_test or {})}
    if {"train", "dev", "test", TRAIN_WORDS} & set(extra_test or {}):
        raise DataError(f"extra test set names {sorted(extra_test or {})} must not be train, dev, test "
                        f"or {TRAIN_WORDS}")
    ids = {name: read_speaker_list(path) for name, path in lists.items()}
    seen: dict[str, str] = {}
    for name, spks in ids.items():
        for spk in spks:
            if spk in seen:
                raise DataError(f"{lists[name]}: speaker {spk!r} is also in {lists[seen[spk]]}")
            seen[spk] = name
    train_dirs = [train_spk[s] for s in sorted(train_spk)]
    selections = {"train": [d for d in train_dirs if not _words_only(d)]}
    words_dirs = [d for d in train_dirs if _words_only(d)]
    if words_dirs:  # speakers with word transcripts only: their own set, aligned from their words
        selections[TRAIN_WORDS] = words_dirs
    if not selections["train"]:
        raise DataError(f"{train_dir}: no training speaker has phone labels (.PHN); import a corpus of "
                        f"word transcripts with asr import-corpus and train it with recipes/words/run.sh")
    selections |= {name: _select(test_spk, sorted(spks), lists[name], test_dir) for name, spks in ids.items()}
    data = {name: _collect_split(name, dirs) for name, dirs in selections.items()}
    counts = {name: len(d[2]) for name, d in data.items()}
    log.info("TIMIT %s: utterances %s, speakers %s", root, counts, {n: len(d[3]) for n, d in data.items()})
    if expect_standard_counts and {n: counts[n] for n in STANDARD_COUNTS} != STANDARD_COUNTS:
        raise DataError(f"{root}: utterance counts {counts} differ from the standard TIMIT counts {STANDARD_COUNTS}")
    out = {name: write_datadir(Path(out_dir) / name, *d) for name, d in data.items()}
    timit_lang().write(Path(out_dir) / "lang")
    return out
