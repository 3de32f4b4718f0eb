"""MMI training continues a CE model: on the tiny corpus the objective rises epoch by epoch,
the bundle it writes loads and decodes, and a run resumes from its checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def ce_model(tiny_synth_corpus: Path, tmp_path_factory) -> tuple[Path, Path]:
    """(a CI DNN trained 6 epochs with CE on the tiny corpus's uniform split, its data dir root),
    the phone bigram's G.fst in <root>/lang."""
    from asr.corpus.timit import prepare_timit
    from asr.features.extract import FeatureConfig
    from asr.features.storage import make_features
    from asr.hmm.context import ContextDependency
    from asr.lang.graph import make_decoding_graph
    from asr.nn.train import TrainConfig
    from asr.phones.timit import timit_lang
    from asr.steps.train_am import train_am

    out = tmp_path_factory.mktemp("mmi")
    prepare_timit(tiny_synth_corpus, out / "data", tiny_synth_corpus / "dev_spk.list",
                  tiny_synth_corpus / "test_spk.list")
    for name in ("train", "dev"):
        make_features(out / "data" / name, out / "feats", FeatureConfig(cmvn="speech"))
    lang = timit_lang()
    ctx = ContextDependency.ci(list(lang.phones), lang.topology)
    opts = {"kind": "dnn", "num_layers": 2, "hidden": 128, "context": 4, "dropout": 0.0, "bidirectional": False}
    train_am(out / "data/train", out / "data/dev", out / "ce", opts,
             TrainConfig(epochs=6, lr=0.002, batch_frames=4000, chunk_frames=400, seed=0), CPU, ctx, lang)
    make_decoding_graph(out / "lang", ctx, out / "data/train/phone_text")
    return out / "ce", out


def test_mmi_raises_the_objective_and_writes_a_bundle_that_resumes(ce_model):
    from asr.cli import main
    from asr.steps.train_mmi import MmiConfig, train_mmi

    ce_dir, root = ce_model
    out = root / "mmi"
    cfg = MmiConfig(epochs=2, lr=2e-4, acwt=0.3, batch_frames=3000)
    args = (ce_dir, root / "data/train", root / "data/dev", None, root / "lang/G.fst")
    history = train_mmi(*args, out, cfg, CPU)
    # measured: train MMI per frame -0.269 then -0.255, dev -0.296 then -0.290
    assert history[1]["mmi"] == pytest.approx(-0.27, abs=0.05)
    assert history[2]["mmi"] - history[1]["mmi"] > 0.005
    assert history[2]["dev"]["mmi"] - history[1]["dev"]["mmi"] > 0.002
    assert yaml.safe_load((out / "mmi.yaml").read_text())["epochs"] == 2
    # the bundle decodes as any other: graph installed, acoustic scale tuned on dev
    assert main(["decode", str(out), str(root / "data/dev"), str(out / "decode_dev"), "--graph-dir",
                 str(root / "lang"), "--tune"]) == 0
    per = yaml.safe_load((out / "decode_dev/scores.yaml").read_text())["per"]
    assert per < 65.0  # measured 57.98
    assert train_mmi(*args, out, cfg, CPU) == {}  # done: nothing to resume
    with pytest.raises(Exception, match="mmi.yaml"):
        train_mmi(*args, out, MmiConfig(epochs=2, lr=1e-3, acwt=0.3, batch_frames=3000), CPU)
