"""Sequence training with MMI after cross-entropy (the criterion itself is :mod:`asr.nn.mmi`):
a model's denominator graph (:func:`denominator_graph`) and the training of a CE bundle on it
(:func:`train_mmi`, ``asr train-mmi``, the recipe's stage 7 with ``--mmi true``).

The denominator is lattice-free, as Kaldi's chain models' (Povey et al., Interspeech 2016):
every phone sequence under the phone n-gram the recipe already trains for phone decoding
(``G.fst`` of the phone lang dir, :func:`asr.lang.graph.make_decoding_graph`), through the
model's context dependency and HMMs: H∘C∘G, made once, rather than lattices of the training
data decoded with the cross-entropy model (Kaldi nnet1's and Sak et al.'s way), which would
need a decode of all the training speech before every epoch.
"""

from __future__ import annotations

import logging
import pickle
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

import kaldifst
import numpy as np
import torch
import yaml

from asr.decode.hybrid import HybridModel, write_training_manifest
from asr.errors import GraphError, ModelError
from asr.features.storage import load_features
from asr.hmm.context import TREE_JSON, ContextDependency
from asr.hmm.transitions import Transitions
from asr.lang.graph import DEFAULT_SELF_LOOP_SCALE, PHONES_TXT, compose_hcg, g_disambig_label
from asr.io import atomic_path, atomic_write_text
from asr.nn.checkpoint import epoch_checkpoints, save_checkpoint
from asr.nn.mmi import ArcGraph, mmi_objective
from asr.steps.train_am import check_config, offset_versions

log = logging.getLogger(__name__)

MMI_YAML = "mmi.yaml"
#: Batches between progress lines in the log.
LOG_EVERY = 20


def pdf_acceptor(fst, label_pdf: np.ndarray) -> kaldifst.StdVectorFst:
    """The input side of a transducer over transition ids as an acceptor over pdfs (label
    ``pdf + 1``; epsilon stays 0), weights and final weights kept."""
    out = kaldifst.StdVectorFst()
    for _ in range(fst.num_states):
        out.add_state()
    out.start = fst.start
    for s in range(fst.num_states):
        out.set_final(s, fst.final(s).value)
        for arc in kaldifst.ArcIterator(fst, s):
            label = int(label_pdf[arc.ilabel - 1]) + 1 if arc.ilabel else 0
            out.add_arc(s, kaldifst.StdArc(label, label, arc.weight.value, arc.nextstate))
    return out


def denominator_graph(g_path: Path, ctx: ContextDependency,
                      self_loop_scale: float = DEFAULT_SELF_LOOP_SCALE) -> ArcGraph:
    """H∘C∘G of the phone n-gram ``g_path`` for ``ctx`` (:func:`asr.lang.graph.compose_hcg`, the
    transition costs as the decoder's) as an acceptor of pdf sequences, epsilons removed,
    determinized and minimized: an :class:`ArcGraph`.

    All three in the tropical semiring, as the decoder reads the graph: a pdf sequence weighs
    what its best path through H∘C∘G weighs, not the sum of its paths (G's back-off and
    direct paths, the self-loop and forward transitions of one pdf). For the medium corpus's
    1,000-leaf k = 3 tree that turns 59,538 states and 817,002 arcs into 996 and 60,581.

    Raises:
        GraphError: G missing or unreadable, or an empty result.
    """
    g = kaldifst.StdVectorFst.read(str(g_path)) if Path(g_path).is_file() else None
    if g is None or g.num_states == 0:
        raise GraphError(f"{g_path}: phone LM G.fst is missing, unreadable or empty")
    hcg = compose_hcg(g, ctx, [g_disambig_label(len(ctx.phones))], self_loop_scale)
    den = pdf_acceptor(hcg, Transitions(ctx).tid_pdf)
    kaldifst.rmepsilon(den)
    den = kaldifst.determinize(den)
    kaldifst.minimize(den)
    if den.num_states == 0:
        raise GraphError(f"{g_path}: the denominator graph is empty")
    return ArcGraph.from_fst(den, np.arange(ctx.num_pdfs))


@dataclass(frozen=True)
class MmiConfig:
    """Sequence training after cross-entropy; saved as ``mmi.yaml`` beside the model."""

    epochs: int = 2
    lr: float = 2e-5             # Adam, constant: a CE model is continued, not trained afresh
    acwt: float = 0.0            # y = acwt · (log posterior - log prior); 0: the model's tuned phone acwt
    ce_weight: float = 0.1       # + ce_weight · CE (Kaldi chain's cross-entropy regulariser)
    batch_frames: int = 6000     # output frames a batch (whole utterances)
    max_grad_norm: float = 5.0
    seed: int = 0


