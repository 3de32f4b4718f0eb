from pathlib import Path

import pytest
import yaml

from asr.errors import ModelError
from asr.steps.results import results_table
from asr.steps.train_am import check_config


def test_check_config_refuses_a_different_config(tmp_path):
    (tmp_path / "model.yaml").write_text(yaml.safe_dump({"hidden": 256}))
    check_config(tmp_path, "model.yaml", {"hidden": 256})  # same: fine
    check_config(tmp_path, "train.yaml", {"lr": 0.1})       # absent: fine
    with pytest.raises(ModelError, match="trained with a different config"):
        check_config(tmp_path, "model.yaml", {"hidden": 128})


def test_check_config_lets_epochs_grow_but_not_shrink(tmp_path):
    """A run may be continued to more epochs (the trainer resumes from its last
    checkpoint); fewer epochs, or any other change with them, is refused."""
    (tmp_path / "train.yaml").write_text(yaml.safe_dump({"epochs": 4, "lr": 0.002}))
    check_config(tmp_path, "train.yaml", {"epochs": 8, "lr": 0.002}, may_grow=("epochs",))
    with pytest.raises(ModelError, match="continued to more, not fewer"):
        check_config(tmp_path, "train.yaml", {"epochs": 2, "lr": 0.002}, may_grow=("epochs",))
    with pytest.raises(ModelError, match="trained with a different config"):
        check_config(tmp_path, "train.yaml", {"epochs": 8, "lr": 0.001}, may_grow=("epochs",))
    with pytest.raises(ModelError, match="trained with a different config"):
        check_config(tmp_path, "train.yaml", {"epochs": 8, "lr": 0.002})


def test_check_config_lets_free_settings_change(tmp_path):
    """Settings that do not change the weights (where the features are held) may change on
    resume; the others still may not."""
    from asr.nn.train import TrainConfig

    (tmp_path / "train.yaml").write_text(yaml.safe_dump({"lr": 0.002, "resident": True}))
    check_config(tmp_path, "train.yaml", {"lr": 0.002, "resident": False}, free=TrainConfig.FREE)
    with pytest.raises(ModelError, match="trained with a different config"):
        check_config(tmp_path, "train.yaml", {"lr": 0.001, "resident": False}, free=TrainConfig.FREE)

def test_results_table(tmp_path):
    systems = []
    for name, pdfs, alignment, per in (("ci_lstm", 144, "uniform split", 20.5),
                                       ("cd_lstm_500", 500, ["/ali_train", "/ali_dev"], 18.25)):
        exp = tmp_path / name
        for sub, p in (("decode_dev", per), ("decode_test", per + 1)):
            (exp / sub).mkdir(parents=True)
            frame = ({"frame_acc": 61.5, "frame_acc_targets": "realignment /exp/ci_lstm/ali_dev"}
                     if name == "cd_lstm_500" and sub == "decode_dev" else {"frame_acc": 70.0})  # old scores: no source
            (exp / sub / "scores.yaml").write_text(yaml.safe_dump(
                {"per": p, "per_argmax": 30.0, "acwt": 0.2, "num_pdfs": pdfs, **frame}))
        if name == "cd_lstm_500":  # only this system decoded words and the held-out voices
            (exp / "decode_test_unseen").mkdir()
            (exp / "decode_test_unseen/scores.yaml").write_text(yaml.safe_dump({"per": 33.0}))
            for sub, w in (("decode_words_dev", 14.5), ("decode_words_test", 25.125), ("decode_words_test_unseen", 40.0),
                           ("decode_words_test_neural", 55.5)):
                (exp / sub).mkdir()
                (exp / sub / "scores.yaml").write_text(yaml.safe_dump({"wer": w}))
            for sub, r in (("decode_rnn_dev", 16.0), ("decode_rnn_test", 17.5)):  # and the RNN decoder
                (exp / sub).mkdir()
                (exp / sub / "scores.yaml").write_text(yaml.safe_dump({"per": r, "decoder": "rnn"}))
        (exp / "targets.yaml").write_text(yaml.safe_dump({"alignment": alignment}))
        (exp / "history.yaml").write_text(yaml.safe_dump([{"seconds": 100.4}, {"seconds": 50.2}]))
        systems.append(exp)
    times = tmp_path / "times.tsv"
    times.write_text("0 corpus\t12\n4 train CI LSTM\t300\n")
    table = results_table(systems, times, out=tmp_path / "RESULTS.md")
    assert ("| ci_lstm | 144 | uniform | 20.50 | 21.50 | — | 30.00 | 70.00 | uniform split | 0.2 | — | — | — | — | — "
            "| — | — | 151 |") in table
    assert ("| cd_lstm_500 | 500 | realigned | 18.25 | 19.25 | 33.00 | 30.00 | 61.50 | realignment ci_lstm/ali_dev | 0.2 "
            "| 16.00 | 17.50 | — | 14.50 | 25.12 | 40.00 | 55.50 | 151 |") in table
    assert "dev frame acc | frame targets" in table and "against each model's own training targets" in table
    assert "| 4 train CI LSTM | 300 |" in table
    assert (systems[0] / "RESULTS.md").read_text().startswith("# Results: ci_lstm")
    assert table in (tmp_path / "RESULTS.md").read_text()


