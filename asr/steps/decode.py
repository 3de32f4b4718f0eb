"""Stages 8 and 9: decode a data set with the hybrid model and score it (PER), by the
HMM over the WFST (stage 8) or by the RNN phone-sequence decoder (stage 9).

Both decoders implement :class:`PhoneDecoder`. The acoustic scale (and for the
RNN decoder its LM weight and phone insertion penalty) is tuned on dev only; the
test set is decoded once with the values dev chose (stored in the model's
``decode.yaml`` / ``rnn_decode.yaml`` and manifest).
As in Kaldi, an utterance that cannot be decoded (no path survived, or
unusable scores) is logged, counted (``failed_utterances`` in
``scores.yaml``) and scored as all deletions; the rest of the set goes on.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping, Protocol, Sequence

import numpy as np
import yaml
from tqdm import tqdm

from asr.corpus.datadir import read_datadir
from asr.decode.hybrid import HybridModel, argmax_phones, save_acwt, scaled_loglikes
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
    """Fraction of frames whose argmax pdf (post: {utt: (T, P)}) is the target ({utt: (T,)})."""
    correct = sum(int((post[u].argmax(-1) == targets[u]).sum()) for u in post)
    return correct / sum(len(targets[u]) for u in post)


#: What a model's frame accuracy is scored against when it was trained on the uniform split.
UNIFORM_TARGETS = "uniform split"


def _trained_alignment(model: HybridModel):
    """What the model's training targets came from, as the bundle records it: UNIFORM (a
    string), a list of alignment dirs (train, dev), or None when unrecorded."""
    info = model.components.get("network", {}).get("targets")
    if info is None and (Path(model.model_dir) / "targets.yaml").is_file():
        info = yaml.safe_load((Path(model.model_dir) / "targets.yaml").read_text())
    return info.get("alignment") if isinstance(info, dict) else None


def _aligned_data(ali_dir: Path) -> Path | None:
    """The data dir an alignment dir aligned (its ali.yaml ``source.data``), or None."""
    path = Path(ali_dir) / "ali.yaml"
    if not path.is_file():
        return None
    source = (yaml.safe_load(path.read_text()) or {}).get("source") or {}
    return Path(source["data"]).resolve() if source.get("data") else None


def own_targets(model: HybridModel, data_dir: Path,
                frames: Mapping[str, int]) -> tuple[dict[str, np.ndarray] | None, str]:
    """The model's own training targets for ``data_dir``'s utterances of ``frames`` (utt → its
    feature frames) at the model's frame rate ({utt: (T',) pdf ids}) and what they are:
    ``"uniform split"`` for a model trained on it (or that records nothing),
    ``"realignment <ali dir>"`` for one trained on a realignment whose train or dev
    alignment is of ``data_dir``. (None, why) when the model was trained on a realignment
    and none of its alignments is of ``data_dir`` (e.g. a test set)."""
    alignment = _trained_alignment(model)
    if not isinstance(alignment, list):
        return load_targets(data_dir, frames, model.context, rate=model.frame_rate), UNIFORM_TARGETS
    data = Path(data_dir).resolve()
    for ali_dir in map(Path, alignment):
        if _aligned_data(ali_dir) == data:
            return (load_targets(data_dir, frames, model.context, ali_dir, model.frame_rate),
                    f"realignment {ali_dir}")
    return None, f"none: the model was trained on a realignment ({', '.join(alignment)}), none of {data_dir}"

class PhoneResult(Protocol):
    phones: list[int]     # phone ids (1-based, phones.txt)
    reached_final: bool   # False: no path that ends the utterance survived; the best partial one


class PhoneDecoder(Protocol):
    """What decodes phones: the WFST decoder over a phone graph, the RNN phone-sequence decoder."""

    def decode(self, scores: np.ndarray, utt: str = "") -> PhoneResult:
        """scores (T, num_pdfs): acwt · (log posterior − log prior)."""


@dataclass
class SetDecode:
    """Hypotheses of a data set, with the utterances that failed ({utt: reason})
    and those whose best path did not reach a final state (partial paths)."""

    hyps: dict[str, list[str]]
    failed: dict[str, str] = field(default_factory=dict)
    partial: list[str] = field(default_factory=list)


def decode_with(model: HybridModel, decoder: PhoneDecoder, post: dict[str, np.ndarray],
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
        out.hyps[utt] = model.phone_symbols(result.phones)
        if not result.reached_final:
            out.partial.append(utt)
    if out.failed:
        log.warning("acwt %g: %d of %d utterances could not be decoded (scored as deletions)",
                    acwt, len(out.failed), len(post))
    return out


def sweep_down(grid: Sequence[float], error: Callable[[float], float], patience: int = 2,
               max_above: int = 3) -> dict[float, float]:
    """{scale: error rate} over ``grid`` from the largest scale down, stopping once ``patience``
    scales in a row are no better than the best so far.

    A smaller acoustic scale prunes less and decodes slower (the medium CD model's phone decode
    of dev_mixed: 2 s at 2.0, 19 s at 0.1, 53 s at 0.05), so the costly end of a grid is
    decoded only while it still helps; an error curve with one minimum gives the same choice
    as the whole grid. When the grid's largest scale is the best, the sweep goes on above it
    (each step the ratio of the grid's two largest, at most ``max_above`` steps, while each is
    better): a minimum past the grid's end is not taken for its edge.
    """
    if patience < 1:
        raise ValueError(f"patience must be at least 1, not {patience}")
    table: dict[float, float] = {}
    best, worse = float("inf"), 0
    ordered = sorted(grid, reverse=True)
    for value in ordered:
        table[value] = error(value)
        if table[value] < best:
            best, worse = table[value], 0
        else:
            worse += 1
            if worse >= patience:
                break
    if len(ordered) > 1 and min(table, key=lambda v: (table[v], -v)) == ordered[0]:
        step, value = ordered[0] / ordered[1], ordered[0]
        for _ in range(max_above):
            value = round(value * step, 6)
            table[value] = error(value)
            if table[value] >= best:
                break
            best = table[value]
    return table


def grid_at_rate(grid: Sequence[float], factor: int) -> list[float]:
    """An acoustic-scale grid for a network that emits one output every ``factor`` feature frames.

    A phone's acoustic log-likelihood is a sum over its output frames, so at k times fewer
    frames it is about k times smaller against the same graph costs: the grid (chosen at
    10 ms) is multiplied by k (Kaldi decodes its lower frame rate models at acwt 0.333
    where 10 ms ones take 0.1). At k = 3 with the 10 ms grids, the medium CI model's phone
    decode chose the grid's largest scale, 3.0, with deletions still 12% of dev_mixed's phones.
    """
    return [round(a * factor, 6) for a in grid]


def tune_acwt(model: HybridModel, dev_dir: Path, out_dir: Path, grid=ACWT_GRID, beam: float = 13.0) -> float:
    """Sweep the acoustic scale on dev (:func:`sweep_down` over ``grid`` times the model's frame
    subsampling, :func:`grid_at_rate`), write one report per value decoded, store the best
    (the largest of equals)."""
    grid = grid_at_rate(grid, model.frame_rate.factor)
    dd = read_datadir(dev_dir, require_phones=True)
    refs = {u: dd.phone_text(u) for u in dd.utts}
    post = set_posteriors(model, set_features(model, dev_dir))
    decoder = model.decoder(beam=beam)

    def per(acwt: float) -> float:
        hyps = decode_with(model, decoder, post, acwt).hyps
        result = score_phones(refs, hyps, model.lang)
        write_hyps(out_dir / f"hyp_acwt{acwt}.txt", hyps)
        write_report(result, out_dir / f"per_acwt{acwt}.txt", f"{dev_dir} acwt {acwt}")
        log.info("dev acwt %.2f: PER %.2f%%", acwt, result.counts.rate)
        return result.counts.rate

    sweep = sweep_down(grid, per)
    best = min(sweep, key=sweep.get)
    save_acwt(model, best, dev_dir, sweep[best], sweep)
    log.info("chosen on dev: acwt %.2f (PER %.2f%%)", best, sweep[best])
    return best

def decode_and_score(model: HybridModel, data_dir: Path, out_dir: Path, beam: float = 13.0,
                     decoder: str = "hmm") -> dict:
    """Decode ``data_dir`` with the settings tuned on dev (``decoder``: ``hmm``, the WFST
    search at the tuned acwt; ``rnn``, the RNN phone-sequence decoder at its tuned acwt,
    LM weight and penalty); write hyps, reports and scores.yaml."""
    dd = read_datadir(data_dir, require_phones=True)
    refs = {u: dd.phone_text(u) for u in dd.utts}
    start = time.time()
    feats = set_features(model, data_dir)
    post = set_posteriors(model, feats)
    nn_seconds = time.time() - start
    search, acwt, settings = _decoder(model, decoder, beam)
    start = time.time()
    decoded = decode_with(model, search, post, acwt)
    hyps = decoded.hyps
    search_seconds = time.time() - start
    argmax = {u: argmax_phones(lp, model.context) for u, lp in post.items()}
    hmm_result, argmax_result = score_phones(refs, hyps, model.lang), score_phones(refs, argmax, model.lang)
    write_hyps(out_dir / "hyp.txt", hyps)
    write_hyps(out_dir / "hyp_argmax.txt", argmax)
    write_report(hmm_result, out_dir / "per_report.txt", f"{data_dir} {decoder.upper()} decode, {settings}")
    write_report(argmax_result, out_dir / "per_report_argmax.txt", f"{data_dir} framewise argmax")
    frames = sum(len(p) for p in post.values())
    audio_seconds = frames * model.frame_rate.shift_s
    targets, target_source = own_targets(model, data_dir, {u: len(feats[u]) for u in post})
    frame_acc = None if targets is None else round(100 * frame_accuracy({u: post[u] for u in targets}, targets), 2)
    scores = {
        "data": str(data_dir), "decoder": decoder, "utterances": len(post), "frames": frames, "acwt": acwt,
        "num_pdfs": model.context.num_pdfs, "context_width": model.context.width,
        "per": round(hmm_result.counts.rate, 2), "per_argmax": round(argmax_result.counts.rate, 2),
        "per_convention": hmm_result.convention, "frame_acc": frame_acc, "frame_acc_targets": target_source,
        "failed_utterances": len(decoded.failed), "partial_paths": len(decoded.partial),
        "rtf_network": round(nn_seconds / audio_seconds, 4),
        "rtf_search": round(search_seconds / audio_seconds, 4),
    }
    if decoder == "rnn":
        scores.update(lm_weight=settings.lm_weight, penalty=settings.penalty)
    atomic_write_text(out_dir / "scores.yaml", yaml.safe_dump(scores, sort_keys=False))
    if decoded.failed:
        atomic_write_text(out_dir / "failed_utts.txt",
                          "".join(f"{u} {why}\n" for u, why in sorted(decoded.failed.items())))
    log.info("%s: PER %.2f%% (argmax %.2f%%), frame acc %s (targets: %s), %d failed, %d partial", data_dir,
             scores["per"], scores["per_argmax"], "—" if frame_acc is None else f"{frame_acc:.2f}%",
             target_source, len(decoded.failed), len(decoded.partial))
    return scores


def _decoder(model: HybridModel, decoder: str, beam: float) -> tuple[PhoneDecoder, float, object]:
    """(the decoder, its acoustic scale, its settings) of ``decoder`` as tuned on dev."""
    if decoder == "hmm":
        return model.decoder(beam=beam), model.acwt, f"acwt {model.acwt}"
    from asr.decode.rnn_decode import rnn_decoder, tuned_settings

    settings = tuned_settings(model)
    return rnn_decoder(model, settings), settings.acwt, settings


#: The RNN decoder's settings tried on dev, one coordinate at a time (LM weight, then
#: penalty, then the acoustic scale as a multiple of the HMM's tuned one, then the LM weight again).
LM_WEIGHTS = (0.5, 1.0, 1.5, 2.0, 3.0)
PENALTIES = (-2.0, -1.0, 0.0, 1.0, 2.0)
ACWT_FACTORS = (0.5, 0.7, 1.0, 1.4)


def tune_rnn(model: HybridModel, dev_dir: Path, out_dir: Path, start: "RnnSettings | None" = None,
             lm_weights: Sequence[float] = LM_WEIGHTS, penalties: Sequence[float] = PENALTIES,
             acwt_factors: Sequence[float] = ACWT_FACTORS,
             post: dict[str, np.ndarray] | None = None) -> "RnnSettings":
    """Tune the RNN decoder on dev by coordinate search from ``start`` (default: the HMM's
    tuned acwt, LM weight 1, no penalty); write one line per setting tried to
    ``out_dir/rnn_sweep.tsv`` and store the best in the bundle. ``post``: dev's log
    posteriors when they are at hand."""
    from asr.decode.rnn_decode import RnnSettings, bundle_phone_lm, rnn_decoder, save_settings

    dd = read_datadir(dev_dir, require_phones=True)
    refs = {u: dd.phone_text(u) for u in dd.utts}
    post = post if post is not None else set_posteriors(model, set_features(model, dev_dir))
    lm = bundle_phone_lm(model)
    base = start or RnnSettings(acwt=model.acwt)
    tried: dict[RnnSettings, float] = {}

    def per(settings: RnnSettings) -> float:
        if settings not in tried:
            hyps = decode_with(model, rnn_decoder(model, settings, lm), post, settings.acwt).hyps
            tried[settings] = score_phones(refs, hyps, model.lang).counts.rate
            log.info("dev RNN %s: PER %.2f%%", settings, tried[settings])
        return tried[settings]

    best = base
    axes = [("lm_weight", [float(w) for w in lm_weights]), ("penalty", [float(p) for p in penalties]),
            ("acwt", [round(base.acwt * f, 4) for f in acwt_factors]),
            ("lm_weight", [float(w) for w in lm_weights])]
    for name, values in axes:
        best = min((replace(best, **{name: v}) for v in values), key=per)
    sweep = [{**asdict(k), "per": round(v, 2)} for k, v in tried.items()]
    atomic_write_text(out_dir / "rnn_sweep.tsv", "acwt\tlm_weight\tpenalty\tper\n" + "".join(
        f"{r['acwt']}\t{r['lm_weight']}\t{r['penalty']}\t{r['per']}\n" for r in sweep))
    save_settings(model, best, dev_dir, tried[best], sweep)
    log.info("chosen on dev: %s (PER %.2f%%)", best, tried[best])
    return best
