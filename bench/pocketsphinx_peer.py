"""The off-the-shelf peer: pocketsphinx 5 phone recognition (allphone mode).

Uses the en-us acoustic model and the phone n-gram ``en-us-phone.lm.bin``
shipped inside the pocketsphinx wheel, and maps CMU phones to the TIMIT
39-phone scoring set (``ao`` -> ``aa``, ``zh`` -> ``sh``, ``SIL`` -> ``sil``;
noise / filler segments such as ``+NSN+`` and ``+SPN+`` are dropped).

Import it from a bench script::

    sys.path.insert(0, str(Path(__file__).parent))
    from pocketsphinx_peer import pocketsphinx_phone_decoder, decode_phones

or run it on a data dir (prints PER against ``phone_text`` and the RTF)::

    python bench/pocketsphinx_peer.py data/test
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

log = logging.getLogger(__name__)

#: The rate pocketsphinx's en-us model expects.
PS_SAMPLE_RATE = 16000
#: Phone-decoding settings recommended by the CMUSphinx phoneme-recognition
#: tutorial (language weight 2, wide beams).
PHONE_LM_WEIGHT = 2.0
PHONE_BEAM = 1e-20
INT16_MAX = 32767

#: CMU (pocketsphinx en-us) phones whose 39-set symbol differs from their lower-case name.
_CMU_FOLD = {"ao": "aa", "zh": "sh"}
_CMU_PHONES = (
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH "
    "UH UW V W Y Z ZH SIL"
).split()
CMU_TO_39: dict[str, str] = {p: _CMU_FOLD.get(p.lower(), p.lower()) for p in _CMU_PHONES}


def pocketsphinx_phone_decoder(lm_weight: float = PHONE_LM_WEIGHT, beam: float = PHONE_BEAM):
    """A pocketsphinx Decoder in allphone mode (en-us model, en-us-phone.lm.bin).

    Returns:
        pocketsphinx.Decoder ready for :func:`decode_phones`.
    """
    from pocketsphinx import Decoder, get_model_path  # heavy import kept local

    model = Path(get_model_path()) / "en-us"
    for needed in (model / "en-us", model / "en-us-phone.lm.bin"):
        if not needed.exists():
            raise FileNotFoundError(f"{needed}: pocketsphinx model file missing (is pocketsphinx installed?)")
    return Decoder(
        hmm=str(model / "en-us"),
        allphone=str(model / "en-us-phone.lm.bin"),
        lm=None,
        lw=lm_weight,
        beam=beam,
        pbeam=beam,
        backtrace=False,
        loglevel="FATAL",
    )


def cmu_to_39(phones: Iterable[str]) -> list[str]:
    """CMU phone names (any case) -> TIMIT 39-set; fillers and unknown symbols dropped."""
    out = []
    for p in phones:
        mapped = CMU_TO_39.get(p.upper())
        if mapped is not None:
            out.append(mapped)
        elif not (p.startswith("+") or p.startswith("[") or p.startswith("<")):
            log.warning("dropping unexpected pocketsphinx phone %r", p)
    return out


def _to_int16(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono audio (T,) float in [-1, 1] or int16, any rate -> int16 at 16 kHz."""
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio of shape (T,), got shape {audio.shape}")
    if audio.size == 0:
        raise ValueError("empty audio")
    if audio.dtype != np.int16:
        audio = audio.astype(np.float32)
        if sample_rate != PS_SAMPLE_RATE:
            from asr.audio import resample_audio  # the toolkit's one resampler (torchaudio)

            audio = resample_audio(audio, sample_rate, PS_SAMPLE_RATE)
        return (np.clip(audio, -1.0, 1.0) * INT16_MAX).astype(np.int16)
    if sample_rate != PS_SAMPLE_RATE:
        return _to_int16(audio.astype(np.float32) / (INT16_MAX + 1), sample_rate)
    return audio


def decode_phones(decoder, audio: np.ndarray, sample_rate: int) -> list[str]:
    """Recognise the phones of one utterance.

    Args:
        decoder: from :func:`pocketsphinx_phone_decoder`.
        audio: (T,) samples, float in [-1, 1] or int16; resampled to 16 kHz if needed.

    Returns:
        the 39-set phone sequence, lower case.
    """
    pcm = _to_int16(audio, sample_rate)
    decoder.start_utt()
    decoder.process_raw(pcm.tobytes(), no_search=False, full_utt=True)
    decoder.end_utt()
    return cmu_to_39(seg.word for seg in decoder.seg())


def decode_datadir(data_dir: Path) -> tuple[dict[str, list[str]], float]:
    """Decode every utterance of a data dir; returns (utt -> 39-set phones, audio seconds)."""
    import soundfile as sf

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from asr.corpus.datadir import read_datadir

    data = read_datadir(data_dir)
    decoder = pocketsphinx_phone_decoder()
    hyps, seconds = {}, 0.0
    for utt in data.utts:
        audio, rate = sf.read(data.wav[utt], dtype="int16")
        seconds += len(audio) / rate
        hyps[utt] = decode_phones(decoder, audio, rate)
    return hyps, seconds


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="pocketsphinx phone decoding of a data dir (PER, RTF)")
    parser.add_argument("data_dir", type=Path, help="data dir with phone_segments (the reference)")
    parser.add_argument("--report", type=Path, help="write an sclite-style report here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from asr.corpus.datadir import read_datadir
    from asr.score.per import score_phones, score_summary
    from asr.score.report import write_report
    from asr.phones.timit import timit_lang

    start = time.perf_counter()
    hyps, seconds = decode_datadir(args.data_dir)
    elapsed = time.perf_counter() - start
    data = read_datadir(args.data_dir, require_phones=True)
    refs = {u: data.phone_text(u) for u in data.utts}
    result = score_phones(refs, hyps, timit_lang())
    if args.report:
        write_report(result, args.report, title=f"pocketsphinx allphone on {args.data_dir}")
    print(f"{score_summary(result, str(args.data_dir))}  RTF {elapsed / max(seconds, 1e-9):.3f} "
          f"({seconds:.1f} s audio, {os.cpu_count()} cpus)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
