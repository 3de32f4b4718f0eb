"""Hybrid decoding: network posteriors → scaled likelihoods → WFST search.

A model directory (the bundle ``asr transcribe`` needs) holds a manifest,
``bundle.yaml`` (:mod:`asr.decode.bundle`), and the files it lists:
``model.yaml`` + ``final.pt`` (network), ``feats.yaml`` (front end),
``phones.txt`` (the phone symbol table), ``tree.json`` (the context
dependency: (phone in context, HMM state) → pdf; :mod:`asr.hmm.context`),
``log_priors.txt`` (state priors), ``graph/HCG.fst`` + ``graph/phones.txt``
(decoding graph and its output symbols) and ``decode.yaml`` (the acoustic
scale picked on dev). CI and CD models are the same kind of bundle; a bundle
written before the context dependency was stored is read as CI.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch
import yaml

from asr.decode.bundle import component, expect_equal, file_sha256, read_manifest, update_manifest
from asr.decode.wfst import WfstDecoder, check_labels
from asr.errors import DataError, GraphError, ModelError
from asr.features.extract import FeatureConfig
from asr.features.frame_rate import FrameRate, stack_frames
from asr.hmm.context import TREE_JSON, ContextDependency
from asr.phones.lang import FILES as LANG_FILES, Lang
from asr.phones.timit import timit_lang
from asr.phones.topology import Topology
from asr.hmm.transitions import Transitions
from asr.io import atomic_path, atomic_write_text
from asr.lang.graph import GRAPH_YAML, INPUT_LABELS, PHONES_TXT, load_graph, read_graph_settings
from asr.symbols import read_phone_table
from asr.nn.model import AcousticModel
from asr.nn.priors import load_log_priors
from asr.nn.train import load_model

log = logging.getLogger(__name__)

#: Longest piece (frames) the network sees at once when computing posteriors.
MAX_CHUNK_FRAMES = 6000
#: Frames of context read on each side of a piece and then dropped.
CHUNK_CONTEXT = 200
#: Where the decoding graph and its output symbol table live in a bundle.
GRAPH_FST, GRAPH_PHONES = "graph/HCG.fst", "graph/phones.txt"
#: Where a bundle keeps its copy of the lang dir's phone files.
LANG_SUBDIR = "lang"


def read_phone_list(path: Path) -> list[str]:
    """The model's phones from its ``phones.txt`` symbol table, in pdf order."""
    try:
        return read_phone_table(path)
    except GraphError as exc:
        raise ModelError(str(exc)) from None


@torch.no_grad()
def log_posteriors(model: AcousticModel, feats: np.ndarray, device: torch.device) -> np.ndarray:
    """Log state posteriors of one utterance: feats (T, D) → (T', num_pdfs) float32,
    T' = ceil(T / k) for a network of ``frame_subsampling`` k (T' = T at the feature rate).

    Utterances longer than ``MAX_CHUNK_FRAMES`` are processed in pieces, each
    read with ``CHUNK_CONTEXT`` extra frames on both sides whose outputs are
    dropped, so memory stays bounded and the recurrence sees context.
    """
    feats = stack_frames(feats, model.cfg.frame_subsampling)
    pieces = []
    for start in range(0, len(feats), MAX_CHUNK_FRAMES):
        lo, hi = max(0, start - CHUNK_CONTEXT), min(len(feats), start + MAX_CHUNK_FRAMES + CHUNK_CONTEXT)
        x = torch.from_numpy(np.ascontiguousarray(feats[lo:hi])).unsqueeze(0).to(device)
        logits = model(x, torch.tensor([x.shape[1]]))[0]  # (hi - lo, P)
        keep = logits[start - lo : start - lo + MAX_CHUNK_FRAMES]
        pieces.append(torch.log_softmax(keep.float(), dim=-1).cpu().numpy())
    return np.concatenate(pieces)


#: Padded frames per batch when a whole set is scored (``batch_log_posteriors``).
BATCH_FRAMES = 32000


