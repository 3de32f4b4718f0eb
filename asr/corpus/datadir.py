"""Kaldi-style data directories: the on-disk contract between all stages.

A data dir holds one line per utterance (or speaker, or recording) in each
file, keys sorted in ``LC_ALL=C`` order (Python's ``str`` order on the UTF-8
keys) and unique. Every file must be valid UTF-8 (``text`` holds any script).

``wav.scp``
    ``<utt> <audio>``, or ``<recording> <audio>`` when there is a
    ``segments`` file. ``<audio>`` is a file path (relative to the current
    directory, as in Kaldi) or a Kaldi input pipe, ``<command> |``, whose
    standard output is audio soundfile reads (``sox x.flac -t wav - |``,
    ``flac -c -d -s x.flac |``); see :func:`asr.audio.read_audio_entry`.
``segments`` (optional)
    ``<utt> <recording> <start_s> <end_s>``: the utterance is that span of
    the recording (seconds; ``end_s`` -1 means to the end of the recording).
``text``
    ``<utt> <word transcript>`` (may be empty after the id).
``utt2spk`` / ``spk2utt``
    ``<utt> <spk>`` / ``<spk> <utt1> <utt2> ...`` (``spk2utt`` is derived).
    As Kaldi's ``validate_data_dir.sh`` requires, utt2spk sorted by
    utterance must also be sorted by speaker: prefix utterance ids with
    their speaker id and this holds.
``spk2gender`` (optional)
    ``<spk> m|f``.
``phone_segments`` (optional)
    ``<utt> <start_s> <end_s> <phone>``: seconds with 5 decimals, sorted by
    utterance then start time, contiguous within an utterance. Any phone
    symbol is accepted unless the reader is given the phone set (the lang
    dir's) to check against.
``phone_text`` (written with ``phone_segments``)
    ``<utt> p1 p2 ...``: the phone sequence (LM training text and the
    scoring reference).

Later stages add files (``feats.scp``, ``cmvn.scp``, ...); the reader
ignores files it does not know (``reco2dur``, ``utt2dur`` too). Every writer
here is atomic. :func:`read_utterance_audio` is how every stage gets an
utterance's samples (paths, pipes and segments alike).
"""

from __future__ import annotations

import functools
import io
import logging
import math
import os
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Iterable, Mapping, Optional, Sequence

import numpy as np
import soundfile as sf

from asr.audio import Audio, is_pipe, pipe_command, read_audio_entry, run_pipe
from asr.errors import AsrError, DataError
from asr.io import atomic_write_text

log = logging.getLogger(__name__)

WAV_SCP = "wav.scp"
SEGMENTS = "segments"
TEXT = "text"
UTT2SPK = "utt2spk"
SPK2UTT = "spk2utt"
SPK2GENDER = "spk2gender"
PHONE_SEGMENTS = "phone_segments"
PHONE_TEXT = "phone_text"
REQUIRED_FILES = (WAV_SCP, TEXT, UTT2SPK)
GENDERS = ("m", "f")
#: Segment times are written with this many decimals (10 µs resolution).
TIME_DECIMALS = 5
#: Segment times are compared in integer units of 10^-TIME_DECIMALS s.
_TIME_UNITS = 10**TIME_DECIMALS
#: A ``segments`` end may pass the recording's end by this much (seconds; clamped),
#: as Kaldi's extract-segments ``--max-overshoot``.
MAX_OVERSHOOT_S = 0.5
#: First words of a pipe that are not programs to look up on PATH.
_SHELL_WORDS = frozenset({"exec", "eval", "echo", "printf", "(", "{", ":", "!"})

Segment = tuple[float, float, str]


@dataclass(frozen=True)
class RecoSegment:
    """One ``segments`` line: the utterance is ``[start, end)`` seconds of ``recording``
    (``end`` None: to the end of the recording)."""

    recording: str
    start: float
    end: Optional[float]


@dataclass
class DataDir:
    """An in-memory, validated data directory (see the module docstring).

    ``wav`` is keyed by utterance, or by recording when ``segments`` is not empty.
    """

    path: Path
    wav: dict[str, str]
    text: dict[str, str]
    utt2spk: dict[str, str]
    spk2utt: dict[str, list[str]]
    spk2gender: dict[str, str] = field(default_factory=dict)
    phone_segments: dict[str, list[Segment]] = field(default_factory=dict)
    segments: dict[str, RecoSegment] = field(default_factory=dict)

    @property
    def utts(self) -> list[str]:
        """All utterance ids, sorted (``LC_ALL=C`` order)."""
        return sorted(self.utt2spk)

    def recording(self, utt: str) -> str:
        """The ``wav.scp`` key of ``utt``: its recording id, or ``utt`` itself without segments."""
        return self.segments[utt].recording if self.segments else utt

    def audio_source(self, utt: str) -> str:
        """Where ``utt``'s audio comes from, for messages: the wav.scp value, and its span."""
        src = self.wav[self.recording(utt)]
        if not self.segments:
            return src
        seg = self.segments[utt]
        end = "end" if seg.end is None else f"{seg.end:g} s"
        return f"{src} [{seg.start:g} s, {end}]"

    def phone_text(self, utt: str) -> list[str]:
        """The phone sequence of ``utt`` from its phone segments.

        Raises:
            DataError: when the data dir has no phone segments for ``utt``.
        """
        if utt not in self.phone_segments:
            raise DataError(f"{self.path / PHONE_SEGMENTS}: no phone segments for utterance {utt!r}")
        return [seg[2] for seg in self.phone_segments[utt]]


