"""Kaldi-style data directories: the on-disk contract between all stages.

A data dir holds one line per utterance (or speaker) in each file, sorted
in ``LC_ALL=C`` order (Python's ``str`` order on the UTF-8 keys):

``wav.scp``
    ``<utt> <audio path>`` -- plain file paths (no Kaldi pipes); a relative
    path is taken relative to the current directory, as in Kaldi.
``text``
    ``<utt> <word transcript>`` (may be empty after the id).
``utt2spk`` / ``spk2utt``
    ``<utt> <spk>`` / ``<spk> <utt1> <utt2> ...`` (``spk2utt`` is derived).
``spk2gender`` (optional)
    ``<spk> m|f``.
``phone_segments`` (optional)
    ``<utt> <start_s> <end_s> <phone48>``: seconds with 5 decimals, sorted by
    utterance then start time, contiguous within an utterance.
``phone_text`` (written with ``phone_segments``)
    ``<utt> p1 p2 ...``: the 48-phone sequence (LM training text and the
    scoring reference).

Later stages add files (``feats.scp``, ``cmvn.scp``, ...); the reader
ignores files it does not know. Every writer here is atomic.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Optional

from asr.errors import DataError
from asr.io import atomic_write_text
from asr.lang.phones import PHONES48

log = logging.getLogger(__name__)

WAV_SCP = "wav.scp"
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

Segment = tuple[float, float, str]


@dataclass
class DataDir:
    """An in-memory, validated data directory (see the module docstring)."""

    path: Path
    wav: dict[str, str]
    text: dict[str, str]
    utt2spk: dict[str, str]
    spk2utt: dict[str, list[str]]
    spk2gender: dict[str, str] = field(default_factory=dict)
    phone_segments: dict[str, list[Segment]] = field(default_factory=dict)

    @property
    def utts(self) -> list[str]:
        """All utterance ids, sorted (``LC_ALL=C`` order)."""
        return sorted(self.utt2spk)

    def phone_text(self, utt: str) -> list[str]:
        """The 48-phone sequence of ``utt`` from its phone segments.

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


def _read_lines(path: Path, check_sorted: bool = True) -> list[tuple[int, str, str]]:
    """Read ``key rest-of-line`` lines as (line number, key, rest).

    Raises:
        DataError: missing file, blank line, duplicate or (with
            ``check_sorted``) unsorted keys.
    """
    if not path.is_file():
        raise DataError(f"{path}: file is missing")
    rows: list[tuple[int, str, str]] = []
    prev: Optional[str] = None
    try:
        content = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 ({e})") from None
    for lineno, line in enumerate(content.splitlines(), start=1):
        parts = line.strip().split(maxsplit=1)
        if not parts:
            raise DataError(f"{path}:{lineno}: empty line")
        key, rest = parts[0], (parts[1] if len(parts) > 1 else "")
        if prev is not None and key == prev:
            raise DataError(f"{path}:{lineno}: duplicate key {key!r}")
        if check_sorted and prev is not None and key < prev:
            raise DataError(f"{path}:{lineno}: key {key!r} is not sorted (follows {prev!r}; LC_ALL=C order)")
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
        if key in out:
            raise DataError(f"{path}:{lineno}: duplicate key {key!r}")
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


def _check_segments(where: str, utt: str, segs: list[Segment]) -> None:
    """Check known phones, positive lengths, contiguity of one utterance.

    Raises:
        DataError: naming ``where`` (file[:line]) and the utterance.
    """
    if not segs:
        raise DataError(f"{where}: utterance {utt!r} has no phone segments")
    prev_end: Optional[int] = None
    for start, end, phone in segs:
        if phone not in PHONES48:
            raise DataError(f"{where}: utterance {utt!r}: unknown phone {phone!r} (not in the 48-phone set)")
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
    return utt, (start, end, phone)


def _read_phone_segments(path: Path) -> dict[str, list[Segment]]:
    """Read ``phone_segments``; validate order, phones and contiguity."""
    if not path.is_file():
        raise DataError(f"{path}: file is missing")
    segs: dict[str, list[Segment]] = {}
    first_line: dict[str, int] = {}
    prev: Optional[tuple[str, float]] = None
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        utt, seg = _parse_segment_line(path, lineno, line)
        if prev is not None and (utt, seg[0]) <= prev:
            raise DataError(f"{path}:{lineno}: line is not sorted by utterance then start time (after {prev})")
        prev = (utt, seg[0])
        first_line.setdefault(utt, lineno)
        segs.setdefault(utt, []).append(seg)
    for utt, utt_segs in segs.items():
        _check_segments(f"{path}:{first_line[utt]}", utt, utt_segs)
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
    """Each utterance id must start with its speaker id."""
    for lineno, utt in enumerate(sorted(utt2spk), start=1):
        spk = utt2spk[utt]
        if not spk or any(c.isspace() for c in spk):
            raise DataError(f"{path}:{lineno}: utterance {utt!r} has a malformed speaker id {spk!r}")
        if not utt.startswith(spk):
            raise DataError(
                f"{path}:{lineno}: utterance id {utt!r} is not prefixed by its speaker id {spk!r} "
                "(Kaldi sorting needs utt ids to start with the speaker id)"
            )


def _check_wav_paths(path: Path, wav: Mapping[str, str]) -> None:
    for lineno, utt in enumerate(sorted(wav), start=1):
        audio = wav[utt]
        if audio.rstrip().endswith("|") or audio.lstrip().startswith("|"):
            raise DataError(f"{path}:{lineno}: utterance {utt!r}: pipes are not supported in wav.scp ({audio!r})")
        if not Path(audio).is_file():
            raise DataError(f"{path}:{lineno}: utterance {utt!r}: audio file {audio!r} does not exist")


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