@torch.no_grad()
def batch_log_posteriors(model: AcousticModel, feats: Mapping[str, np.ndarray], device: torch.device,
                         batch_frames: int = BATCH_FRAMES) -> Iterator[tuple[str, np.ndarray]]:
    """Log state posteriors of many utterances, run through the network in padded
    batches of similar lengths (at most ``batch_frames`` padded frames each): yields
    (utt, (T, num_pdfs) float32) in order of length. The outputs are those of
    :func:`log_posteriors` (padding changes no sequence's outputs); utterances longer
    than ``MAX_CHUNK_FRAMES`` output frames go through it one by one."""
    k = model.cfg.frame_subsampling
    if k > 1:
        feats = {u: stack_frames(x, k) for u, x in feats.items()}
    by_length = sorted(feats, key=lambda u: len(feats[u]))
    group: list[str] = []
    for utt in by_length + [None]:
        longest = len(feats[utt]) if utt is not None else 0
        if group and (utt is None or (len(group) + 1) * longest > batch_frames or longest > MAX_CHUNK_FRAMES):
            lengths = torch.tensor([len(feats[u]) for u in group])
            x = torch.zeros(len(group), int(lengths.max()), feats[group[0]].shape[1])
            for i, u in enumerate(group):
                x[i, : lengths[i]] = torch.from_numpy(np.asarray(feats[u], dtype=np.float32))
            log_post = torch.log_softmax(model(x.to(device), lengths).float(), dim=-1).cpu().numpy()
            yield from ((u, log_post[i, : lengths[i]]) for i, u in enumerate(group))
            group = []
        if utt is not None and longest > MAX_CHUNK_FRAMES:
            yield utt, log_posteriors(model, feats[utt], device)
        elif utt is not None:
            group.append(utt)


def scaled_loglikes(log_post: np.ndarray, log_priors: np.ndarray, acwt: float) -> np.ndarray:
    """``acwt * (log p(s|x) - log p(s))``, (T, P) float32, for the decoder."""
    return (acwt * (log_post - log_priors[None, :])).astype(np.float32)


def argmax_phones(log_post: np.ndarray, ctx: ContextDependency) -> list[str]:
    """The framewise-argmax reading (no HMM): the phone of the best pdf of each
    frame, runs of one phone collapsed."""
    owners = ctx.pdf_phone[log_post.argmax(-1)]
    keep = np.concatenate([[True], owners[1:] != owners[:-1]]) if len(owners) else owners
    return [ctx.phones[i] for i in owners[keep]]



def _with_defaults(recorded: Any) -> Any:
    """A manifest's front-end config with the settings added since it was written (energy,
    pitch) at their defaults, which are what such a bundle computes; other values as they are."""
    if not isinstance(recorded, dict):
        return recorded
    return {**{k: v for k, v in asdict(FeatureConfig()).items() if k in _LATER_FEATURE_FIELDS}, **recorded}


#: FeatureConfig fields that bundles written before them lack.
_LATER_FEATURE_FIELDS = ("energy", "pitch")

