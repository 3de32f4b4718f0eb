"""Recognise the phones of arbitrary audio files with a trained model bundle."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path


from asr.audio import read_audio
from asr.decode.hybrid import HybridModel, scaled_loglikes
from asr.decode.wfst import WfstDecoder
from asr.errors import AsrError
from asr.features.cmvn import accumulate_stats, apply_cmvn
from asr.features.extract import compute_features

log = logging.getLogger(__name__)


@dataclass
class Transcript:
    """Recognised phones of one file, with (start_s, end_s, phone) segments."""

    path: str
    phones: list[str]
    segments: list[tuple[float, float, str]]
    notes: list[str] = field(default_factory=list)


def transcribe_file(model: HybridModel, decoder: WfstDecoder, path: Path, acwt: float) -> Transcript:
    """Decode one audio file (any rate or channel count; resampled, down-mixed)."""
    audio = read_audio(path, rate=model.feat_cfg.sample_rate, resample=True)
    feats = compute_features(audio.samples, model.feat_cfg, name=str(path))
    feats = apply_cmvn(feats, accumulate_stats([feats]))  # per-utterance CMVN
    result = decoder.decode(scaled_loglikes(model.posteriors(feats), model.log_priors, acwt), utt=str(path))
    shift = model.feat_cfg.frame_shift_ms / 1000
    segments = [(r.start * shift, r.end * shift, model.phones[r.phone]) for r in result.runs]
    phones = model.phone_symbols(result.phone_ids)
    return Transcript(str(path), phones, segments, audio.notes)


def format_transcript(tr: Transcript, fmt: str) -> str:
    """Render as ``text`` (path: phones), ``json`` (one object per line) or ``ctm``."""
    if fmt == "text":
        return f"{tr.path}: {' '.join(tr.phones)}"
    if fmt == "json":
        return json.dumps({"path": tr.path, "phones": tr.phones, "notes": tr.notes,
                           "segments": [{"start": round(s, 3), "end": round(e, 3), "phone": p}
                                        for s, e, p in tr.segments]})
    if fmt == "ctm":
        name = Path(tr.path).stem
        return "\n".join(f"{name} 1 {s:.2f} {e - s:.2f} {p}" for s, e, p in tr.segments)
    raise ValueError(f"unknown output format {fmt!r}")


def transcribe_files(model: HybridModel, paths: list[Path], fmt: str = "text") -> int:
    """Print the transcript of each file; return the number of files that failed."""
    decoder, acwt = model.decoder(), model.acwt
    failed = 0
    for path in paths:
        try:
            tr = transcribe_file(model, decoder, Path(path), acwt)
        except AsrError as exc:
            log.error("%s", exc)
            failed += 1
            continue
        except Exception as exc:  # e.g. out of memory, or a bug: report the file, go on with the rest
            log.error("%s: decoding failed (%s: %s); the traceback is in the log file "
                      "(--log-file) and on the console with --verbose", path, type(exc).__name__, exc)
            log.debug("%s: traceback of the failure", path, exc_info=True)
            failed += 1
            continue
        for note in tr.notes:
            log.info("%s: %s", path, note)
        print(format_transcript(tr, fmt), flush=True)
    return failed