def test_read_train_conf_errors_name_the_file(tmp_path):
    from asr.steps.train_am import read_train_conf

    conf = tmp_path / "c.yaml"
    conf.write_text("model:\n  hidden: 64\ntrain:\n  epochs: 3\naugment:\n  speed: [0.9, 1.1]\n  time_masks: 2\n")
    opts, tcfg, aug = read_train_conf(conf)
    assert opts == {"hidden": 64} and tcfg.epochs == 3
    assert aug.copies == ["speed0.9", "speed1.1"] and aug.masks and aug.time_masks == 2
    for text, pattern in [("train:\n  epoch: 3\n", "unexpected keyword"),
                          ("model:\n  hidden: 8\n  proj: 8\n", "proj"),
                          ("modle: {}\n", "unknown sections"),
                          ("augment:\n  speed: [1.0]\n", "speed factors"),
                          ("augment:\n  vtlp: 0.7\n", "vtlp must lie"),
                          ("augment:\n  mask: 2\n", "unexpected keyword"),
                          ("model: [1, 2\n", "bad training config"),
                          ("train:\n  tbptt: 20\n", "tbptt .* needs a unidirectional LSTM; this model is bidirectional"),
                          ("model: {kind: dnn, bidirectional: false}\ntrain: {tbptt: 20}\n", "this model is a dnn"),
                          ("model: {peephole: true, kind: dnn}\n", "peephole is an LSTM setting"),
                          ("train:\n  batch_frames: 0\n", "batch_frames must be at least 1")]:
        conf.write_text(text)
        with pytest.raises(ModelError, match=pattern):
            read_train_conf(conf)
    with pytest.raises(ModelError, match="nope.yaml: training config not found"):
        read_train_conf(tmp_path / "nope.yaml")


def test_every_recipe_conf_builds_and_runs_one_step():
    """Each training YAML under recipes/*/conf/ is accepted, its network takes a training
    step, and every model trains with speed perturbation (chosen on the synthetic dev set)."""
    import torch

    from asr.nn.model import ModelConfig, build_model
    from asr.steps.train_am import read_train_conf

    root = Path(__file__).resolve().parents[1]
    confs = sorted(c for c in root.glob("recipes/*/conf/*.yaml") if not c.name.startswith(("phone_lm", "mmi")))
    assert len(confs) >= 11
    for conf in confs:
        opts, tcfg, aug = read_train_conf(conf)
        assert tcfg.epochs >= 1 and aug.copies == ["speed0.9", "speed1.1"], conf
        model = build_model(ModelConfig(input_dim=40, num_pdfs=48, **opts))
        logits = model(torch.randn(2, 30, 40), torch.tensor([30, 17]))
        logits.logsumexp(-1).mean().backward()
        assert logits.shape == (2, 30, 48), conf
        assert all(p.grad is not None for p in model.parameters()), conf


def test_every_mmi_conf_reads_and_a_bad_one_is_named(tmp_path):
    from asr.errors import ModelError
    from asr.steps.train_mmi import MmiConfig, read_mmi_conf

    confs = sorted(Path(__file__).resolve().parents[1].glob("recipes/*/conf/mmi*.yaml"))
    assert confs
    for conf in confs:
        cfg = read_mmi_conf(conf)
        assert cfg.epochs >= 1 and 0 < cfg.lr < 1e-3 and cfg.ce_weight >= 0, conf
    assert read_mmi_conf(None) == MmiConfig()
    bad = tmp_path / "mmi.yaml"
    bad.write_text("epochs: 1\nlearning_rate: 0.1\n")
    with pytest.raises(ModelError, match="bad MMI config"):
        read_mmi_conf(bad)


def test_every_phone_lm_conf_builds_and_steps():
    """Each phone LM YAML under recipes/*/conf/ is accepted and its network takes a step."""
    import torch

    from asr.nn.phone_lm import PhoneLm
    from asr.steps.train_phone_lm import read_phone_lm_conf

    confs = sorted(Path(__file__).resolve().parents[1].glob("recipes/*/conf/phone_lm*.yaml"))
    assert len(confs) >= 3
    for conf in confs:
        lm = PhoneLm(read_phone_lm_conf(conf, ["sil", "a", "b"]))
        logits, _ = lm(torch.randint(0, 4, (2, 5)))
        logits.logsumexp(-1).mean().backward()
        assert logits.shape == (2, 5, 4), conf
    with pytest.raises(ModelError, match="bad phone LM config"):
        read_phone_lm_conf(confs[0], ["sil"], hidden=0)


def test_a_model_yaml_from_before_the_kind_setting_reads_as_lstm(tmp_path):
    from dataclasses import asdict

    from asr.nn.model import ModelConfig

    cfg = asdict(ModelConfig(input_dim=40, num_pdfs=48))
    old = {k: v for k, v in cfg.items() if k not in ("kind", "context")}  # the settings added later
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(old))
    check_config(tmp_path, "model.yaml", cfg, defaults=ModelConfig.defaults())  # resumes
    assert ModelConfig.load(tmp_path / "model.yaml") == ModelConfig(input_dim=40, num_pdfs=48)
    with pytest.raises(ModelError, match="different config"):
        check_config(tmp_path, "model.yaml", {**cfg, "kind": "dnn"}, defaults=ModelConfig.defaults())


def test_bad_feature_config_names_the_file(tmp_path):
    from asr.features.extract import FeatureConfig

    (tmp_path / "feats.yaml").write_text("kind: plp\n")
    with pytest.raises(ModelError, match="feats.yaml: bad feature config"):
        FeatureConfig.load(tmp_path / "feats.yaml")