@dataclass
class HybridModel:
    """Everything needed to recognise audio, loaded from one model bundle."""

    model_dir: Path
    network: AcousticModel
    feat_cfg: FeatureConfig
    phones: list[str]
    context: ContextDependency
    lang: Lang
    log_priors: np.ndarray
    device: torch.device
    components: dict[str, Any]

    @classmethod
    def load(cls, model_dir: Path, device: torch.device) -> "HybridModel":
        """Load and cross-check a bundle; ModelError names what is missing or inconsistent."""
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise ModelError(f"{model_dir}: model directory does not exist")
        comps = read_manifest(model_dir)
        net_c, feat_c, phone_c, prior_c = (component(comps, n, model_dir)
                                           for n in ("network", "features", "phones", "priors"))
        network = load_model(model_dir, device)
        feat_cfg = FeatureConfig.load(model_dir / "feats.yaml")
        phones = read_phone_list(model_dir / PHONES_TXT)
        expect_equal(model_dir, "the front end (feats.yaml)", _with_defaults(feat_c.get("config")), asdict(feat_cfg))
        expect_equal(model_dir, "the number of phones (phones.txt)", phone_c.get("num_phones"), len(phones))
        ctx = _load_context(model_dir, comps, phones)
        lang = _load_lang(model_dir, comps, ctx)
        expect_equal(model_dir, "the network's input dimension", net_c.get("input_dim"), network.cfg.input_dim)
        expect_equal(model_dir, "the network's output count", net_c.get("num_pdfs"), network.cfg.num_pdfs)
        expect_equal(model_dir, "the network's frame subsampling", net_c.get("frame_subsampling", 1),
                     network.cfg.frame_subsampling)
        if feat_cfg.dim != network.cfg.input_dim:
            raise ModelError(f"{model_dir}: feats.yaml gives {feat_cfg.dim}-dim features, "
                             f"the network expects {network.cfg.input_dim}")
        if network.cfg.num_pdfs != ctx.num_pdfs:
            raise ModelError(f"{model_dir}: network has {network.cfg.num_pdfs} outputs, the context "
                             f"dependency ({TREE_JSON}) has {ctx.num_pdfs} pdfs")
        priors = load_log_priors(model_dir / prior_c["files"][0], network.cfg.num_pdfs)
        model = cls(model_dir, network, feat_cfg, phones, ctx, lang, priors, device, comps)
        model._check_graph_and_decode()
        return model

    @property
    def topology(self) -> Topology:
        return self.context.topology

    @property
    def frame_rate(self) -> FrameRate:
        """The network's output frames: ``frame_subsampling`` feature frames each."""
        return FrameRate(self.feat_cfg.frame_shift_ms / 1000, self.network.cfg.frame_subsampling)

    @cached_property
    def transitions(self) -> Transitions:
        """The transition ids of the model's context dependency (the graph's input labels)."""
        return Transitions(self.context)

    def _check_graph_and_decode(self) -> None:
        """The optional components agree with the rest (graph topology and symbols, tuned acwt)."""
        if "graph" in self.components:
            graph_c = component(self.components, "graph", self.model_dir)
            expect_equal(self.model_dir, "the graph's context dependency", graph_c.get("context"),
                         self.context.summary())
            if read_phone_list(self.model_dir / GRAPH_PHONES) != self.phones:
                raise ModelError(f"{self.model_dir / GRAPH_PHONES}: the graph's phone symbols "
                                 f"differ from the model's {self.model_dir / PHONES_TXT}")
        if "decode" in self.components:
            dec_c = component(self.components, "decode", self.model_dir)
            graph_sha = self.components.get("graph", {}).get("sha256")
            expect_equal(self.model_dir, "the graph the acoustic scale was tuned on",
                         dec_c.get("graph_sha256"), graph_sha)
            expect_equal(self.model_dir, "the tuned acoustic scale (decode.yaml)",
                         dec_c.get("acwt"), _read_acwt(self.model_dir / "decode.yaml"))

    @property
    def graph_path(self) -> Path:
        return self.model_dir / GRAPH_FST

    def decoder(self, beam: float = 13.0) -> WfstDecoder:
        """A decoder over the bundle's graph, whose file is checked against the manifest.

        Its labels are not walked again: :func:`install_graph` checked them
        (:func:`check_graph_for_model`) for the file with this SHA-256.
        """
        graph_c = component(self.components, "graph", self.model_dir,
                            "install one with 'asr decode MODEL DEV OUT --graph-dir data/lang --tune'")
        expect_equal(self.model_dir, "the graph file's SHA-256", graph_c.get("sha256"),
                     file_sha256(self.graph_path))
        return WfstDecoder(self.graph_path, self.transitions, beam=beam, check=False)

    @property
    def acwt(self) -> float:
        """The acoustic scale tuned on dev; ModelError when none was."""
        dec_c = component(self.components, "decode", self.model_dir,
                          "no acoustic scale was tuned: run 'asr decode MODEL DEV OUT --tune' "
                          "on a dev set first")
        return float(dec_c["acwt"])

    def posteriors(self, feats: np.ndarray) -> np.ndarray:
        return log_posteriors(self.network, feats, self.device)

    def set_posteriors(self, feats: Mapping[str, np.ndarray]) -> Iterator[tuple[str, np.ndarray]]:
        """(utt, log posteriors (T, P)) of every utterance of ``feats``, batched through the network."""
        return batch_log_posteriors(self.network, feats, self.device)

    def phone_symbols(self, phone_ids: list[int]) -> list[str]:
        """The phones of a decoded path's output labels (ids of phones.txt, 1-based)."""
        return [self.phones[i - 1] for i in phone_ids]


