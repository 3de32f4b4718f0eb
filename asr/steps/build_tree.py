"""Stage 6: the phonetic decision tree (CD states) from a realignment.

Statistics per (left, centre, right, state) are single diagonal Gaussians
on the normalised features, as Kaldi's ``acc-tree-stats`` (or, with
``hidden_from``, on a trained network's last LSTM layer); questions come
from clustering the phones on the same statistics (Kaldi's
``cluster-phones``); the tree grows greedily by likelihood gain
(:mod:`asr.hmm.tree`). The lang dir decides which phones are left out of
the clustering (its silence phones), which stay context-independent (its
not-split roots) and which extra questions the tree may ask. The tree is
written as ``tree.json`` with ``tree.yaml`` (its figures and settings); the
CD targets follow from it and the alignment (``alignment_pdfs``) when the CD
model is trained.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
import yaml

from asr.errors import DataError, ModelError
from asr.features.storage import load_features
from asr.features.extract import FeatureConfig
from asr.features.frame_rate import FrameRate, stack_frames
from asr.hmm.alignment import read_alignments
from asr.hmm.convert import alignments_at
from asr.hmm.context import TREE_JSON, ContextDependency
from asr.hmm.tree import accumulate_stats, build_tree, cluster_phones, tree_loglike, tree_summary
from asr.io import atomic_write_text
from asr.phones.lang import Lang
from asr.nn.train import load_model

log = logging.getLogger(__name__)

TREE_YAML = "tree.yaml"


@torch.no_grad()
def hidden_activations(model_dir: Path, feats: Mapping[str, np.ndarray], factor: int = 1) -> dict[str, np.ndarray]:
    """The last LSTM layer's outputs of the network in ``model_dir``: {utt: (T', H · dirs)} (CPU),
    T' its output frames; ModelError unless it runs at ``factor`` feature frames an output."""
    network = load_model(Path(model_dir), torch.device("cpu"))
    if network.cfg.frame_subsampling != factor:
        raise ModelError(f"{model_dir}: its network emits an output every {network.cfg.frame_subsampling} "
                         f"feature frames, the tree is built every {factor}")
    out = {}
    for utt, x in feats.items():
        t = torch.from_numpy(stack_frames(np.ascontiguousarray(x), factor)).unsqueeze(0)
        out[utt] = network.encode(t, torch.tensor([t.shape[1]]))[0].numpy()
    return out


def build_tree_stage(data_dir: Path, ali_dir: Path, out_dir: Path, lang: Lang, num_leaves: int = 1000,
                     min_occupancy: float = 50.0, hidden_from: Path | None = None,
                     frame_subsampling: int = 1) -> ContextDependency:
    """Build ``out_dir/tree.json`` from the alignments of ``data_dir``; return the tree.

    Args:
        num_leaves: target number of pdfs (leaves), chosen on dev.
        min_occupancy: frames each leaf must hold at least.
        lang: the alignments' lang (their phones and topology must be its).
        hidden_from: a model dir whose network's last-layer activations are
            the statistics' vectors instead of the features.
        frame_subsampling: the frame rate of the models the tree is for (k feature
            frames an output): the statistics are gathered every k frames, on the k
            stacked frames, from the alignments converted to that rate and to the
            lang's topology (:func:`asr.hmm.convert.alignments_at`).

    Raises:
        DataError / ModelError: alignments that do not match the features or
            each other, or too few leaves asked for.
    """
    out_dir = Path(out_dir)
    aset = read_alignments(ali_dir, expect_phones=list(lang.phones))
    topo = lang.topology
    num_states = int(topo.num_states(aset.phones).sum())
    if num_leaves < num_states:
        raise ModelError(f"--num-leaves {num_leaves} is below the {num_states} (phone, state) "
                         f"pairs of the CI model")
    feats = dict(load_features(data_dir))  # read each matrix once: checked, then accumulated
    rate = FrameRate(FeatureConfig.load(Path(data_dir) / "feats.yaml").frame_shift_ms / 1000, frame_subsampling)
    alignments = alignments_at(aset, {u: len(x) for u, x in feats.items()}, topo, rate,
                               where=f"{ali_dir} against {data_dir}")
    if not alignments:
        raise DataError(f"{ali_dir} holds no alignment of any utterance of {data_dir} "
                        f"(alignments of another data set?)")
    if hidden_from:
        vectors = hidden_activations(hidden_from, {u: feats[u] for u in alignments}, rate.factor)
    else:
        vectors = {u: rate.stack(feats[u]) for u in alignments}
    stats = accumulate_stats(alignments, vectors, aset.phones, topo)
    questions = cluster_phones(stats, aset.phones, exclude=lang.silence)
    extra = [frozenset(lang.index(p) + 1 for p in q) for q in lang.extra_questions]
    questions += [q for q in dict.fromkeys(extra) if q not in questions]
    ci_phones = lang.not_split
    ci = ContextDependency.ci(aset.phones, topo)
    ctx = build_tree(stats, aset.phones, topo, questions, num_leaves, min_occupancy,
                     ci_phones=ci_phones)
    gain = tree_loglike(ctx, stats) - tree_loglike(ci, stats)
    ctx.save(out_dir / TREE_JSON)
    info = {"data": str(Path(data_dir).resolve()), "alignment": str(Path(ali_dir).resolve()),
            "statistics": f"hidden activations of {Path(hidden_from).resolve()}" if hidden_from
            else "features",
            "frame_subsampling": rate.factor, "num_leaves_asked": num_leaves, "min_occupancy": min_occupancy,
            "ci_phones": list(ci_phones), "num_questions": len(questions),
            "frames": int(stats.num_frames), "events": int(len(stats.count)),
            "loglike_gain_per_frame": round(gain / stats.num_frames, 4), **tree_summary(ctx)}
    atomic_write_text(out_dir / TREE_YAML, yaml.safe_dump(info, sort_keys=False))
    log.info("%s: %d pdfs from %d frames (%d triphone-state events), %d questions; "
             "log-likelihood gain over CI %.3f per frame", out_dir / TREE_JSON, ctx.num_pdfs,
             int(stats.num_frames), len(stats.count), len(questions), info["loglike_gain_per_frame"])
    return ctx