def _validate_contents(
    path: Path,
    wav: Mapping[str, str],
    text: Mapping[str, str],
    utt2spk: Mapping[str, str],
    spk2gender: Mapping[str, str],
    phone_segments: Mapping[str, list[Segment]],
) -> None:
    """Cross-file checks shared by the writer and the reader."""
    if not utt2spk:
        raise DataError(f"{path}: the data dir is empty (no utterances in {UTT2SPK})")
    _check_utt2spk(path / UTT2SPK, utt2spk)
    _check_same_utts(str(path / WAV_SCP), wav, str(path / UTT2SPK), utt2spk)
    _check_same_utts(str(path / TEXT), text, str(path / UTT2SPK), utt2spk)
    if phone_segments:
        _check_same_utts(str(path / PHONE_SEGMENTS), phone_segments, str(path / UTT2SPK), utt2spk)
    if spk2gender:
        _check_spk2gender(path / SPK2GENDER, spk2gender, set(utt2spk.values()))
    _check_wav_paths(path / WAV_SCP, wav)


# --------------------------------------------------------------------------
# Public API


def write_datadir(
    path: Path,
    wav: Mapping[str, str],
    text: Mapping[str, str],
    utt2spk: Mapping[str, str],
    spk2gender: Optional[Mapping[str, str]] = None,
    phone_segments: Optional[Mapping[str, list[Segment]]] = None,
) -> DataDir:
    """Validate and write a data dir (every file sorted and atomic).

    ``spk2utt`` is derived from ``utt2spk``; ``phone_text`` is derived from
    ``phone_segments``. Nothing is written when validation fails.

    Raises:
        DataError: on inconsistent input (see :func:`validate_datadir`).
    """
    path = Path(path)
    spk2gender = dict(spk2gender or {})
    segs = {u: sorted(s, key=lambda x: x[0]) for u, s in (phone_segments or {}).items()}
    _validate_contents(path, wav, text, utt2spk, spk2gender, segs)
    for utt, utt_segs in segs.items():
        _check_segments(str(path / PHONE_SEGMENTS), utt, utt_segs)
    path.mkdir(parents=True, exist_ok=True)
    write_scp(path / WAV_SCP, wav)
    write_scp(path / TEXT, text)
    write_scp(path / UTT2SPK, utt2spk)
    spk2utt = make_spk2utt(utt2spk)
    write_scp(path / SPK2UTT, {s: " ".join(u) for s, u in spk2utt.items()})
    if spk2gender:
        write_scp(path / SPK2GENDER, spk2gender)
    if segs:
        seg_text, phone_text = _segments_text(segs)
        atomic_write_text(path / PHONE_SEGMENTS, seg_text)
        atomic_write_text(path / PHONE_TEXT, phone_text)
    log.info("wrote data dir %s: %d utterances, %d speakers", path, len(utt2spk), len(spk2utt))
    return read_datadir(path, require_phones=bool(segs))


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


def read_datadir(path: Path, require_phones: bool = False) -> DataDir:
    """Read and validate a data dir; unknown extra files are ignored.

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
    segs: dict[str, list[Segment]] = {}
    if (path / PHONE_SEGMENTS).is_file():
        segs = _read_phone_segments(path / PHONE_SEGMENTS)
        _check_phone_text(path / PHONE_TEXT, segs)
    elif require_phones:
        raise DataError(f"{path / PHONE_SEGMENTS}: required file is missing (phone segments needed)")
    _validate_contents(path, wav, text, utt2spk, spk2gender, segs)
    if not (path / SPK2UTT).is_file():
        raise DataError(f"{path / SPK2UTT}: required file is missing")
    spk2utt = _read_spk2utt(path / SPK2UTT, utt2spk)
    return DataDir(path, wav, text, utt2spk, spk2utt, spk2gender, segs)


def validate_datadir(path: Path, require_phones: bool = False) -> None:
    """Validate a data dir; raise DataError naming the file, line and problem.

    Checks: required files (``wav.scp``, ``text``, ``utt2spk``, ``spk2utt``)
    present; keys sorted and unique; no malformed lines; utterance ids
    prefixed by their speaker id; the same utterances in ``wav.scp``,
    ``text``, ``utt2spk`` and ``phone_segments``; ``spk2utt`` consistent with
    ``utt2spk``; phones in the 48-phone set; segments contiguous and of
    positive length; audio files exist; at least one utterance.
    """
    read_datadir(path, require_phones=require_phones)


# --------------------------------------------------------------------------
# Speaker lists and subsets


def read_speaker_list(path: Path) -> list[str]:
    """Lower-case speaker ids, one a line (blank lines and # comments ignored), in file order."""
    if not Path(path).is_file():
        raise DataError(f"{path}: speaker list does not exist")
    spks = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
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
    utts = {u for s in keep for u in dd.spk2utt[s]}
    keys = utts | set(keep)
    out = write_datadir(
        dst, {u: dd.wav[u] for u in utts}, {u: dd.text[u] for u in utts}, {u: dd.utt2spk[u] for u in utts},
        {s: g for s, g in dd.spk2gender.items() if s in keep},
        {u: dd.phone_segments[u] for u in utts if u in dd.phone_segments})
    for name in _FEATURE_SCPS:
        if (src / name).is_file():
            write_scp(dst / name, {k: v for k, v in read_scp(src / name).items() if k in keys})
    for name in _COPIED:
        if (src / name).is_file():
            atomic_write_text(dst / name, (src / name).read_text())
    return out
