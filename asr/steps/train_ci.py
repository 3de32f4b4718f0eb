"""Stage 4: CI frame targets from the phone segmentation, priors, LSTM training."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
import yaml

from asr.corpus.datadir import read_datadir
from asr.decode.hybrid import write_training_manifest
from asr.errors import DataError, ModelError
from asr.features.extract import FeatureConfig
from asr.features.storage import load_features
from asr.hmm.targets import TargetStats, TooShortError, segments_to_pdfs
from asr.hmm.topology import CI_TOPOLOGY, Topology
from asr.lang.phones import PHONES48
from asr.lang.symbols import write_symbol_table
from asr.nn.model import ModelConfig
from asr.nn.priors import estimate_log_priors, save_log_priors
from asr.nn.train import TrainConfig, train

log = logging.getLogger(__name__)


def load_targets(data_dir: Path, feats: Mapping[str, np.ndarray], phones: list[str],
                 topo: Topology = CI_TOPOLOGY) -> dict[str, np.ndarray]:
    """CI pdf targets of every utterance of ``feats`` → {utt: (T,) int64}.

    ``feats`` maps each utterance to any array with its T frames as rows
    (features, or the network's posteriors); only its length is used.

    Phones shorter than the topology's minimum are lengthened (see
    :mod:`asr.hmm.targets`); an utterance too short for its phone sequence
    gets no targets. Both are counted and logged for the data set.
    """
    dd = read_datadir(data_dir, require_phones=True)
    cfg = FeatureConfig.load(data_dir / "feats.yaml")
    index = {p: i for i, p in enumerate(phones)}
    stats = TargetStats()
    targets = {}
    for utt in feats:
        if utt not in dd.phone_segments:
            raise DataError(f"{data_dir / 'phone_segments'}: no segmentation for utterance {utt}")
        num_frames = len(feats[utt])
        try:
            targets[utt] = segments_to_pdfs(dd.phone_segments[utt], cfg.frame_centers(num_frames),
                                            index, utt, topo, stats)
        except TooShortError as exc:
            log.warning("%s: %s; utterance skipped", data_dir, exc)
            stats.skipped_utterances += 1
    log.info("%s targets: %s", data_dir, stats.summary())
    return targets


def check_config(exp_dir: Path, name: str, cfg_dict: dict) -> None:
    """Refuse to reuse an experiment dir trained with another config."""
    path = exp_dir / name
    if path.is_file() and yaml.safe_load(path.read_text()) != cfg_dict:
        raise ModelError(f"{path}: {exp_dir} was trained with a different config; "
                         f"use a new experiment dir or delete it")


def read_train_conf(path: Path | None) -> tuple[dict, TrainConfig]:
    """The ``model:`` options and the TrainConfig of a training YAML file."""
    if path is None:
        return {}, TrainConfig()
    if not Path(path).is_file():
        raise ModelError(f"{path}: training config not found")
    try:
        conf = yaml.safe_load(Path(path).read_text()) or {}
        unknown = set(conf) - {"model", "train"}
        if unknown:
            raise ValueError(f"unknown sections {sorted(unknown)}")
        model_opts = dict(conf.get("model") or {})
        ModelConfig(input_dim=1, num_pdfs=1, **model_opts)  # check the options now
        return model_opts, TrainConfig(**(conf.get("train") or {}))
    except (yaml.YAMLError, TypeError, ValueError, AttributeError) as exc:
        raise ModelError(f"{path}: bad training config ({exc})") from None


def train_ci(train_dir: Path, dev_dir: Path, exp_dir: Path, model_opts: dict,
             train_cfg: TrainConfig, device: torch.device, phones: list[str] = list(PHONES48)) -> dict:
    """Train a CI LSTM on ``train_dir`` (dev loss on ``dev_dir``); write the bundle to ``exp_dir``.

    ``model_opts`` are ModelConfig fields other than input_dim / num_pdfs.
    """
    exp_dir = Path(exp_dir)
    feat_cfg = FeatureConfig.load(Path(train_dir) / "feats.yaml")
    if FeatureConfig.load(Path(dev_dir) / "feats.yaml") != feat_cfg:
        raise DataError(f"{dev_dir}/feats.yaml differs from {train_dir}/feats.yaml; recompute the features")
    topo = CI_TOPOLOGY
    model_cfg = ModelConfig(input_dim=feat_cfg.dim, num_pdfs=topo.num_pdfs(len(phones)), **model_opts)
    check_config(exp_dir, "model.yaml", asdict(model_cfg))
    check_config(exp_dir, "train.yaml", asdict(train_cfg))
    # training batches hold every utterance anyway: read each matrix once
    train_feats, dev_feats = dict(load_features(train_dir)), dict(load_features(dev_dir))
    train_tgt = load_targets(train_dir, train_feats, phones, topo)
    dev_tgt = load_targets(dev_dir, dev_feats, phones, topo)
    train_feats = {u: train_feats[u] for u in train_tgt}  # without utterances too short to train on
    dev_feats = {u: dev_feats[u] for u in dev_tgt}
    exp_dir.mkdir(parents=True, exist_ok=True)
    write_symbol_table(phones, exp_dir / "phones.txt")
    feat_cfg.save(exp_dir / "feats.yaml")
    save_log_priors(exp_dir / "log_priors.txt", estimate_log_priors(train_tgt.values(), model_cfg.num_pdfs))
    log.info("training on %d utterances (%d frames), dev %d utterances, device %s",
             len(train_feats), sum(len(y) for y in train_tgt.values()), len(dev_feats), device)
    state = train(exp_dir, (train_feats, train_tgt), (dev_feats, dev_tgt), model_cfg, train_cfg, device)
    write_training_manifest(exp_dir, feat_cfg, phones, topo, model_cfg.input_dim, model_cfg.num_pdfs)
    return state
