"""Stages 4 and 7: frame targets, priors and LSTM training for any context
dependency (CI or CD).

Targets come from an alignment: the uniform split of the corpus's phone
segmentation (stage 4), or a Viterbi realignment made with a trained model
(``asr align``, stage 5). The model's context dependency maps each aligned
frame (phone in context, HMM state) to its pdf.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
import yaml

from asr.corpus.datadir import read_datadir
from asr.decode.hybrid import write_training_manifest
from asr.errors import DataError, ModelError
from asr.features.augment import AugmentConfig, copy_dir, copy_factor, make_copy, warp_targets
from asr.features.extract import FeatureConfig
from asr.features.storage import load_features
from asr.features.frame_rate import FrameRate
from asr.hmm.alignment import read_alignments
from asr.hmm.convert import alignments_at
from asr.hmm.context import TREE_JSON, ContextDependency
from asr.hmm.targets import TargetStats, TooShortError, segments_to_alignment
from asr.phones.lang import Lang
from asr.phones.topology import Topology
from asr.hmm.transitions import alignment_pdfs
from asr.io import atomic_write_text
from asr.symbols import write_symbol_table
from asr.nn.distributed import current
from asr.nn.model import ModelConfig
from asr.nn.priors import estimate_log_priors, save_log_priors
from asr.nn.train import TrainConfig, load_model, train

log = logging.getLogger(__name__)

#: What ``targets`` records for a model trained on the uniform split.
UNIFORM = "uniform split of the phone segmentation"
#: Processes that make an augmented copy (before training starts, while the cores are idle;
#: the copy is the same for any number).
COPY_JOBS = min(2, os.cpu_count() or 1)


def uniform_alignments(data_dir: Path, frames: Mapping[str, int], phones: list[str], topo: Topology,
                       rate: FrameRate | None = None, offset: int = 0) -> dict[str, np.ndarray]:
    """The uniform alignment of every utterance of ``frames`` → {utt: (T',) CI transition ids}.

    ``frames`` maps each utterance to its feature frames T; the alignment has
    the T' output frames of ``rate`` read from ``offset`` (None: the feature
    rate, T' = T), each labelled by the phone segment holding its centre.
    Phones shorter than the topology's minimum are lengthened (see
    :mod:`asr.hmm.targets`); an utterance too short for its phone sequence
    gets no alignment. Both are counted and logged for the data set.
    """
    dd = read_datadir(data_dir, require_phones=True, phones=phones)  # file:line of a phone not in the lang
    cfg = FeatureConfig.load(data_dir / "feats.yaml")
    rate = rate or FrameRate(cfg.frame_shift_ms / 1000)
    first_center = float(cfg.frame_centers(1)[0])
    index = {p: i for i, p in enumerate(phones)}
    stats = TargetStats()
    out = {}
    for utt in frames:
        if utt not in dd.phone_segments:
            raise DataError(f"{data_dir / 'phone_segments'}: no segmentation for utterance {utt}")
        centers = rate.centers(rate.num_frames(frames[utt], offset), first_center, offset)
        try:
            out[utt] = segments_to_alignment(dd.phone_segments[utt], centers, index, topo, utt, stats)
        except TooShortError as exc:
            log.warning("%s: %s; utterance skipped", data_dir, exc)
            stats.skipped_utterances += 1
    log.info("%s targets: %s", data_dir, stats.summary())
    return out


def load_targets(data_dir: Path, frames: Mapping[str, int], ctx: ContextDependency,
                 ali_dir: Path | None = None, rate: FrameRate | None = None,
                 offset: int = 0) -> dict[str, np.ndarray]:
    """Pdf targets of model ``ctx`` for the utterances of ``frames`` (utt → feature frames T)
    → {utt: (T',) int64}, at ``rate`` read from ``offset`` (None: the feature rate).

    From the alignments in ``ali_dir`` (checked against the phones and frame counts;
    converted when their rate or topology is not the model's,
    :func:`asr.hmm.convert.alignments_at`), or from the uniform split when ``ali_dir``
    is None. Utterances without an alignment are left out (logged).
    """
    if rate is None:
        rate = FrameRate(FeatureConfig.load(Path(data_dir) / "feats.yaml").frame_shift_ms / 1000)
    if ali_dir is None:
        alignments = uniform_alignments(data_dir, frames, ctx.phones, ctx.topology, rate, offset)
    else:
        aset = read_alignments(ali_dir, expect_phones=ctx.phones)
        alignments = alignments_at(aset, frames, ctx.topology, rate, offset, f"{ali_dir} against {data_dir}")
    return {u: alignment_pdfs(a, ctx) for u, a in alignments.items()}


def check_config(exp_dir: Path, name: str, cfg_dict: dict, may_grow: tuple[str, ...] = (),
                 defaults: Mapping | None = None, free: tuple[str, ...] = ()) -> None:
    """Refuse to reuse an experiment dir trained with another config.

    The settings named in ``may_grow`` (e.g. ``epochs``) may be raised: a run
    continued to more epochs is the run that had asked for them from the start.
    Those in ``free`` may change at will (they do not change the trained weights).
    ``defaults``: settings added since, as a file written before them reads them.
    """
    path = exp_dir / name
    if not path.is_file():
        return
    old = yaml.safe_load(path.read_text())
    if not isinstance(old, dict):
        raise ModelError(f"{path}: not a config mapping; use a new experiment dir or delete it")
    old = {**(defaults or {}), **old}
    skip = set(may_grow) | set(free)
    differ = sorted(k for k in set(old) | set(cfg_dict) if k not in skip and old.get(k) != cfg_dict.get(k))
    if differ:
        changes = ", ".join(f"{k} {old.get(k)!r} there, {cfg_dict.get(k)!r} now" for k in differ)
        raise ModelError(f"{path}: {exp_dir} was trained with a different config ({changes}); "
                         f"use a new experiment dir or delete it")
    for key in may_grow:
        if key in old and key in cfg_dict and cfg_dict[key] < old[key]:
            raise ModelError(f"{path}: {exp_dir} was trained with {key} {old[key]}; it can be "
                             f"continued to more, not fewer ({cfg_dict[key]}): use a new experiment dir")


def read_train_conf(path: Path | None) -> tuple[dict, TrainConfig, AugmentConfig]:
    """The ``model:`` options, the TrainConfig and the AugmentConfig (``augment:``) of a training YAML file."""
    if path is None:
        return {}, TrainConfig(), AugmentConfig()
    if not Path(path).is_file():
        raise ModelError(f"{path}: training config not found")
    try:
        conf = yaml.safe_load(Path(path).read_text()) or {}
        unknown = set(conf) - {"model", "train", "augment"}
        if unknown:
            raise ValueError(f"unknown sections {sorted(unknown)}")
        model_opts = dict(conf.get("model") or {})
        train_cfg = TrainConfig(**(conf.get("train") or {}))
        train_cfg.check_model(ModelConfig(input_dim=1, num_pdfs=1, **model_opts))  # check the options now
        return model_opts, train_cfg, AugmentConfig.from_dict(conf.get("augment"))
    except (yaml.YAMLError, TypeError, ValueError, AttributeError) as exc:
        raise ModelError(f"{path}: bad training config ({exc})") from None


def load_copies(train_dir: Path, aug: AugmentConfig, targets: Mapping[str, np.ndarray],
                feat_cfg: FeatureConfig, factor: int = 1, num_jobs: int = COPY_JOBS
                ) -> list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """The augmented copies of ``train_dir`` that ``aug`` asks for (made when missing, each in
    ``num_jobs`` processes: :func:`~asr.features.augment.make_copy`), as
    (features, targets) pairs over the utterances of ``targets`` (feature-rate targets, (T,)
    each); a speed copy's targets are the original's read at the copy's frame times.

    ``factor`` > 1 (a lower frame rate model): each copy read from each offset 0 … factor - 1,
    its features stacked and each output frame taking the target of its middle frame
    (:class:`~asr.features.frame_rate.FrameRate`), copy after copy."""
    copies = []
    rate = FrameRate(feat_cfg.frame_shift_ms / 1000, factor)
    for name in aug.copies:
        feats = load_features(make_copy(train_dir, name, aug, num_jobs))
        speed = copy_factor(name)
        x, y = {}, {}
        for utt, tgt in targets.items():
            x[utt] = feats[utt]
            y[utt] = warp_targets(tgt, len(x[utt]), speed, feat_cfg) if speed != 1.0 else tgt
            if len(x[utt]) != len(y[utt]):
                raise DataError(f"{copy_dir(train_dir, name)}: utterance {utt} has {len(x[utt])} frames, "
                                f"its targets {len(y[utt])}; delete the copy to remake it")
        copies += [({u: rate.stack(x[u], o) for u in x}, {u: rate.sample(y[u], o) for u in y})
                   for o in range(factor)] if factor > 1 else [(x, y)]
        log.info("augmentation: copy %s of %d utterances", name, len(x))
    return copies


def offset_versions(data_dir: Path, feats: Mapping[str, np.ndarray], ctx: ContextDependency,
                    ali_dir: Path | None, rate: FrameRate, offsets: int | None = None
                    ) -> list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """A model's training data at its frame rate: the utterances of ``feats`` (utt → (T, D))
    read from each offset 0 … k - 1 (the first ``offsets`` of them), as (stacked features
    (T', k·D), pdf targets (T',)) pairs over the utterances that have targets (at the
    feature rate: one pair, the features themselves)."""
    frames = {u: len(x) for u, x in feats.items()}
    versions = []
    for offset in range(rate.factor if offsets is None else offsets):
        targets = load_targets(data_dir, frames, ctx, ali_dir, rate, offset)
        versions.append(({u: rate.stack(feats[u], offset) for u in targets}, targets))
    return versions


def check_context(exp_dir: Path, ctx: ContextDependency) -> None:
    """Refuse to reuse an experiment dir trained with another context dependency."""
    path = exp_dir / TREE_JSON
    if path.is_file() and ContextDependency.load(path).digest() != ctx.digest():
        raise ModelError(f"{path}: {exp_dir} was trained with a different context dependency; "
                         f"use a new experiment dir or delete it")


def lstm_weights(model_dir: Path, model_cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """The LSTM layers of the trained model in ``model_dir``, and its output layer too when
    it has as many outputs as ``model_cfg``'s (a CI model continued on new targets),
    checked to fit ``model_cfg``; ModelError naming the model when the layers differ."""
    source = load_model(Path(model_dir), torch.device("cpu"))
    src_cfg = {k: v for k, v in asdict(source.cfg).items() if k not in ("num_pdfs", "dropout")}
    new_cfg = {k: v for k, v in asdict(model_cfg).items() if k not in ("num_pdfs", "dropout")}
    if src_cfg != new_cfg:
        raise ModelError(f"{model_dir}: cannot initialise from this model: its LSTM layers "
                         f"({src_cfg}) differ from the new model's ({new_cfg})")
    same_outputs = source.cfg.num_pdfs == model_cfg.num_pdfs
    return {k: v for k, v in source.state_dict().items() if same_outputs or not k.startswith("output.")}


def train_am(train_dir: Path, dev_dir: Path, exp_dir: Path, model_opts: dict,
             train_cfg: TrainConfig, device: torch.device, ctx: ContextDependency, lang: Lang,
             ali_dirs: tuple[Path, Path] | None = None, init_from: Path | None = None,
             aug: AugmentConfig | None = None) -> dict:
    """Train an LSTM on ``train_dir`` (dev loss on ``dev_dir``); write the bundle to ``exp_dir``.

    Args:
        model_opts: ModelConfig fields other than input_dim / num_pdfs.
        ctx: the context dependency (CI, or a CD tree) that numbers the outputs.
        lang: the lang of ``ctx``'s phones (the bundle keeps a copy).
        ali_dirs: (train, dev) alignment dirs; None trains on the uniform split.
        init_from: a trained model dir whose LSTM layers start this model
            (its output layer too when it has as many outputs; else that starts random).
        aug: data augmentation (copies of the training data, SpecAugment); None for none.
    """
    aug = aug or AugmentConfig()
    exp_dir = Path(exp_dir)
    feat_cfg = FeatureConfig.load(Path(train_dir) / "feats.yaml")
    if FeatureConfig.load(Path(dev_dir) / "feats.yaml") != feat_cfg:
        raise DataError(f"{dev_dir}/feats.yaml differs from {train_dir}/feats.yaml; recompute the features")
    model_cfg = ModelConfig(input_dim=feat_cfg.dim, num_pdfs=ctx.num_pdfs, **model_opts)
    check_config(exp_dir, "model.yaml", asdict(model_cfg), defaults=ModelConfig.defaults())
    check_config(exp_dir, "train.yaml", asdict(train_cfg), may_grow=("epochs",), defaults=TrainConfig.defaults(),
                 free=TrainConfig.FREE)
    if aug != AugmentConfig() or (exp_dir / "augment.yaml").is_file():
        check_config(exp_dir, "augment.yaml", aug.to_dict())
    check_context(exp_dir, ctx)
    targets_info = {"alignment": UNIFORM if ali_dirs is None else [str(Path(d).resolve()) for d in ali_dirs],
                    "init_from": None if init_from is None else str(Path(init_from).resolve())}
    check_config(exp_dir, "targets.yaml", targets_info)
    # training batches hold every utterance anyway: read each matrix once
    rate = FrameRate(feat_cfg.frame_shift_ms / 1000, model_cfg.frame_subsampling)
    train_ali, dev_ali = ali_dirs if ali_dirs is not None else (None, None)
    all_train = dict(load_features(train_dir))
    train_versions = offset_versions(Path(train_dir), all_train, ctx, train_ali, rate)
    dev_feats, dev_tgt = offset_versions(Path(dev_dir), dict(load_features(dev_dir)), ctx, dev_ali, rate, 1)[0]
    train_feats, train_tgt = train_versions[0]  # without utterances that have no targets

    def copies_of_train() -> list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
        """The other offsets, then the augmented copies (their targets from the feature rate's)."""
        frames = {u: len(all_train[u]) for u in train_tgt}
        copy_tgt = train_tgt if rate.factor == 1 or not aug.copies else \
            load_targets(Path(train_dir), frames, ctx, train_ali)
        return train_versions[1:] + load_copies(Path(train_dir), aug, copy_tgt, feat_cfg, rate.factor)

    dist = current()
    if dist.is_main:  # process 0 makes the augmented copies and writes the bundle's files
        copies = copies_of_train()
        exp_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(exp_dir / "augment.yaml", yaml.safe_dump(aug.to_dict(), sort_keys=True))
        write_symbol_table(ctx.phones, exp_dir / "phones.txt")
        ctx.save(exp_dir / TREE_JSON)
        atomic_write_text(exp_dir / "targets.yaml", yaml.safe_dump(targets_info, sort_keys=True))
        feat_cfg.save(exp_dir / "feats.yaml")
        save_log_priors(exp_dir / "log_priors.txt", estimate_log_priors(train_tgt.values(), model_cfg.num_pdfs))
    dist.barrier()
    if not dist.is_main:
        copies = copies_of_train()
    log.info("training %d pdfs (context width %d) on %d utterances (%d frames), dev %d utterances, "
             "device %s, process %d of %d", ctx.num_pdfs, ctx.width, len(train_feats),
             sum(len(y) for y in train_tgt.values()), len(dev_feats), device,
             dist.rank, dist.world_size)
    init = lstm_weights(init_from, model_cfg) if init_from is not None else None
    state = train(exp_dir, (train_feats, train_tgt), (dev_feats, dev_tgt), model_cfg, train_cfg,
                  device, init, copies=copies, aug=aug)
    if dist.is_main:
        write_training_manifest(exp_dir, feat_cfg, ctx, lang, model_cfg.input_dim, targets_info,
                                model_cfg.frame_subsampling)
    return state
