"""TIMIT-style labels from flite's segmentation: .PHN phones and .WRD words.

Flite's phones are ARPAbet; TIMIT's 61 symbols contain all of them, so the
mapping is the identity except for pauses (leading / trailing -> ``h#``,
inside -> ``pau``; ``brth`` -> ``pau``) and for stops and affricates, which
TIMIT splits into a closure and a release (``p`` -> ``pcl p``, ``jh`` ->
``dcl jh``, ...). The split point is the burst: the largest rise of
short-time energy inside the flite segment, accepted only when the rise is
steep and the quiet part before it is much quieter than the release. Otherwise the
segment stays whole, labelled as the release.
"""

from __future__ import annotations

import logging
from typing import Optional, Sequence

import numpy as np

from asr.synth.tts import FLITE_PAUSES, FliteSegment
from asr.errors import DataError
from asr.phones.timit import CLOSURE, PHONES61
from asr.score.align import align_indices

log = logging.getLogger(__name__)

#: Flite symbols that are not TIMIT symbols (besides pauses).
FLITE_TO_TIMIT: dict[str, str] = {}
EDGE_SILENCE = "h#"
INNER_PAUSE = "pau"

# Burst detector (times in seconds, levels in dB).
BURST_WIN_S = 0.004
BURST_HOP_S = 0.001
MIN_CLOSURE_S = 0.010
MIN_RELEASE_S = 0.005
MIN_SPLIT_S = MIN_CLOSURE_S + MIN_RELEASE_S + 0.005
RISE_FRAMES = 3
MIN_RISE_DB = 6.0
MIN_CLOSURE_DROP_DB = 10.0
#: The closure level is this percentile of the energies before the burst (the
#: start of a flite stop segment often holds the tail of the previous vowel).
CLOSURE_PERCENTILE = 25
_ENERGY_FLOOR = 1e-10

Row = tuple[int, int, str]


def _frame_energy_db(x: np.ndarray, sr: int) -> tuple[np.ndarray, int]:
    """Log energy (F,) of frames of BURST_WIN_S every BURST_HOP_S; returns (energies, hop)."""
    win = max(1, int(round(BURST_WIN_S * sr)))
    hop = max(1, int(round(BURST_HOP_S * sr)))
    if len(x) < win:
        return np.zeros(0), hop
    nfr = 1 + (len(x) - win) // hop
    idx = np.arange(nfr)[:, None] * hop + np.arange(win)[None, :]  # (F, win)
    return 10.0 * np.log10(np.mean(x[idx] ** 2, axis=1) + _ENERGY_FLOOR), hop