# --------------------------------------------------------------------------
# Generic "key value" files


def _check_no_newline(path: Path, key: str, value: str) -> None:
    if not key or any(c.isspace() for c in key):
        raise DataError(f"{path}: key {key!r} is empty or contains whitespace")
    if "\n" in value or "\r" in value:
        raise DataError(f"{path}: value for {key!r} contains a line break")


def read_text_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file (split at ``\\n`` only, as Kaldi; a trailing ``\\r`` dropped).

    Raises:
        DataError: the file is missing, or not valid UTF-8 (naming the line).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file is missing")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        lineno = data.count(b"\n", 0, e.start) + 1
        raise DataError(f"{path}:{lineno}: not valid UTF-8 (byte 0x{data[e.start]:02x}: {e.reason}); "
                        "convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None
    if text.startswith("\ufeff"):
        raise DataError(f"{path}:1: starts with a UTF-8 byte-order mark; remove it")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _read_lines(path: Path, check_sorted: bool = True) -> list[tuple[int, str, str]]:
    """Read ``key rest-of-line`` lines as (line number, key, rest).

    Raises:
        DataError: missing or non-UTF-8 file, blank line, duplicate key (naming
            both lines) or (with ``check_sorted``) unsorted keys.
    """
    rows: list[tuple[int, str, str]] = []
    seen: dict[str, int] = {}
    prev: Optional[str] = None
    for lineno, line in enumerate(read_text_lines(path), start=1):
        parts = line.strip().split(maxsplit=1)
        if not parts:
            raise DataError(f"{path}:{lineno}: empty line")
        key, rest = parts[0], (parts[1] if len(parts) > 1 else "")
        if key in seen:
            raise DataError(f"{path}:{lineno}: duplicate key {key!r} (first on line {seen[key]})")
        if check_sorted and prev is not None and key < prev:
            raise DataError(f"{path}:{lineno}: key {key!r} is not sorted (follows {prev!r}; LC_ALL=C order)")
        seen[key] = lineno
        prev = key
        rows.append((lineno, key, rest))
    return rows


def read_scp(path: Path) -> dict[str, str]:
    """Read a ``<key> <value with spaces>`` file (``wav.scp``, ``feats.scp``, ...).

    Keys may come in any order but must be unique and have a value.

    Raises:
        DataError: missing file, blank line, key without value, duplicate key.
    """
    path = Path(path)
    out: dict[str, str] = {}
    for lineno, key, rest in _read_lines(path, check_sorted=False):
        if not rest:
            raise DataError(f"{path}:{lineno}: key {key!r} has no value")
        out[key] = rest
    return out


def write_scp(path: Path, mapping: Mapping[str, str]) -> None:
    """Write ``mapping`` as sorted ``<key> <value>`` lines, atomically."""
    path = Path(path)
    lines = []
    for key in sorted(mapping):
        value = str(mapping[key]).strip()
        _check_no_newline(path, key, value)
        lines.append(f"{key} {value}".rstrip())
    atomic_write_text(path, "".join(line + "\n" for line in lines))


# --------------------------------------------------------------------------
# Phone segments


def _format_time(t: float) -> str:
    return f"{t:.{TIME_DECIMALS}f}"


def _time_units(t: float) -> int:
    return int(round(t * _TIME_UNITS))


def _check_segments(where: str, utt: str, segs: list[Segment], phones: Optional[Collection[str]]) -> None:
    """Check phones (when ``phones`` is given), positive lengths, contiguity of one utterance.

    Raises:
        DataError: naming ``where`` (file[:line]) and the utterance.
    """
    if not segs:
        raise DataError(f"{where}: utterance {utt!r} has no phone segments")
    prev_end: Optional[int] = None
    for start, end, phone in segs:
        if phones is not None and phone not in phones:
            raise DataError(f"{where}: utterance {utt!r}: unknown phone {phone!r} (not in the phone set)")
        s, e = _time_units(start), _time_units(end)
        if s < 0 or e <= s:
            raise DataError(
                f"{where}: utterance {utt!r}: segment {phone} [{start}, {end}] has negative or zero length"
            )
        if prev_end is not None and s != prev_end:
            raise DataError(
                f"{where}: utterance {utt!r}: segment {phone} starts at {start} but the previous one "
                f"ends at {prev_end / _TIME_UNITS} (segments must be contiguous)"
            )
        prev_end = e


def _parse_segment_line(path: Path, lineno: int, line: str) -> tuple[str, Segment]:
    fields = line.split()
    if len(fields) != 4:
        raise DataError(f"{path}:{lineno}: expected '<utt> <start_s> <end_s> <phone>', got {line!r}")
    utt, start_s, end_s, phone = fields
    try:
        start, end = float(start_s), float(end_s)
    except ValueError:
        raise DataError(f"{path}:{lineno}: times {start_s!r} {end_s!r} are not numbers") from None
    if not (math.isfinite(start) and math.isfinite(end)):
        raise DataError(f"{path}:{lineno}: times {start_s!r} {end_s!r} are not finite numbers")
    return utt, (start, end, phone)


def _read_phone_segments(path: Path, phones: Optional[Collection[str]]) -> dict[str, list[Segment]]:
    """Read ``phone_segments``; validate order, phones (when given) and contiguity."""
    segs: dict[str, list[Segment]] = {}
    first_line: dict[str, int] = {}
    prev: Optional[tuple[str, float]] = None
    for lineno, line in enumerate(read_text_lines(path), start=1):
        utt, seg = _parse_segment_line(path, lineno, line)
        if prev is not None and (utt, seg[0]) <= prev:
            raise DataError(f"{path}:{lineno}: line is not sorted by utterance then start time (after {prev})")
        prev = (utt, seg[0])
        first_line.setdefault(utt, lineno)
        segs.setdefault(utt, []).append(seg)
    for utt, utt_segs in segs.items():
        _check_segments(f"{path}:{first_line[utt]}", utt, utt_segs, phones)
    return segs


def _segments_text(segments: Mapping[str, list[Segment]]) -> tuple[str, str]:
    """Render (phone_segments, phone_text) file contents, sorted."""
    seg_lines: list[str] = []
    text_lines: list[str] = []
    for utt in sorted(segments):
        ordered = sorted(segments[utt], key=lambda s: s[0])
        for start, end, phone in ordered:
            seg_lines.append(f"{utt} {_format_time(start)} {_format_time(end)} {phone}\n")
        text_lines.append(" ".join([utt] + [p for _, _, p in ordered]) + "\n")
    return "".join(seg_lines), "".join(text_lines)


# --------------------------------------------------------------------------
# Recording segments (the ``segments`` file)


def _parse_reco_segment(path: Path, lineno: int, rest: str) -> RecoSegment:
    """``<recording> <start_s> <end_s>`` (the part after the utterance id) -> RecoSegment."""
    fields = rest.split()
    if len(fields) != 3:
        raise DataError(f"{path}:{lineno}: expected '<utt> <recording> <start_s> <end_s>', got {rest!r} after the id")
    reco, start_s, end_s = fields
    try:
        start, end = float(start_s), float(end_s)
    except ValueError:
        raise DataError(f"{path}:{lineno}: times {start_s!r} {end_s!r} are not numbers") from None
    return RecoSegment(reco, start, None if end == -1 else end)


def _check_reco_segment(where: str, utt: str, seg: RecoSegment) -> None:
    """Start >= 0 and end > start (or -1: to the end); DataError naming ``where``."""
    if not np.isfinite(seg.start) or seg.start < 0:
        raise DataError(f"{where}: utterance {utt!r}: start {seg.start} s is negative or not finite")
    if seg.end is not None and not (np.isfinite(seg.end) and seg.end > seg.start):
        raise DataError(f"{where}: utterance {utt!r}: end {seg.end} s is not after start {seg.start} s "
                        "(use -1 for the end of the recording)")


def _read_reco_segments(path: Path) -> dict[str, RecoSegment]:
    """Read and check a sorted, duplicate-free ``segments`` file."""
    out: dict[str, RecoSegment] = {}
    for lineno, utt, rest in _read_lines(path):
        seg = _parse_reco_segment(path, lineno, rest)
        _check_reco_segment(f"{path}:{lineno}", utt, seg)
        out[utt] = seg
    return out


def _format_reco_segment(seg: RecoSegment) -> str:
    end = "-1" if seg.end is None else _format_time(seg.end)
    return f"{seg.recording} {_format_time(seg.start)} {end}"


def _check_recordings(path: Path, segments: Mapping[str, RecoSegment], wav: Mapping[str, str]) -> None:
    """Every recording of ``segments`` is in wav.scp and every wav.scp recording is used."""
    for lineno, utt in enumerate(sorted(segments), start=1):
        _check_reco_segment(f"{path / SEGMENTS}:{lineno}", utt, segments[utt])
        if segments[utt].recording not in wav:
            raise DataError(f"{path / SEGMENTS}:{lineno}: utterance {utt!r}: recording "
                            f"{segments[utt].recording!r} is not in {path / WAV_SCP}")
    unused = sorted(set(wav) - {s.recording for s in segments.values()})
    if unused:
        line = sorted(wav).index(unused[0]) + 1
        raise DataError(f"{path / WAV_SCP}:{line}: recording {unused[0]!r} has no utterance in "
                        f"{path / SEGMENTS} ({len(unused)} such recordings)")


# --------------------------------------------------------------------------
# Cross-file consistency


def _check_same_utts(name_a: str, a: Iterable[str], name_b: str, b: Iterable[str]) -> None:
    set_a, set_b = set(a), set(b)
    if set_a == set_b:
        return
    only_a, only_b = sorted(set_a - set_b), sorted(set_b - set_a)
    detail = []
    if only_a:
        line = sorted(set_a).index(only_a[0]) + 1
        detail.append(f"{len(only_a)} utterance(s) only in {name_a}, e.g. {only_a[0]!r} (line {line})")
    if only_b:
        line = sorted(set_b).index(only_b[0]) + 1
        detail.append(f"{len(only_b)} utterance(s) only in {name_b}, e.g. {only_b[0]!r} (line {line})")
    raise DataError(f"{name_a} and {name_b} list different utterances: " + "; ".join(detail))


def _check_utt2spk(path: Path, utt2spk: Mapping[str, str]) -> None:
    """Speaker ids well formed, and utt2spk sorted by utterance also sorted by speaker
    (Kaldi's ``sort -k2 -C utt2spk`` in validate_data_dir.sh)."""
    prev: Optional[tuple[str, str]] = None
    for lineno, utt in enumerate(sorted(utt2spk), start=1):
        spk = utt2spk[utt]
        if not spk or any(c.isspace() for c in spk):
            raise DataError(f"{path}:{lineno}: utterance {utt!r} has a malformed speaker id {spk!r}")
        if prev is not None and spk < prev[1]:
            raise DataError(
                f"{path}:{lineno}: utterance {utt!r} of speaker {spk!r} sorts after {prev[0]!r} of speaker "
                f"{prev[1]!r}: sorted by utterance, utt2spk is not sorted by speaker (LC_ALL=C), as Kaldi "
                "requires; prefix each utterance id with its speaker id (e.g. '<spk>-<utt>')"
            )
        prev = (utt, spk)


@functools.lru_cache(maxsize=256)
def _program_found(program: str) -> bool:
    """True when ``program`` (a name looked up on PATH, or a path) can be executed."""
    return os.access(program, os.X_OK) if "/" in program else shutil.which(program) is not None


def _check_pipe(where: str, key: str, entry: str) -> None:  # key: "utterance 'x'" for messages
    """A readable input pipe: ``<command> |`` whose program is on PATH."""
    try:
        words = shlex.split(pipe_command(entry))
    except ValueError as exc:
        raise DataError(f"{where}: {key}: cannot parse the pipe {entry!r} ({exc})") from None
    words = [w for w in words if not ("=" in w and w.split("=", 1)[0].isidentifier())]  # VAR=value prefixes
    if not words:
        raise DataError(f"{where}: {key}: empty pipe command {entry!r}")
    program = words[0]
    if program not in _SHELL_WORDS and not _program_found(program):
        raise DataError(f"{where}: {key}: program {program!r} of the pipe {entry!r} is not found "
                        "(install it or put it on PATH)")


def _check_wav_entries(path: Path, wav: Mapping[str, str], what: str) -> None:
    """Each value is an existing file or a Kaldi input pipe whose program exists
    (``what``: "utterance" or "recording", the kind of key, for messages)."""
    for lineno, key in enumerate(sorted(wav), start=1):
        audio = wav[key].strip()
        where = f"{path}:{lineno}"
        if audio.startswith("|") or audio == "-":
            raise DataError(f"{where}: {what} {key!r}: {audio!r} is not an input (expected a path or '<command> |')")
        if is_pipe(audio):
            _check_pipe(where, f"{what} {key!r}", audio)
        elif not Path(audio).is_file():
            raise DataError(f"{where}: {what} {key!r}: audio file {audio!r} does not exist")


def _check_spk2gender(path: Path, spk2gender: Mapping[str, str], speakers: Iterable[str]) -> None:
    for lineno, spk in enumerate(sorted(spk2gender), start=1):
        if spk2gender[spk] not in GENDERS:
            raise DataError(f"{path}:{lineno}: speaker {spk!r} has gender {spk2gender[spk]!r}, expected m or f")
    _check_same_utts(f"{path} (speakers)", spk2gender, "utt2spk (speakers)", speakers)


def make_spk2utt(utt2spk: Mapping[str, str]) -> dict[str, list[str]]:
    """Invert utt2spk: speaker -> sorted utterance ids."""
    spk2utt: dict[str, list[str]] = {}
    for utt in sorted(utt2spk):
        spk2utt.setdefault(utt2spk[utt], []).append(utt)
    return spk2utt


@dataclass
class _Contents:
    """The mappings of a data dir, before it is written or after it is read."""

    wav: Mapping[str, str]
    text: Mapping[str, str]
    utt2spk: Mapping[str, str]
    spk2gender: Mapping[str, str]
    phone_segments: Mapping[str, list[Segment]]
    segments: Mapping[str, RecoSegment]


def _validate_contents(path: Path, c: _Contents) -> None:
    """Cross-file checks shared by the writer and the reader."""
    if not c.utt2spk:
        raise DataError(f"{path}: the data dir is empty (no utterances in {UTT2SPK})")
    _check_utt2spk(path / UTT2SPK, c.utt2spk)
    if c.segments:
        _check_same_utts(str(path / SEGMENTS), c.segments, str(path / UTT2SPK), c.utt2spk)
        _check_recordings(path, c.segments, c.wav)
    else:
        _check_same_utts(str(path / WAV_SCP), c.wav, str(path / UTT2SPK), c.utt2spk)
    _check_same_utts(str(path / TEXT), c.text, str(path / UTT2SPK), c.utt2spk)
    if c.phone_segments:
        _check_same_utts(str(path / PHONE_SEGMENTS), c.phone_segments, str(path / UTT2SPK), c.utt2spk)
    if c.spk2gender:
        _check_spk2gender(path / SPK2GENDER, c.spk2gender, set(c.utt2spk.values()))
    _check_wav_entries(path / WAV_SCP, c.wav, "recording" if c.segments else "utterance")


# --------------------------------------------------------------------------
# Public API


def write_datadir(
    path: Path,
    wav: Mapping[str, str],
    text: Mapping[str, str],
    utt2spk: Mapping[str, str],
    spk2gender: Optional[Mapping[str, str]] = None,
    phone_segments: Optional[Mapping[str, list[Segment]]] = None,
    *,
    segments: Optional[Mapping[str, RecoSegment]] = None,
    phones: Optional[Collection[str]] = None,
) -> DataDir:
    """Validate and write a data dir (every file sorted and atomic).

    ``spk2utt`` is derived from ``utt2spk``; ``phone_text`` is derived from
    ``phone_segments``. With ``segments`` (utterance -> span of a recording),
    ``wav`` is keyed by recording id. ``phones``, when given, is the phone set
    ``phone_segments`` must use. Nothing is written when validation fails.

    Raises:
        DataError: on inconsistent input (see :func:`validate_datadir`).
    """
    path = Path(path)
    segs = {u: sorted(s, key=lambda x: x[0]) for u, s in (phone_segments or {}).items()}
    contents = _Contents(wav, text, utt2spk, dict(spk2gender or {}), segs, dict(segments or {}))
    _validate_contents(path, contents)
    for utt, utt_segs in segs.items():
        _check_segments(str(path / PHONE_SEGMENTS), utt, utt_segs, phones)
    path.mkdir(parents=True, exist_ok=True)
    write_scp(path / WAV_SCP, wav)
    write_scp(path / TEXT, text)
    write_scp(path / UTT2SPK, utt2spk)
    spk2utt = make_spk2utt(utt2spk)
    write_scp(path / SPK2UTT, {s: " ".join(u) for s, u in spk2utt.items()})
    stale = {SPK2GENDER: contents.spk2gender, SEGMENTS: contents.segments, PHONE_SEGMENTS: segs, PHONE_TEXT: segs}
    for name, present in stale.items():
        if not present:
            (path / name).unlink(missing_ok=True)  # a file left by an earlier write would contradict these
    if contents.spk2gender:
        write_scp(path / SPK2GENDER, contents.spk2gender)
    if contents.segments:
        write_scp(path / SEGMENTS, {u: _format_reco_segment(s) for u, s in contents.segments.items()})
    if segs:
        seg_text, phone_text = _segments_text(segs)
        atomic_write_text(path / PHONE_SEGMENTS, seg_text)
        atomic_write_text(path / PHONE_TEXT, phone_text)
    log.info("wrote data dir %s: %d utterances, %d speakers", path, len(utt2spk), len(spk2utt))
    return read_datadir(path, require_phones=bool(segs), phones=phones)


def _read_kv(path: Path, allow_empty_value: bool = False) -> dict[str, str]:
    """Read a sorted, duplicate-free ``key value`` file."""
    out: dict[str, str] = {}
    for lineno, key, rest in _read_lines(path):
        if not rest and not allow_empty_value:
            raise DataError(f"{path}:{lineno}: key {key!r} has no value")
        out[key] = rest
    return out


def _read_utt2spk(path: Path) -> dict[str, str]:
    out = _read_kv(path)
    for lineno, (utt, spk) in enumerate(out.items(), start=1):
        if len(spk.split()) != 1:
            raise DataError(f"{path}:{lineno}: expected '<utt> <spk>', got {utt!r} {spk!r}")
    return out


def _read_spk2utt(path: Path, utt2spk: Mapping[str, str]) -> dict[str, list[str]]:
    """Read spk2utt and check it against utt2spk."""
    spk2utt = {k: v.split() for k, v in _read_kv(path).items()}
    expected = make_spk2utt(utt2spk)
    for lineno, spk in enumerate(spk2utt, start=1):
        if spk not in expected:
            raise DataError(f"{path}:{lineno}: speaker {spk!r} has no utterance in utt2spk")
        if spk2utt[spk] != expected[spk]:
            raise DataError(
                f"{path}:{lineno}: utterances of speaker {spk!r} disagree with utt2spk "
                f"(spk2utt has {len(spk2utt[spk])}, utt2spk has {len(expected[spk])}; "
                "or not sorted)"
            )
    missing = sorted(set(expected) - set(spk2utt))
    if missing:
        raise DataError(f"{path}: speaker {missing[0]!r} of utt2spk is missing ({len(missing)} missing)")
    return spk2utt


def _check_phone_text(path: Path, segs: Mapping[str, list[Segment]]) -> None:
    """phone_text must be present and equal the phone_segments sequences."""
    rows = _read_kv(path, allow_empty_value=False)
    _check_same_utts(str(path), rows, str(path.parent / PHONE_SEGMENTS), segs)
    for lineno, (utt, phones) in enumerate(rows.items(), start=1):
        if phones.split() != [s[2] for s in segs[utt]]:
            raise DataError(f"{path}:{lineno}: utterance {utt!r}: phone sequence differs from phone_segments")


def read_datadir(path: Path, require_phones: bool = False, phones: Optional[Collection[str]] = None) -> DataDir:
    """Read and validate a data dir; unknown extra files are ignored.

    Args:
        path: the data dir.
        require_phones: a missing ``phone_segments`` is an error.
        phones: when given, every ``phone_segments`` phone must be in it; when
            None any phone symbol is accepted.

    Raises:
        DataError: naming the file, line and problem (see :func:`validate_datadir`).
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: data dir does not exist")
    for name in REQUIRED_FILES:
        if not (path / name).is_file():
            raise DataError(f"{path / name}: required file is missing")
    wav = _read_kv(path / WAV_SCP)
    text = _read_kv(path / TEXT, allow_empty_value=True)
    utt2spk = _read_utt2spk(path / UTT2SPK)
    spk2gender = _read_kv(path / SPK2GENDER) if (path / SPK2GENDER).is_file() else {}
    reco_segs = _read_reco_segments(path / SEGMENTS) if (path / SEGMENTS).is_file() else {}
    segs: dict[str, list[Segment]] = {}
    if (path / PHONE_SEGMENTS).is_file():
        segs = _read_phone_segments(path / PHONE_SEGMENTS, phones)
        _check_phone_text(path / PHONE_TEXT, segs)
    elif require_phones:
        raise DataError(f"{path / PHONE_SEGMENTS}: required file is missing (phone segments needed)")
    _validate_contents(path, _Contents(wav, text, utt2spk, spk2gender, segs, reco_segs))
    if not (path / SPK2UTT).is_file():
        raise DataError(f"{path / SPK2UTT}: required file is missing")
    spk2utt = _read_spk2utt(path / SPK2UTT, utt2spk)
    return DataDir(path, wav, text, utt2spk, spk2utt, spk2gender, segs, reco_segs)


def validate_datadir(path: Path, require_phones: bool = False, phones: Optional[Collection[str]] = None) -> None:
    """Validate a data dir as Kaldi's ``utils/validate_data_dir.sh`` does; raise
    DataError naming the file, line and problem.

    Checks: required files (``wav.scp``, ``text``, ``utt2spk``, ``spk2utt``)
    present and valid UTF-8; keys sorted (``LC_ALL=C``) and unique (a
    duplicate names both lines); no malformed lines; utt2spk sorted by
    utterance also sorted by speaker (prefix utterance ids with the speaker
    id); the same utterances in ``text``, ``utt2spk``, ``phone_segments`` and
    ``wav.scp`` (or ``segments``, whose recordings are exactly wav.scp's, with
    0 <= start < end or end -1); ``spk2utt`` consistent with ``utt2spk``;
    audio files exist and pipes' programs are on PATH; phones in ``phones``
    when given; phone segments contiguous and of positive length; at least one
    utterance.
    """
    read_datadir(path, require_phones=require_phones, phones=phones)


# --------------------------------------------------------------------------
# Audio of an utterance


def _source_key(entry: str) -> tuple:
    """A cache key for a wav.scp value: a file's path, size and mtime, or a pipe's text."""
    if is_pipe(entry):
        return (entry,)
    try:
        st = os.stat(entry)
    except OSError:
        return (entry, None)
    return (entry, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=1)
def _cached_recording(key: tuple, entry: str, rate: int, resample: bool) -> Audio:
    """One recording, kept while consecutive segments of it are read."""
    return read_audio_entry(entry, rate, resample)


def _cut(audio: np.ndarray, seg: RecoSegment, rate: int, where: str) -> np.ndarray:
    """The samples of ``seg`` in a recording's (N,) samples at ``rate`` Hz."""
    n = len(audio)
    start = int(round(seg.start * rate))
    end = n if seg.end is None else int(round(seg.end * rate))
    if end > n and end - n > MAX_OVERSHOOT_S * rate:
        raise DataError(f"{where}: segment ends at {seg.end} s, past the end of the recording "
                        f"({n / rate:.3f} s) by more than {MAX_OVERSHOOT_S} s")
    end = min(end, n)
    if start >= end:
        raise DataError(f"{where}: segment starts at {seg.start} s, at or past the end of the recording "
                        f"({n / rate:.3f} s)")
    return audio[start:end].copy()


def read_utterance_audio(dd: DataDir, utt: str, rate: int, resample: bool = False) -> np.ndarray:
    """The (num_samples,) float32 samples of ``utt`` at ``rate`` Hz: its wav.scp file or pipe,
    cut to its ``segments`` span when the data dir has one. The one way every stage reads audio.

    Raises:
        AudioError: unreadable, empty audio or the wrong rate (when not ``resample``).
        DataError: a failing pipe command, a segment outside its recording, an unknown utterance.
        Each message names the utterance and the file or command.
    """
    if utt not in dd.utt2spk:
        raise DataError(f"{dd.path}: no utterance {utt!r}")
    entry = dd.wav[dd.recording(utt)]
    try:
        if not dd.segments:
            return read_audio_entry(entry, rate, resample).samples
        audio = _cached_recording(_source_key(entry), entry, rate, resample)
    except AsrError as exc:
        raise type(exc)(f"utterance {utt}: {exc}") from None
    return _cut(audio.samples, dd.segments[utt], rate, f"{dd.path / SEGMENTS}: utterance {utt}")


def utt2dur(dd: DataDir) -> dict[str, float]:
    """Each utterance's duration in seconds (Kaldi's ``utt2dur``): a segment's span, or
    its recording's length (file headers are read; pipes are run, as Kaldi's get_utt2dur.sh)."""
    reco_seconds: dict[str, float] = {}
    out: dict[str, float] = {}
    for utt in dd.utts:
        seg = dd.segments.get(utt)
        if seg is not None and seg.end is not None:
            out[utt] = seg.end - seg.start
            continue
        reco = dd.recording(utt)
        if reco not in reco_seconds:
            reco_seconds[reco] = recording_seconds(dd.wav[reco], where=f"{dd.path / WAV_SCP}: {reco}")
        out[utt] = reco_seconds[reco] - (seg.start if seg is not None else 0.0)
    return out


def recording_seconds(entry: str, where: str = "") -> float:
    """Duration in seconds of a wav.scp value: a file's header, or a pipe's whole output.

    Raises:
        DataError: unreadable audio or a failing pipe (prefixed with ``where``).
    """
    prefix = f"{where}: " if where else ""
    try:
        info = sf.info(io.BytesIO(run_pipe(entry)) if is_pipe(entry) else entry)
    except (RuntimeError, sf.LibsndfileError, ValueError) as exc:
        raise DataError(f"{prefix}{entry}: cannot read audio header ({exc})") from None
    except DataError as exc:
        raise DataError(f"{prefix}{exc}") from None
    return info.frames / info.samplerate


# --------------------------------------------------------------------------
# Speaker lists and subsets


def read_speaker_list(path: Path) -> list[str]:
    """Lower-case speaker ids, one a line (blank lines and # comments ignored), in file order."""
    if not Path(path).is_file():
        raise DataError(f"{path}: speaker list does not exist")
    spks = []
    for line in read_text_lines(Path(path)):
        line = line.split("#", 1)[0].strip()
        if line:
            spks.append(line.lower())
    if not spks:
        raise DataError(f"{path}: speaker list is empty")
    if len(set(spks)) != len(spks):
        raise DataError(f"{path}: speaker list has duplicate speakers")
    return spks


#: Per-utterance (or per-speaker) files a subset filters besides the data dir's own.
_FEATURE_SCPS = ("feats.scp", "cmvn.scp")
#: Files a subset copies as they are (the features' settings).
_COPIED = ("feats.yaml",)


def subset_datadir(src: Path, dst: Path, speakers: Iterable[str]) -> DataDir:
    """Write the data dir ``dst`` holding the utterances of ``speakers`` in ``src``
    (Kaldi's ``subset_data_dir.sh --spk-list``): its files filtered, and its
    features (``feats.scp``, ``cmvn.scp``, ``feats.yaml``) when ``src`` has them.

    Raises:
        DataError: a speaker ``src`` does not have (named), or no speaker at all.
    """
    src, dst = Path(src), Path(dst)
    dd = read_datadir(src)
    keep = list(dict.fromkeys(speakers))
    if not keep:
        raise DataError(f"{src}: subset of no speakers")
    missing = [s for s in keep if s not in dd.spk2utt]
    if missing:
        raise DataError(f"{src}: no speaker {', '.join(missing[:5])}"
                        f"{' ...' if len(missing) > 5 else ''} ({len(missing)} of {len(keep)} missing)")
    return _write_subset(dd, dst, {u for s in keep for u in dd.spk2utt[s]})


def shortest_subset(src: Path, dst: Path, num_utts: int) -> DataDir:
    """Write the data dir ``dst`` holding the ``num_utts`` shortest utterances of ``src``
    (Kaldi's ``subset_data_dir.sh --shortest``: a flat start begins on short utterances, where
    an equal alignment is least wrong), features included as :func:`subset_datadir`.

    Raises:
        DataError: ``num_utts`` below 1, or unreadable audio (named).
    """
    src, dst = Path(src), Path(dst)
    if num_utts < 1:
        raise DataError(f"{src}: a subset of {num_utts} utterances")
    dd = read_datadir(src)
    seconds = utt2dur(dd)
    return _write_subset(dd, dst, set(sorted(dd.utts, key=lambda u: (seconds[u], u))[:num_utts]))


def _write_subset(dd: DataDir, dst: Path, utts: set[str]) -> DataDir:
    """Write ``dst``: ``dd``'s files and features filtered to ``utts`` and their speakers."""
    src = dd.path
    keep = {dd.utt2spk[u] for u in utts}
    keys = utts | keep
    recos = {dd.recording(u) for u in utts}
    out = write_datadir(
        dst, {r: dd.wav[r] for r in recos}, {u: dd.text[u] for u in utts}, {u: dd.utt2spk[u] for u in utts},
        {s: g for s, g in dd.spk2gender.items() if s in keep},
        {u: dd.phone_segments[u] for u in utts if u in dd.phone_segments},
        segments={u: dd.segments[u] for u in utts if u in dd.segments})
    for name in _FEATURE_SCPS:
        if (src / name).is_file():
            write_scp(dst / name, {k: v for k, v in read_scp(src / name).items() if k in keys})
    for name in _COPIED:
        if (src / name).is_file():
            atomic_write_text(dst / name, (src / name).read_text())
    return out


def combine_datadirs(dst: Path, srcs: Sequence[Path]) -> DataDir:
    """Write the data dir ``dst`` holding every utterance of ``srcs`` (Kaldi's
    ``combine_data.sh``), with their features (``feats.scp``, ``cmvn.scp``) when every
    source has them, made with the same settings (``feats.yaml``).

    Phone segments are kept only when every source has them (a combined dir of
    phone-labelled and word-only sets carries its targets in an alignment dir).

    Raises:
        DataError: fewer than two sources, an utterance, speaker or recording in two of
            them, or features in some sources only or of different settings (named).
    """
    dst, srcs = Path(dst), [Path(s) for s in srcs]
    if len(srcs) < 2:
        raise DataError(f"{dst}: combining needs at least two data dirs, got {len(srcs)}")
    dds = [read_datadir(s) for s in srcs]
    wav: dict[str, str] = {}
    text: dict[str, str] = {}
    utt2spk: dict[str, str] = {}
    spk2gender: dict[str, str] = {}
    segs: dict[str, list[Segment]] = {}
    reco: dict[str, RecoSegment] = {}
    owner: dict[str, Path] = {}
    for dd in dds:
        for key in [*dd.utt2spk, *dd.spk2utt, *dd.wav]:
            if key in owner and owner[key] != dd.path:
                raise DataError(f"{dd.path}: utterance, speaker or recording {key!r} is also in {owner[key]}")
            owner[key] = dd.path
        wav |= dd.wav
        text |= dd.text
        utt2spk |= dd.utt2spk
        spk2gender |= dd.spk2gender
        segs |= dd.phone_segments
        reco |= dd.segments
    if any(not dd.phone_segments for dd in dds):
        segs = {}
    if any(dd.segments for dd in dds) and not all(dd.segments for dd in dds):
        raise DataError(f"{dst}: some of {', '.join(map(str, srcs))} have a segments file and some not")
    if any(not dd.spk2gender for dd in dds):
        spk2gender = {}
    write_datadir(dst, wav, text, utt2spk, spk2gender, segs, segments=reco)
    _combine_features(dst, srcs)
    return read_datadir(dst)


def _combine_features(dst: Path, srcs: Sequence[Path]) -> None:
    """The union of the sources' feature scps and their common feats.yaml (none when no source has them)."""
    have = [(s / "feats.scp").is_file() for s in srcs]
    if not any(have):
        return
    if not all(have):
        raise DataError(f"{srcs[have.index(False)]}: has no features (feats.scp) while "
                        f"{srcs[have.index(True)]} has; make features for every set first")
    for name in _COPIED:
        texts = {s: (s / name).read_text() if (s / name).is_file() else None for s in srcs}
        if len(set(texts.values())) != 1:
            raise DataError(f"{dst}: the sources' {name} differ (features made with different settings)")
        if texts[srcs[0]] is not None:
            atomic_write_text(dst / name, texts[srcs[0]])
    for name in _FEATURE_SCPS:
        if all((s / name).is_file() for s in srcs):
            merged: dict[str, str] = {}
            for s in srcs:
                merged |= read_scp(s / name)
            write_scp(dst / name, merged)
