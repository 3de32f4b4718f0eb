"""Stage 8: decode a data set with the hybrid model and score it (PER).

The acoustic scale is swept on dev only; the test set is decoded once with
the value dev chose (stored in the model's ``decode.yaml`` and manifest).
As in Kaldi, an utterance that cannot be decoded (no path survived, or
unusable scores) is logged, counted (``failed_utterances`` in
``scores.yaml``) and scored as all deletions; the rest of the set goes on.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from asr.corpus.datadir import read_datadir
from asr.decode.hybrid import HybridModel, argmax_phones, save_acwt, scaled_loglikes
from asr.decode.wfst import WfstDecoder
from asr.errors import GraphError, ModelError
from asr.features.extract import FeatureConfig
from asr.features.storage import load_features
from asr.io import atomic_write_text
from asr.score.per import score_phones
from asr.score.report import write_report
from asr.steps.train_am import load_targets

log = logging.getLogger(__name__)

#: Acoustic scales tried on dev.
ACWT_GRID = (0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0)

def write_hyps(path: Path, hyps: dict[str, list[str]]) -> None:
    atomic_write_text(path, "".join(f"{u} {' '.join(h)}\n" for u, h in sorted(hyps.items())))

def set_features(model: HybridModel, data_dir: Path) -> dict[str, np.ndarray]:
    """Normalised features of ``data_dir`` → {utt: (T, D)}, checked against the model's front end."""
    data_cfg = FeatureConfig.load(Path(data_dir) / "feats.yaml")
    if data_cfg != model.feat_cfg:
        raise ModelError(f"{data_dir}/feats.yaml ({data_cfg}) differs from the model's "
                         f"{model.model_dir}/feats.yaml ({model.feat_cfg}); recompute the features")
    return load_features(data_dir)

def set_posteriors(model: HybridModel, feats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Log posteriors of every utterance → {utt: (T, P)}."""
    post = dict(tqdm(model.set_posteriors(feats), total=len(feats), desc="posteriors", leave=False, disable=None))
    return {u: post[u] for u in sorted(post)}

def frame_accuracy(post: dict[str, np.ndarray], targets: dict[str, np.ndarray]) -> float:
    correct = sum(int((post[u].argmax(-1) == targets[u]).sum()) for u in post)
    return correct / sum(len(targets[u]) for u in post)

@dataclass
class SetDecode:
    """Hypotheses of a data set, with the utterances that failed ({utt: reason})
    and those whose best path did not reach a final state (partial paths)."""

    hyps: dict[str, list[str]]
    failed: dict[str, str] = field(default_factory=dict)
    partial: list[str] = field(default_factory=list)


def decode_with(model: HybridModel, decoder: WfstDecoder, post: dict[str, np.ndarray],
                acwt: float) -> SetDecode:
    """The best phone sequence of every utterance at acoustic scale ``acwt``.

    An utterance that raises GraphError (no surviving path) or ModelError
    (unusable scores) is logged and counted, not fatal.
    """
    out = SetDecode({})
    for utt, lp in post.items():
        try:
            result = decoder.decode(scaled_loglikes(lp, model.log_priors, acwt), utt=utt)
        except (GraphError, ModelError) as exc:
            log.warning("acwt %g: %s", acwt, exc)
            out.failed[utt] = str(exc)
            continue
        out.hyps[utt] = model.phone_symbols(result.olabels)
        if not result.reached_final:
            out.partial.append(utt)
    if out.failed:
        log.warning("acwt %g: %d of %d utterances could not be decoded (scored as deletions)",
                    acwt, len(out.failed), len(post))
    return out


def tune_acwt(model: HybridModel, dev_dir: Path, out_dir: Path, grid=ACWT_GRID, beam: float = 13.0) -> float:
    """Sweep the acoustic scale on dev, write one report per value, store the best."""
    dd = read_datadir(dev_dir, require_phones=True)
    refs = {u: dd.phone_text(u) for u in dd.utts}
    post = set_posteriors(model, set_features(model, dev_dir))
    decoder = model.decoder(beam=beam)
    sweep = {}
    for acwt in grid:
        hyps = decode_with(model, decoder, post, acwt).hyps
        result = score_phones(refs, hyps)
        sweep[acwt] = result.counts.rate
        write_hyps(out_dir / f"hyp_acwt{acwt}.txt", hyps)
        write_report(result, out_dir / f"per_acwt{acwt}.txt", f"{dev_dir} acwt {acwt}")
        log.info("dev acwt %.2f: PER %.2f%%", acwt, sweep[acwt])
    best = min(sweep, key=sweep.get)
    save_acwt(model, best, dev_dir, sweep[best], sweep)
    log.info("chosen on dev: acwt %.2f (PER %.2f%%)", best, sweep[best])
    return best

def decode_and_score(model: HybridModel, data_dir: Path, out_dir: Path, beam: float = 13.0) -> dict:
    """Decode ``data_dir`` with the model's tuned acwt; write hyps, reports and scores.yaml."""
    dd = read_datadir(data_dir, require_phones=True)
    refs = {u: dd.phone_text(u) for u in dd.utts}
    start = time.time()
    feats = set_features(model, data_dir)
    post = set_posteriors(model, feats)
    nn_seconds = time.time() - start
    acwt = model.acwt
    start = time.time()
    decoded = decode_with(model, model.decoder(beam=beam), post, acwt)
    hyps = decoded.hyps
    search_seconds = time.time() - start
    argmax = {u: argmax_phones(lp, model.context) for u, lp in post.items()}
    hmm_result, argmax_result = score_phones(refs, hyps), score_phones(refs, argmax)
    write_hyps(out_dir / "hyp.txt", hyps)
    write_hyps(out_dir / "hyp_argmax.txt", argmax)
    write_report(hmm_result, out_dir / "per_report.txt", f"{data_dir} HMM decode, acwt {acwt}")
    write_report(argmax_result, out_dir / "per_report_argmax.txt", f"{data_dir} framewise argmax")
    frames = sum(len(p) for p in post.values())
    audio_seconds = frames * model.feat_cfg.frame_shift_ms / 1000
    targets = load_targets(data_dir, post, model.context)  # post: (T, P) per utt; uniform split
    scores = {
        "data": str(data_dir), "utterances": len(post), "frames": frames, "acwt": acwt,
        "num_pdfs": model.context.num_pdfs, "context_width": model.context.width,
        "per": round(hmm_result.counts.rate, 2), "per_argmax": round(argmax_result.counts.rate, 2),
        "frame_acc": round(100 * frame_accuracy({u: post[u] for u in targets}, targets), 2),
        "failed_utterances": len(decoded.failed), "partial_paths": len(decoded.partial),
        "rtf_network": round(nn_seconds / audio_seconds, 4),
        "rtf_search": round(search_seconds / audio_seconds, 4),
    }
    atomic_write_text(out_dir / "scores.yaml", yaml.safe_dump(scores, sort_keys=False))
    if decoded.failed:
        atomic_write_text(out_dir / "failed_utts.txt",
                          "".join(f"{u} {why}\n" for u, why in sorted(decoded.failed.items())))
    log.info("%s: PER %.2f%% (argmax %.2f%%), frame acc %.2f%%, %d failed, %d partial", data_dir,
             scores["per"], scores["per_argmax"], scores["frame_acc"], len(decoded.failed),
             len(decoded.partial))
    return scores
