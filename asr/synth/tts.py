"""Flite text-to-speech: synthesis with phone timings, and word pronunciations.

Flite (Debian ``flite`` 2.2) prints, with ``-psdur``, one line per utterance
of ``phone:end_time`` pairs (seconds from the start of the waveform); its
phone set is lower-case ARPAbet plus ``pau``:

    aa ae ah ao aw ax axr ay b ch d dh dx eh el em en er ey f g hh hv ih iy
    jh k l m n nx ng ow oy p r s sh t th uh uw v w y z zh pau (h# brth)

The diphone voice ``kal`` (8 kHz) and ``kal16`` return a waveform that ends
up to ~0.12 s before the last ``pau`` ends; :func:`synthesize` pads it with
silence so that the timings cover the waveform exactly.
"""

from __future__ import annotations

import functools
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

from asr.errors import DataError

#: Flite's phone symbols that CMUdict lacks, as CMUdict symbols (for a lang without them:
#: :mod:`asr.lang.lexicon` maps flite's pronunciations onto any lang's phones through it).
FLITE_FOLDS: dict[str, tuple[str, ...]] = {
    "ax": ("AH0",), "axr": ("ER0",), "ix": ("IH0",), "ux": ("UW1",), "dx": ("T",), "nx": ("N",),
    "hv": ("HH",), "el": ("AH0", "L"), "em": ("AH0", "M"), "en": ("AH0", "N"),
}

FLITE = "flite"
#: Voice used to look up word pronunciations (fast diphone voice, same lexicon).
PRON_VOICE = "kal16"
#: Flite's pause symbols.
FLITE_PAUSES = frozenset({"pau", "h#", "brth"})
#: Seconds allowed for one flite call.
FLITE_TIMEOUT_S = 60


@dataclass(frozen=True)
class FliteSegment:
    """One flite phone: ``phone`` spans samples [start, end) of the flite waveform."""

    phone: str
    start: int
    end: int


@functools.lru_cache(maxsize=1)
def flite_version() -> str:
    """Flite's version line, e.g. ``flite-2.2-current Sep 2018``.

    Raises:
        DataError: when flite is not installed.
    """
    out = _run([FLITE, "--version"], "flite --version", check=False)  # flite exits 1 here
    for line in out.splitlines():
        if "version:" in line:
            return line.split("version:", 1)[1].strip()
    raise DataError(f"flite --version printed no version line: {out[:200]!r}")


def _run(cmd: Sequence[str], what: str, check: bool = True) -> str:
    """Run a command, return its stdout; DataError naming ``what`` on failure."""
    try:
        res = subprocess.run(list(cmd), capture_output=True, text=True, timeout=FLITE_TIMEOUT_S)
    except FileNotFoundError:
        raise DataError(f"{what}: program {cmd[0]!r} not found (install Debian's flite)") from None
    except subprocess.TimeoutExpired:
        raise DataError(f"{what}: {cmd[0]} ran longer than {FLITE_TIMEOUT_S} s") from None
    if check and res.returncode != 0:
        raise DataError(f"{what}: {cmd[0]} exited with {res.returncode}: {res.stderr.strip()[:300]}")
    return res.stdout


def parse_psdur(text: str, sample_rate: int, where: str) -> list[FliteSegment]:
    """Parse flite ``-psdur`` output into contiguous segments in samples.

    Args:
        text: flite's stdout: ``phone:end_seconds`` tokens, one line per utterance.
        sample_rate: rate of the waveform the times refer to (Hz).
        where: names the utterance in errors.

    Raises:
        DataError: more than one utterance, malformed token, or times going backwards.
    """
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) != 1:
        raise DataError(f"{where}: flite printed {len(lines)} utterances of phone timings, expected 1")
    segs: list[FliteSegment] = []
    prev = 0
    for tok in lines[0].split():
        phone, sep, t = tok.rpartition(":")
        try:
            end = int(round(float(t) * sample_rate))
        except ValueError:
            raise DataError(f"{where}: bad flite timing token {tok!r}") from None
        if not sep or not phone or end < prev:
            raise DataError(f"{where}: bad flite timing token {tok!r} (previous end {prev})")
        if end > prev:  # zero-length phones carry no audio
            segs.append(FliteSegment(phone, prev, end))
        prev = end
    if not segs:
        raise DataError(f"{where}: flite printed no phones")
    return segs


def synthesize(
    text: str, voice: str, settings: dict[str, float], where: str
) -> tuple[np.ndarray, int, list[FliteSegment]]:
    """Synthesize ``text`` with flite.

    Args:
        text: one sentence.
        voice: flite voice name (kal, kal16, awb, rms, slt).
        settings: float features passed as ``--setf name=value``.
        where: names the utterance in errors.

    Returns:
        (audio (N,) float64 in [-1, 1], sample rate in Hz, segments covering [0, N)).
    """
    cmd = [FLITE, "-voice", voice]
    for name in sorted(settings):
        cmd += ["--setf", f"{name}={settings[name]:.4f}"]
    with tempfile.TemporaryDirectory(prefix="asr_flite_") as tmp:
        wav = Path(tmp) / "out.wav"
        out = _run(cmd + ["-psdur", "-t", text, "-o", str(wav)], f"{where}: flite -voice {voice}")
        try:
            audio, sr = sf.read(str(wav), dtype="float64")
        except (RuntimeError, sf.LibsndfileError) as e:
            raise DataError(f"{where}: cannot read flite's waveform ({e})") from None
    if audio.ndim != 1 or len(audio) == 0:
        raise DataError(f"{where}: flite returned an empty or multi-channel waveform")
    segs = parse_psdur(out, sr, where)
    end = segs[-1].end
    if end > len(audio):  # diphone voices stop short of the final pause
        audio = np.concatenate([audio, np.zeros(end - len(audio))])
    elif end < len(audio):
        last = segs[-1]
        segs[-1] = FliteSegment(last.phone, last.start, len(audio))
    return audio, sr, segs


def _split_groups(phones: Sequence[str]) -> list[list[str]]:
    """Runs of non-pause phones, in order."""
    groups: list[list[str]] = []
    cur: list[str] = []
    for p in phones:
        if p in FLITE_PAUSES:
            if cur:
                groups.append(cur)
            cur = []
        else:
            cur.append(p)
    if cur:
        groups.append(cur)
    return groups


def _phones_of(text: str, where: str) -> list[str]:
    """Flite's phone string (``-ps``) for ``text``, all utterances joined."""
    out = _run([FLITE, "-voice", PRON_VOICE, "-ps", "-t", text, "-o", "none"], f"{where}: flite -ps")
    return out.split()


def word_pronunciations(words: Sequence[str], where: str) -> list[list[str]]:
    """Flite's pronunciation (phones, no pauses) of each word said alone.

    One flite call reads the words as separate sentences; when its pauses do
    not split the output into one group per word (an abbreviation can swallow
    the full stop), each word is looked up on its own. A word flite says as
    nothing gets an empty list.
    """
    groups = _split_groups(_phones_of(". ".join(words) + ".", where))
    if len(groups) == len(words):
        return groups
    return [sum(_split_groups(_phones_of(w + ".", where)), []) for w in words]