def _read_acwt(path: Path) -> float:
    try:
        return float(yaml.safe_load(path.read_text())["acwt"])
    except (OSError, yaml.YAMLError, TypeError, KeyError, ValueError) as exc:
        raise ModelError(f"{path}: no valid 'acwt' ({exc!r})") from None


def _load_context(model_dir: Path, comps: dict[str, Any], phones: list[str]) -> ContextDependency:
    """The bundle's context dependency (CI from the topology for bundles without one)."""
    topo_c = component(comps, "topology", model_dir)
    topology = Topology.from_dict(topo_c, f"{model_dir}/bundle.yaml: the topology component")
    if "context" not in comps:  # written before tree.json existed: a CI model
        return ContextDependency.ci(phones, topology)
    ctx_c = component(comps, "context", model_dir)
    ctx = ContextDependency.load(model_dir / TREE_JSON)
    ctx.check_phones(phones, str(model_dir / TREE_JSON))
    expect_equal(model_dir, "the context dependency's topology", topology.to_dict(), ctx.topology.to_dict())
    expect_equal(model_dir, "the context dependency (tree.json)",
                 {k: ctx_c.get(k) for k in ctx.summary()}, ctx.summary())
    return ctx


def _load_lang(model_dir: Path, comps: dict[str, Any], ctx: ContextDependency) -> Lang:
    """The bundle's copy of its lang dir; TIMIT's 48-phone lang for bundles written before
    the lang was copied (all of them were trained on it)."""
    if "lang" not in comps:
        lang = timit_lang()
        if list(lang.phones) != ctx.phones:
            raise ModelError(f"{model_dir}/bundle.yaml: no lang component, and the model's phones "
                             f"are not TIMIT's 48 (the only lang of bundles without one)")
        return replace(lang, topology=ctx.topology)
    lang_c = component(comps, "lang", model_dir)
    try:
        lang = Lang.load(model_dir / LANG_SUBDIR)
    except DataError as exc:
        raise ModelError(f"{model_dir}: the bundle's lang: {exc}") from None
    expect_equal(model_dir, "the lang (lang/)", lang_c.get("sha256"), lang.digest())
    if list(lang.phones) != ctx.phones or lang.topology != ctx.topology:
        raise ModelError(f"{model_dir / LANG_SUBDIR}: its phones or topology differ from the "
                         f"context dependency's ({TREE_JSON})")
    return lang


def copy_lang(lang: Lang, model_dir: Path) -> dict:
    """Write ``lang`` into ``model_dir/lang/``; return the bundle's lang component."""
    lang.write(Path(model_dir) / LANG_SUBDIR)
    copy = Lang.load(Path(model_dir) / LANG_SUBDIR)
    if copy != lang:
        raise ModelError(f"{Path(model_dir) / LANG_SUBDIR}: the lang reads back otherwise than it was written")
    return {"files": [f"{LANG_SUBDIR}/{name}" for name in LANG_FILES], "sha256": copy.digest()}


#: What the bundle's features component says about CMVN, per ``FeatureConfig.cmvn``.
CMVN_DESCRIPTION = {
    "speech": {"training": "per utterance, speech frames (Silero VAD)",
               "transcribe": "per file, speech frames (Silero VAD)"},
    "speaker": {"training": "per speaker, all frames", "transcribe": "per file, all frames"},
}