def find_burst(x: np.ndarray, sr: int) -> Optional[int]:
    """Offset (samples into ``x``) of a stop's burst, or None when none is clear.

    Args:
        x: (N,) audio of one flite stop segment.
        sr: its sample rate (Hz).
    """
    if len(x) < MIN_SPLIT_S * sr:
        return None
    e, hop = _frame_energy_db(x, sr)
    first = max(RISE_FRAMES, int(np.ceil(MIN_CLOSURE_S * sr / hop)))
    last = min(len(e) - RISE_FRAMES, int((len(x) - MIN_RELEASE_S * sr) // hop))
    if last < first:
        return None
    csum = np.concatenate([[0.0], np.cumsum(e)])
    j = np.arange(first, last + 1)
    after = (csum[j + RISE_FRAMES] - csum[j]) / RISE_FRAMES
    before = (csum[j] - csum[j - RISE_FRAMES]) / RISE_FRAMES
    rise = after - before
    best = int(np.argmax(rise))
    b = int(j[best])
    closure_level = float(np.percentile(e[:b], CLOSURE_PERCENTILE))
    release_peak = float(np.max(e[b:]))
    if rise[best] < MIN_RISE_DB or release_peak - closure_level < MIN_CLOSURE_DROP_DB:
        return None
    return b * hop


def _timit_symbol(phone: str, where: str) -> str:
    """TIMIT symbol of a non-pause flite phone."""
    sym = FLITE_TO_TIMIT.get(phone, phone)
    if sym not in PHONES61:
        raise DataError(f"{where}: flite phone {phone!r} has no TIMIT symbol")
    return sym


def timit_phones(audio: np.ndarray, sr: int, segs: Sequence[FliteSegment], where: str) -> list[Row]:
    """TIMIT 61-phone rows (start, end, phone) in flite samples, contiguous over ``audio``.

    Raises:
        DataError: when flite's output does not start and end with a pause, or
            holds a phone with no TIMIT symbol.
    """
    if segs[0].phone not in FLITE_PAUSES or segs[-1].phone not in FLITE_PAUSES:
        raise DataError(f"{where}: flite output does not start and end with a pause")
    rows: list[Row] = []
    for seg in segs:
        if seg.phone in FLITE_PAUSES:
            if rows and rows[-1][2] in (EDGE_SILENCE, INNER_PAUSE):
                rows[-1] = (rows[-1][0], seg.end, rows[-1][2])
            else:
                rows.append((seg.start, seg.end, EDGE_SILENCE if not rows else INNER_PAUSE))
            continue
        sym = _timit_symbol(seg.phone, where)
        burst = find_burst(audio[seg.start : seg.end], sr) if sym in CLOSURE else None
        if burst is None:
            rows.append((seg.start, seg.end, sym))
        else:
            rows.append((seg.start, seg.start + burst, CLOSURE[sym]))
            rows.append((seg.start + burst, seg.end, sym))
    rows[-1] = (rows[-1][0], rows[-1][1], EDGE_SILENCE)
    return rows


def _owner_by_alignment(spoken: Sequence[str], prons: Sequence[Sequence[str]]) -> list[int]:
    """Word index of each spoken phone, via an edit alignment to the words' phones.

    The alignment is :func:`asr.score.align.align_indices` (the scorer's). A
    spoken phone aligned to nothing belongs to the word of the phone before it
    (or after it, at the start).
    """
    ref = [p for pron in prons for p in pron]
    ref_word = [w for w, pron in enumerate(prons) for _ in pron]
    owner: list[Optional[int]] = [None] * len(spoken)
    for i, k in align_indices(spoken, ref):
        if i is not None and k is not None:
            owner[i] = ref_word[k]
    for i in range(1, len(owner)):
        if owner[i] is None:
            owner[i] = owner[i - 1]
    for i in range(len(owner) - 2, -1, -1):
        if owner[i] is None:
            owner[i] = owner[i + 1]
    return [0 if o is None else o for o in owner]


def _owner_by_proportion(n_spoken: int, prons: Sequence[Sequence[str]]) -> list[int]:
    """Fallback: spread spoken phones over words in proportion to their phone counts."""
    weights = np.array([max(1, len(p)) for p in prons], dtype=np.float64)
    raw = np.round(np.cumsum(weights) / weights.sum() * n_spoken).astype(int)
    n_words = len(prons)
    bounds: list[int] = []  # end (exclusive) of each word's phones; every word gets >= 1
    for k in range(n_words):
        b = max(int(raw[k]), (bounds[-1] if bounds else 0) + 1)
        bounds.append(min(b, n_spoken - (n_words - 1 - k)))
    return [int(np.searchsorted(bounds, i, side="right")) for i in range(n_spoken)]


def word_rows(segs: Sequence[FliteSegment], words: Sequence[str], prons: Sequence[Sequence[str]], where: str) -> list[Row]:
    """.WRD rows (start, end, word) in flite samples: each word spans its flite phones.

    ``prons`` is each word's phone list said alone; flite's post-lexical rules
    may change the spoken phones, which an edit alignment absorbs. When the
    alignment leaves a word without phones, the phones are spread over the
    words in proportion to their pronunciation lengths instead.

    Raises:
        DataError: when there are fewer spoken phones than words.
    """
    spoken_idx = [i for i, s in enumerate(segs) if s.phone not in FLITE_PAUSES]
    spoken = [segs[i].phone for i in spoken_idx]
    if len(spoken) < len(words):
        raise DataError(f"{where}: flite spoke {len(spoken)} phones for {len(words)} words")
    owner = _owner_by_alignment(spoken, prons)
    if sorted(set(owner)) != list(range(len(words))) or owner != sorted(owner):
        log.warning("%s: word alignment failed; spreading phones over words by length", where)
        owner = _owner_by_proportion(len(spoken), prons)
    rows: list[Row] = []
    for w, word in enumerate(words):
        mine = [spoken_idx[i] for i, o in enumerate(owner) if o == w]
        rows.append((segs[mine[0]].start, segs[mine[-1]].end, word))
    return rows


def rescale_rows(rows: Sequence[Row], ratio: float, num_samples: int, close: bool) -> list[Row]:
    """Map sample offsets through a time scaling and clamp them to [0, num_samples].

    Args:
        rows: (start, end, label) in input samples.
        ratio: output samples per input sample.
        num_samples: length of the output audio.
        close: when True (phones) the last end is set to ``num_samples`` and
            rows that became empty are dropped.
    """
    out: list[Row] = []
    for start, end, label in rows:
        s = min(num_samples, int(round(start * ratio)))
        e = min(num_samples, int(round(end * ratio)))
        out.append((s, e, label))
    if close:
        out[-1] = (out[-1][0], num_samples, out[-1][2])
        out = [r for r in out if r[1] > r[0]]
        if not out:
            raise DataError(f"no phone left after rescaling to {num_samples} samples")
        out[0] = (0, out[0][1], out[0][2])
        out[-1] = (out[-1][0], num_samples, out[-1][2])
    return out