def _batches(lengths: Mapping[str, int], batch_frames: int, rng: np.random.Generator) -> list[list[str]]:
    """Utterances sorted by length, cut into batches of at most ``batch_frames`` padded frames,
    the batches shuffled."""
    batches, cur = [], []
    for utt in sorted(lengths, key=lambda u: (lengths[u], u)):  # ascending: utt is the longest so far
        if cur and lengths[utt] * (len(cur) + 1) > batch_frames:
            batches.append(cur)
            cur = []
        cur.append(utt)
    if cur:
        batches.append(cur)
    return [batches[i] for i in rng.permutation(len(batches))]


def _pad(feats: Mapping[str, np.ndarray], targets: Mapping[str, np.ndarray], utts: Sequence[str]
         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x (B, T, D) float32, lengths (B,), pdfs (B, T) int64 padded with -1)."""
    lengths = torch.tensor([len(targets[u]) for u in utts])
    T = int(lengths.max())
    x = torch.zeros(len(utts), T, feats[utts[0]].shape[1])
    pdfs = torch.full((len(utts), T), -1, dtype=torch.int64)
    for b, u in enumerate(utts):
        x[b, : lengths[b]] = torch.from_numpy(feats[u][: lengths[b]])
        pdfs[b, : lengths[b]] = torch.from_numpy(targets[u])
    return x, lengths, pdfs


def mmi_step(network: torch.nn.Module, batch: tuple, den: ArcGraph, log_priors: torch.Tensor,
             cfg: MmiConfig, acwt: float) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of one batch, -MMI + ce_weight · CE (per frame), and its parts."""
    x, lengths, pdfs = batch
    logp = torch.log_softmax(network(x, lengths).float(), -1)  # (B, T, P)
    mask = pdfs >= 0
    ce = torch.nn.functional.nll_loss(logp[mask], pdfs[mask])
    y = acwt * (logp - log_priors)
    mmi = mmi_objective(y, lengths, den, pdfs.clamp(min=0), scaled=True)
    loss = -mmi + cfg.ce_weight * ce
    correct = (logp.argmax(-1)[mask] == pdfs[mask]).float().mean()
    return loss, {"mmi": mmi.item(), "ce": ce.item(), "acc": correct.item(), "frames": int(lengths.sum())}


def _start_bundle(ce: HybridModel, out_dir: Path, cfg: MmiConfig, targets: dict) -> None:
    """``out_dir`` as a bundle of the CE model's network, front end, phones, tree and priors
    (its weights replaced by training), with ``mmi.yaml``; a changed config is refused."""
    out_dir.mkdir(parents=True, exist_ok=True)
    check_config(out_dir, MMI_YAML, asdict(cfg), may_grow=("epochs",))
    for name in ("model.yaml", "feats.yaml", PHONES_TXT, TREE_JSON, "log_priors.txt"):
        with atomic_path(out_dir / name) as tmp:
            shutil.copyfile(ce.model_dir / name, tmp)
    atomic_write_text(out_dir / MMI_YAML, yaml.safe_dump(asdict(cfg), sort_keys=True))
    atomic_write_text(out_dir / "targets.yaml", yaml.safe_dump(targets, sort_keys=True))
    write_training_manifest(out_dir, ce.feat_cfg, ce.context, ce.lang, ce.network.cfg.input_dim, targets,
                            ce.network.cfg.frame_subsampling)


def _evaluate(network, feats, targets, den, log_priors, cfg, acwt, device) -> dict[str, float]:
    """Per-frame MMI, CE and frame accuracy of a set (no gradient, dropout off)."""
    network.eval()
    sums = {"mmi": 0.0, "ce": 0.0, "acc": 0.0, "frames": 0}
    with torch.no_grad():
        for utts in _batches({u: len(t) for u, t in targets.items()}, cfg.batch_frames, np.random.default_rng(0)):
            batch = tuple(t.to(device) for t in _pad(feats, targets, utts))
            _, parts = mmi_step(network, batch, den, log_priors, cfg, acwt)
            for k in ("mmi", "ce", "acc"):
                sums[k] += parts[k] * parts["frames"]
            sums["frames"] += parts["frames"]
    network.train()
    return {k: (v / sums["frames"] if k != "frames" else v) for k, v in sums.items()}