def write_training_manifest(model_dir: Path, feat_cfg: FeatureConfig, ctx: ContextDependency,
                            lang: Lang, input_dim: int, targets: dict, frame_subsampling: int = 1) -> None:
    """Record the components training made (network, features, phones, the lang's copy,
    topology, context dependency, priors); ``targets`` says where the frame targets came from."""
    num_pdfs = ctx.num_pdfs
    if list(lang.phones) != ctx.phones or lang.topology != ctx.topology:
        raise ModelError(f"{model_dir}: the lang's phones or topology differ from the model's")
    update_manifest(
        model_dir,
        network={"files": ["model.yaml", "final.pt"], "input_dim": input_dim, "num_pdfs": num_pdfs,
                 "frame_subsampling": frame_subsampling, "targets": targets},
        features={"files": ["feats.yaml"], "config": asdict(feat_cfg),
                  "cmvn": CMVN_DESCRIPTION[feat_cfg.cmvn]},
        phones={"files": [PHONES_TXT], "num_phones": len(ctx.phones)},
        lang=copy_lang(lang, model_dir),
        topology=ctx.topology.to_dict(),
        context={"files": [TREE_JSON], **ctx.summary()},
        priors={"files": ["log_priors.txt"], "num_pdfs": num_pdfs},
    )


def check_graph_for_model(model: HybridModel, graph: Path) -> tuple[Path, dict]:
    """Check a decoding graph against the model; return (its phones.txt, its settings).

    The graph's directory must hold the phone symbol table it was built with
    (equal to the model's) and ``HCG.yaml``, which must record transition-id
    input labels and this model's context dependency; its labels must be
    transition ids and phones of this model (no disambiguation symbol left).

    Raises:
        GraphError: naming the graph and what does not match.
    """
    graph = Path(graph)
    fst = load_graph(graph)  # GraphError on a missing, unreadable or empty graph
    symbols = graph.with_name(PHONES_TXT)
    if read_phone_table(symbols) != model.phones:
        raise GraphError(f"{symbols}: the graph's phone symbols differ from the model's "
                         f"{model.model_dir / PHONES_TXT}")
    settings = read_graph_settings(graph)
    if settings is None or settings.get("input_labels") != INPUT_LABELS:
        raise GraphError(f"{graph.with_name(GRAPH_YAML)}: missing, unreadable, or written for a graph "
                         f"without transition ids (an older format); rebuild the graph with "
                         f"'asr make-graph'")
    if settings.get("context") != model.context.summary():
        raise GraphError(f"{graph}: built for another context dependency "
                         f"({settings.get('context')}); the model has {model.context.summary()} "
                         f"(build the graph with this model's tree.json)")
    check_labels(fst, model.transitions.num_tids, len(model.phones), str(graph))
    return symbols, settings


def install_graph(model: HybridModel, graph: Path) -> None:
    """Copy a checked decoding graph and its phone symbols into the bundle (atomically).

    A graph that differs from the installed one invalidates the tuned
    acoustic scale (the ``decode`` component is dropped).
    """
    symbols, settings = check_graph_for_model(model, graph)
    sha = file_sha256(graph)
    for src, rel in ((graph, GRAPH_FST), (symbols, GRAPH_PHONES)):
        with atomic_path(model.model_dir / rel) as tmp:
            shutil.copyfile(src, tmp)
    stale = model.components.get("graph", {}).get("sha256") != sha
    model.components = update_manifest(
        model.model_dir, graph={"files": [GRAPH_FST, GRAPH_PHONES], "sha256": sha,
                                "source": str(Path(graph).resolve()), **settings},
        **({"decode": None} if stale else {}))
    if stale:
        log.info("%s: new decoding graph installed from %s", model.model_dir, graph)


def save_acwt(model: HybridModel, acwt: float, dev_dir: Path, dev_per: float,
              sweep: dict[float, float]) -> None:
    """Store the acoustic scale chosen on dev (``decode.yaml`` and the manifest)."""
    atomic_write_text(model.model_dir / "decode.yaml", yaml.safe_dump(
        {"acwt": acwt, "tuned_on": str(dev_dir), "dev_per": dev_per,
         "sweep": {float(k): float(v) for k, v in sweep.items()}}))
    model.components = update_manifest(model.model_dir, decode={
        "files": ["decode.yaml"], "acwt": acwt, "tuned_on": str(dev_dir),
        "graph_sha256": model.components["graph"]["sha256"]})
