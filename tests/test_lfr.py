"""A lower frame rate model end to end on the toy lang (tests/toy_corpus.py), through the
command line: the lang with a 1-state HMM for every phone (``asr lang-topology``) → a CI
BLSTM emitting one output every 3 feature frames (30 ms) → its realignment at 30 ms → the
tree on every third frame → a CD model at 30 ms → graph → decoding. The toy's phone Q lasts
30–50 ms: one or two output frames, and it must still be decoded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from asr.cli import main
from asr.decode.hybrid import HybridModel
from asr.hmm.alignment import read_alignments
from asr.phones.lang import Lang
from asr.phones.topology import Topology
from toy_corpus import PHONES, TOY, phone_corpus, phone_lm_text

#: 18 s on 2 cores: slow, to keep the default suite under 5 minutes (the unit tests of the lower
#: frame rate, tests/test_frame_rate.py and test_nn.py's, are in it)
pytestmark = pytest.mark.slow

CONF = """model: {num_layers: 1, hidden: 64, proj: 0, bidirectional: true, dropout: 0.0}
train: {epochs: 25, lr: 0.01, batch_frames: 600, chunk_frames: 100, seed: 0}
"""


def _run(*args) -> None:
    assert main([str(a) for a in args]) == 0, args


@pytest.fixture(scope="module")
def lfr(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("lfr")
    TOY.write(d / "lang")
    _run("lang-topology", d / "lang", d / "lang1", "--states", 1)
    train, dev = phone_corpus(d, "train", 4, 0), phone_corpus(d, "dev", 1, 1)
    (d / "conf.yaml").write_text(CONF)
    _run("make-feats", d / "feats", train, dev)
    common = ("--lang", d / "lang1", "--conf", d / "conf.yaml", "--frame-subsampling", 3, "--device", "cpu")
    _run("train", train, dev, d / "ci", *common)
    for name, data in (("train", train), ("dev", dev)):
        _run("align", d / "ci", data, d / f"ci/ali_{name}", "--device", "cpu")
    _run("build-tree", train, d / "ci/ali_train", d / "tree", "--lang", d / "lang1", "--num-leaves", 30,
         "--min-occupancy", 10, "--frame-subsampling", 3)
    # the phone bigram of 3,000 strings (the toy corpus's few dozen give backoff weights above 1)
    _run("make-graph", phone_lm_text(d / "lm_text", 3000, 5), d / "lm", "--lang", d / "lang1", "--order", 2,
         "--tree", d / "tree/tree.json", "--graph-dir", d / "tree")
    _run("train", train, dev, d / "cd", *common, "--tree", d / "tree/tree.json", "--ali-train",
         d / "ci/ali_train", "--ali-dev", d / "ci/ali_dev", "--init-from", d / "ci")
    _run("decode", d / "cd", dev, d / "cd/decode_dev", "--graph-dir", d / "tree", "--tune", "--device", "cpu")
    return d


def test_the_lang_with_another_topology(lfr):
    lang1 = Lang.load(lfr / "lang1")
    assert lang1.topology == Topology(1, 0.5) and lang1.phones == TOY.phones
    assert lang1.score_map == TOY.score_map and not (lfr / "lang1/HCG.fst").exists()


def test_the_realignment_is_at_30_ms_and_keeps_every_phone(lfr):
    aset = read_alignments(lfr / "ci/ali_train")
    assert aset.frame_shift_s == pytest.approx(0.03) and aset.topology == Topology(1, 0.5)
    feats = yaml.safe_load((lfr / "train/feats.yaml").read_text())
    assert feats["frame_shift_ms"] == 10.0
    segments = {}
    for line in (lfr / "train/phone_segments").read_text().splitlines():
        utt, _, _, phone = line.split()[:4]
        segments.setdefault(utt, []).append(phone)
    for utt in aset.utts:
        assert [aset.phones[r.phone] for r in aset.runs(utt)] == segments[utt]
    lengths = [r.end - r.start for u in aset.utts for r in aset.runs(u) if aset.phones[r.phone] == "Q"]
    assert min(lengths) == 1  # a 30–50 ms phone of one output frame


def test_the_lower_rate_model_decodes_every_phone(lfr):
    model = HybridModel.load(lfr / "cd", torch.device("cpu"))
    assert model.network.cfg.frame_subsampling == 3 and model.frame_rate.shift_s == pytest.approx(0.03)
    manifest = yaml.safe_load((lfr / "cd/bundle.yaml").read_text())
    assert manifest["components"]["network"]["frame_subsampling"] == 3
    scores = yaml.safe_load((lfr / "cd/decode_dev/scores.yaml").read_text())
    assert scores["per"] <= 10.0, scores  # measured 5.00 (the 10 ms toy model: 3.33); one that learnt nothing ~90
    hyps = [line.split()[1:] for line in (lfr / "cd/decode_dev/hyp.txt").read_text().splitlines()]
    assert "Q" in {p for h in hyps for p in h} and set(p for h in hyps for p in h) <= set(PHONES)