def train_mmi(ce_dir: Path, train_dir: Path, dev_dir: Path, ali_dirs: tuple[Path, Path] | None, g_path: Path,
              out_dir: Path, cfg: MmiConfig, device: torch.device) -> dict:
    """Continue the CE model of ``ce_dir`` with MMI (+ ``cfg.ce_weight`` CE) on ``train_dir``,
    numerators from the alignments ``ali_dirs`` (train, dev; None: the uniform split of the
    data dirs' phone segmentations), the denominator the phone n-gram
    ``g_path`` (:func:`denominator_graph`); write the bundle to ``out_dir`` (``final.pt``: the
    last epoch's weights; ``epoch-N.pt`` checkpoints, from which a run resumes)."""
    ce = HybridModel.load(ce_dir, device)
    acwt = cfg.acwt or ce.acwt
    den = denominator_graph(g_path, ce.context)
    rate = ce.frame_rate
    train_ali, dev_ali = ali_dirs if ali_dirs is not None else (None, None)
    train = offset_versions(Path(train_dir), dict(load_features(train_dir)), ce.context, train_ali, rate, 1)[0]
    dev = offset_versions(Path(dev_dir), dict(load_features(dev_dir)), ce.context, dev_ali, rate, 1)[0]
    targets_info = {"alignment": "uniform" if ali_dirs is None else [str(Path(d).resolve()) for d in ali_dirs],
                    "init_from": str(Path(ce_dir).resolve()), "criterion": "mmi"}
    _start_bundle(ce, Path(out_dir), cfg, targets_info)
    network, log_priors = ce.network, torch.as_tensor(ce.log_priors, dtype=torch.float32, device=device)
    opt = torch.optim.Adam(network.parameters(), lr=cfg.lr)
    first = _resume(Path(out_dir), network, opt) + 1
    log.info("MMI on %d utterances, %d states / %d arcs in the denominator, acwt %g, epochs %d to %d",
             len(train[1]), den.num_states, len(den.src), acwt, first, cfg.epochs)
    history = {}
    for epoch in range(first, cfg.epochs + 1):
        history[epoch] = _train_epoch(network, opt, train, den, log_priors, cfg, acwt, device, epoch)
        history[epoch]["dev"] = _evaluate(network, *dev, den, log_priors, cfg, acwt, device)
        log.info("MMI epoch %d: %s", epoch, history[epoch])
        save_checkpoint(Path(out_dir) / f"epoch-{epoch}.pt",
                        {"model": network.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch})
        _append_history(Path(out_dir), epoch, history[epoch])
    if history or not (Path(out_dir) / "final.pt").is_file():  # done before: final.pt stays as it was
        save_checkpoint(Path(out_dir) / "final.pt", {"model": network.state_dict(), "epoch": cfg.epochs})
    return history


def _append_history(out_dir: Path, epoch: int, record: dict) -> None:
    """Add an epoch's figures to ``history.yaml`` (a list, one mapping an epoch, as the CE
    trainer's: ``seconds`` is what the results table sums)."""
    path = out_dir / "history.yaml"
    old = [r for r in (yaml.safe_load(path.read_text()) or []) if r.get("epoch") != epoch] if path.is_file() else []
    flat = {"epoch": epoch, **{k: v for k, v in record.items() if k != "dev"},
            **{f"dev_{k}": v for k, v in record["dev"].items()}}
    atomic_write_text(path, yaml.safe_dump(old + [flat], sort_keys=False))


def _resume(out_dir: Path, network: torch.nn.Module, opt: torch.optim.Optimizer) -> int:
    """Load the newest ``epoch-N.pt`` of ``out_dir`` into ``network`` and ``opt``; return N (0: none)."""
    saved = epoch_checkpoints(out_dir)
    if not saved:
        return 0
    epoch, path = saved[-1]
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        network.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
    except (OSError, RuntimeError, KeyError, pickle.UnpicklingError) as exc:
        raise ModelError(f"{path}: unreadable MMI checkpoint ({exc}); delete it to redo epoch {epoch}") from None
    log.info("%s: resuming after epoch %d", out_dir, epoch)
    return epoch


def _train_epoch(network, opt, train, den, log_priors, cfg: MmiConfig, acwt: float, device, epoch: int) -> dict:
    """One pass over the training utterances in shuffled length-sorted batches."""
    feats, targets = train
    torch.manual_seed(cfg.seed * 10_000 + epoch)  # dropout: the same config and seed give the same model
    network.train()
    sums = {"mmi": 0.0, "ce": 0.0, "acc": 0.0, "frames": 0}
    start = time.time()
    batches = _batches({u: len(t) for u, t in targets.items()}, cfg.batch_frames, np.random.default_rng([cfg.seed, epoch]))
    for i, utts in enumerate(batches):
        if i and i % LOG_EVERY == 0:
            log.info("epoch %d: %d of %d batches, MMI %.4f a frame, %.0f frames/s", epoch, i, len(batches),
                     sums["mmi"] / sums["frames"], sums["frames"] / (time.time() - start))
        batch = tuple(t.to(device) for t in _pad(feats, targets, utts))
        loss, parts = mmi_step(network, batch, den, log_priors, cfg, acwt)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), cfg.max_grad_norm)
        opt.step()
        for k in ("mmi", "ce", "acc"):
            sums[k] += parts[k] * parts["frames"]
        sums["frames"] += parts["frames"]
    out = {k: (v / sums["frames"] if k != "frames" else v) for k, v in sums.items()}
    out["seconds"] = round(time.time() - start, 1)
    return out


def read_mmi_conf(path: Path | None) -> MmiConfig:
    """The MmiConfig of a YAML file of its fields (None: the defaults); ModelError when bad."""
    if path is None:
        return MmiConfig()
    try:
        return MmiConfig(**(yaml.safe_load(Path(path).read_text()) or {}))
    except (OSError, yaml.YAMLError, TypeError) as exc:
        raise ModelError(f"{path}: bad MMI config ({exc}); its keys are those of MmiConfig") from None
