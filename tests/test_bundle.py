"""The model bundle: manifest checks in HybridModel.load, graph installation,
the tuned acoustic scale, and per-utterance decode failures."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import kaldifst
import numpy as np
import pytest
import torch
import yaml

from asr.decode.bundle import BUNDLE_YAML, read_manifest
from asr.decode.hybrid import HybridModel, install_graph, save_acwt, write_training_manifest
from asr.errors import GraphError, ModelError
from asr.features.extract import FeatureConfig
from asr.hmm.context import TREE_JSON, ContextDependency, Split
from asr.phones.topology import DEFAULT_TOPOLOGY as CI_TOPOLOGY
from asr.lang.graph import make_decoding_graph
from asr.phones.lang import Lang
from asr.phones.timit import PHONES48, timit_lang
from asr.symbols import write_symbol_table
from asr.nn.model import LstmAcousticModel, ModelConfig
from asr.nn.priors import save_log_priors
from asr.steps.decode import decode_with

PHONES = list(PHONES48)
CPU = torch.device("cpu")
CI = ContextDependency.ci(PHONES)


def toy_cd_tree(phones: list[str] = PHONES) -> ContextDependency:
    """A triphone tree: every (phone, state) split once on "is the left phone one of the
    first ten?" (2 pdfs per root), silence kept CI."""
    nodes, roots = [], []
    for i, phone in enumerate(phones):
        states = []
        for _ in range(3):
            base = len(nodes)
            if phone == "sil":
                nodes.append(len([n for n in nodes if isinstance(n, int)]))
            else:
                pdf = len([n for n in nodes if isinstance(n, int)])
                nodes += [Split(-1, 0, base + 1, base + 2), pdf, pdf + 1]
            states.append(base)
        roots.append(states)
    return ContextDependency(phones, CI_TOPOLOGY, 3, 1, [list(range(1, 11))], nodes, roots, ["sil"])


def phone_text(path: Path, phones: list[str], seed: int = 0) -> Path:
    rng = random.Random(seed)
    path.write_text("".join(f"u{u:03d} sil {' '.join(rng.choices(phones, k=12))} sil\n"
                            for u in range(100)))
    return path


@pytest.fixture(scope="module")
def langs(tmp_path_factory) -> dict[str, Path]:
    """HCG.fst graphs: a phone bigram, a trigram, one built for 47 phones, and a CD bigram."""
    d = tmp_path_factory.mktemp("langs")
    text = phone_text(d / "text", PHONES)
    return {"bigram": make_decoding_graph(d / "bg", CI, text, order=2),
            "trigram": make_decoding_graph(d / "tg", CI, text, order=3),
            "47": make_decoding_graph(d / "p47", ContextDependency.ci(PHONES[:-1]),
                                      phone_text(d / "t47", PHONES[:-1])),
            "cd": make_decoding_graph(d / "bg", toy_cd_tree(), text, order=2, graph_dir=d / "cd")}


def make_bundle(model_dir: Path, ctx: ContextDependency = CI, feat_cfg: FeatureConfig | None = None,
                targets: dict | None = None) -> Path:
    """A bundle as training writes it, with an untrained 1-layer network (seeded: the same
    weights every time); ``targets``: what its training targets are recorded to be."""
    feat_cfg = feat_cfg or FeatureConfig(cmvn="speech")
    cfg = ModelConfig(input_dim=feat_cfg.dim, num_pdfs=ctx.num_pdfs,
                      num_layers=1, hidden=16, bidirectional=False, dropout=0.0)
    model_dir.mkdir(parents=True)
    torch.manual_seed(0)
    cfg.save(model_dir / "model.yaml")
    torch.save({"model": LstmAcousticModel(cfg).state_dict(), "epoch": 1}, model_dir / "final.pt")
    feat_cfg.save(model_dir / "feats.yaml")
    write_symbol_table(ctx.phones, model_dir / "phones.txt")
    save_log_priors(model_dir / "log_priors.txt", np.full(cfg.num_pdfs, -np.log(cfg.num_pdfs)))
    ctx.save(model_dir / TREE_JSON)
    lang = timit_lang() if ctx.phones == PHONES else Lang(ctx.phones, ("sil",), "sil", ctx.topology)
    write_training_manifest(model_dir, feat_cfg, ctx, lang, cfg.input_dim, targets or {"alignment": "uniform"})
    return model_dir


@pytest.fixture
def bundle(tmp_path) -> Path:
    return make_bundle(tmp_path / "model")


def test_fresh_bundle_loads_but_has_no_graph_or_acwt(bundle):
    model = HybridModel.load(bundle, CPU)
    assert model.phones == PHONES and model.topology == CI_TOPOLOGY
    assert model.context.digest() == CI.digest() and model.transitions.num_tids == 288
    assert (bundle / "phones.txt").read_text().startswith("<eps>\t0\naa\t1\n")  # a symbol table
    with pytest.raises(ModelError, match="no acoustic scale was tuned"):
        model.acwt  # no silent default any more
    with pytest.raises(ModelError, match="no graph component"):
        model.decoder()


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / BUNDLE_YAML).unlink(), "bundle.yaml: not found"),
    (lambda d: (d / BUNDLE_YAML).write_text("format_version: 9\ncomponents: {}\n"),
     "format version 9"),
    (lambda d: (d / "log_priors.txt").unlink(), "log_priors.txt: file of the bundle's priors component"),
    (lambda d: FeatureConfig(num_mel_bins=23).save(d / "feats.yaml"), "front end"),
    (lambda d: write_symbol_table(PHONES[:-1], d / "phones.txt"), "number of phones"),
    (lambda d: save_log_priors(d / "log_priors.txt", np.zeros(10)), "expected 144 finite log priors"),
    (lambda d: (d / BUNDLE_YAML).write_text(
        (d / BUNDLE_YAML).read_text().replace("states_per_phone: 3", "states_per_phone: 2")),
     "the context dependency's topology"),
    (lambda d: (d / TREE_JSON).write_text("{not json"), "tree.json: not JSON"),
    (lambda d: (d / TREE_JSON).unlink(), "tree.json: file of the bundle's context component"),
    (lambda d: toy_cd_tree().save(d / TREE_JSON), r"the context dependency \(tree.json\)"),
    (lambda d: ContextDependency.ci(PHONES[:-1] + ["zz"]).save(d / TREE_JSON),
     "phone list differs from the context dependency's"),
])
def test_load_names_a_missing_or_inconsistent_component(bundle, damage, message):
    damage(bundle)
    with pytest.raises(ModelError, match=message):
        HybridModel.load(bundle, CPU)


def test_graph_install_and_tuning_are_recorded(bundle, langs):
    model = HybridModel.load(bundle, CPU)
    install_graph(model, langs["bigram"])
    assert (bundle / "graph/phones.txt").read_bytes() == (bundle / "phones.txt").read_bytes()
    save_acwt(model, 0.7, Path("data/dev"), 20.0, {0.7: 20.0, 1.0: 21.0})
    again = HybridModel.load(bundle, CPU)
    assert again.acwt == 0.7
    decode = read_manifest(bundle)["decode"]
    assert decode["tuned_on"] == "data/dev" and decode["graph_sha256"] == read_manifest(bundle)["graph"]["sha256"]
    assert read_manifest(bundle)["graph"]["lm_order"] == 2
    # the same graph again keeps the tuning; another graph invalidates it
    install_graph(again, langs["bigram"])
    assert HybridModel.load(bundle, CPU).acwt == 0.7
    install_graph(again, langs["trigram"])
    with pytest.raises(ModelError, match="no acoustic scale was tuned"):
        HybridModel.load(bundle, CPU).acwt


def test_decode_yaml_edited_by_hand_is_inconsistent(bundle, langs):
    model = HybridModel.load(bundle, CPU)
    install_graph(model, langs["bigram"])
    save_acwt(model, 0.7, Path("dev"), 20.0, {0.7: 20.0})
    (bundle / "decode.yaml").write_text("acwt: 0.2\n")
    with pytest.raises(ModelError, match="tuned acoustic scale"):
        HybridModel.load(bundle, CPU)


def test_graph_replaced_after_install_is_detected(bundle, langs):
    model = HybridModel.load(bundle, CPU)
    install_graph(model, langs["bigram"])
    shutil.copyfile(langs["trigram"], bundle / "graph/HCG.fst")
    with pytest.raises(ModelError, match="SHA-256"):
        HybridModel.load(bundle, CPU).decoder()


def copy_lang(src: Path, dst: Path) -> Path:
    shutil.copytree(src.parent, dst)
    return dst / "HCG.fst"


def test_install_graph_rejects_graphs_that_do_not_fit(bundle, langs, tmp_path):
    model = HybridModel.load(bundle, CPU)
    with pytest.raises(GraphError, match="phone symbols differ"):
        install_graph(model, langs["47"])
    no_yaml = copy_lang(langs["bigram"], tmp_path / "no_yaml")
    (no_yaml.parent / "HCG.yaml").unlink()
    with pytest.raises(GraphError, match="HCG.yaml: missing"):
        install_graph(model, no_yaml)
    old_format = copy_lang(langs["bigram"], tmp_path / "old")
    settings = yaml.safe_load((old_format.parent / "HCG.yaml").read_text())
    del settings["input_labels"]  # a graph of pdf labels, as built before transition ids
    (old_format.parent / "HCG.yaml").write_text(yaml.safe_dump(settings))
    with pytest.raises(GraphError, match="without transition ids"):
        install_graph(model, old_format)
    with pytest.raises(GraphError, match="built for another context dependency"):
        install_graph(model, langs["cd"])
    for label, message in (("olabel", "output label 49 is not one of the 48 phones"),
                           ("ilabel", "input label 289 exceeds the model's 288 transition ids")):
        bad = copy_lang(langs["bigram"], tmp_path / label)
        fst = kaldifst.StdVectorFst()
        fst.add_state(), fst.add_state()
        fst.start = 0
        fst.set_final(1, 0.0)
        ilabel, olabel = (1, 49) if label == "olabel" else (289, 1)
        fst.add_arc(0, kaldifst.StdArc(ilabel, olabel, 0.0, 1))
        fst.write(str(bad))
        with pytest.raises(GraphError, match=message):
            install_graph(model, bad)
    assert "graph" not in read_manifest(bundle)  # nothing was installed


def test_one_failing_utterance_is_counted_not_fatal(bundle, langs, caplog):
    model = HybridModel.load(bundle, CPU)
    install_graph(model, langs["bigram"])
    rng = np.random.default_rng(0)
    post = {f"u{i}": np.log(rng.dirichlet(np.ones(144), size=60)).astype(np.float32) for i in range(3)}
    post["u1"][10, 5] = np.nan  # a broken network output for one utterance
    out = decode_with(model, model.decoder(), post, acwt=1.0)
    assert sorted(out.hyps) == ["u0", "u2"] and all(out.hyps[u] for u in out.hyps)
    assert list(out.failed) == ["u1"] and "NaN" in out.failed["u1"]
    assert "1 of 3 utterances could not be decoded" in caplog.text


def test_bundle_without_context_component_loads_as_ci(bundle):
    """A bundle written before tree.json existed is read as CI, with the same pdf numbering."""
    (bundle / TREE_JSON).unlink()
    manifest = yaml.safe_load((bundle / BUNDLE_YAML).read_text())
    del manifest["components"]["context"]
    (bundle / BUNDLE_YAML).write_text(yaml.safe_dump(manifest))
    model = HybridModel.load(bundle, CPU)
    assert model.context.is_ci and model.context.digest() == CI.digest()
    assert [model.context.pdf((i + 1,), k) for i in range(48) for k in range(3)] == list(range(144))



def test_bundle_without_lang_component_loads_as_timit_48(bundle, langs):
    """A bundle written before the lang dir was copied into it is TIMIT's 48 phones: it
    loads with TIMIT's lang (silence ``sil``, the 48 → 39 score map) and decodes as before."""
    model = HybridModel.load(bundle, CPU)
    install_graph(model, langs["bigram"])
    post = {"u": np.log(np.random.default_rng(0).dirichlet(np.ones(144), size=40))}
    before = decode_with(HybridModel.load(bundle, CPU), HybridModel.load(bundle, CPU).decoder(), post, 1.0).hyps
    shutil.rmtree(bundle / "lang")
    manifest = yaml.safe_load((bundle / BUNDLE_YAML).read_text())
    del manifest["components"]["lang"]
    (bundle / BUNDLE_YAML).write_text(yaml.safe_dump(manifest))
    old = HybridModel.load(bundle, CPU)
    assert old.lang == timit_lang() and old.lang.optional_silence == "sil"
    assert old.lang.score(["ix", "cl", "sil"]) == ["ih", "sil", "sil"]
    assert decode_with(old, old.decoder(), post, 1.0).hyps == before


def test_bundle_lang_must_match_the_model(bundle, tmp_path):
    """The bundle's copy of the lang is checked against the manifest, and a manifest
    without one is only TIMIT's 48."""
    (bundle / "lang/phones/optional_silence.txt").write_text("aa\n")
    with pytest.raises(ModelError, match="the bundle's lang"):
        HybridModel.load(bundle, CPU)
    (bundle / "lang/phones/optional_silence.txt").write_text("sil\n")
    (bundle / "lang/phones/score_map.txt").write_text("sil\n")  # a valid lang, but not the one recorded
    with pytest.raises(ModelError, match="the lang"):
        HybridModel.load(bundle, CPU)
    other = make_bundle(tmp_path / "p47", ContextDependency.ci(PHONES[:-1]))
    manifest = yaml.safe_load((other / BUNDLE_YAML).read_text())
    del manifest["components"]["lang"]
    (other / BUNDLE_YAML).write_text(yaml.safe_dump(manifest))
    with pytest.raises(ModelError, match="not TIMIT's 48"):
        HybridModel.load(other, CPU)


def test_bundle_from_before_energy_and_pitch_loads(bundle):
    """A manifest written before the energy and pitch settings existed describes a front end
    without them; one whose feats.yaml has pitch on is then inconsistent."""
    manifest = yaml.safe_load((bundle / BUNDLE_YAML).read_text())
    for key in ("energy", "pitch"):
        del manifest["components"]["features"]["config"][key]
    (bundle / BUNDLE_YAML).write_text(yaml.safe_dump(manifest))
    assert not HybridModel.load(bundle, CPU).feat_cfg.pitch
    cfg = yaml.safe_load((bundle / "feats.yaml").read_text())
    (bundle / "feats.yaml").write_text(yaml.safe_dump({**cfg, "pitch": True}))
    with pytest.raises(ModelError, match="front end"):
        HybridModel.load(bundle, CPU)

def test_bundle_from_before_frame_subsampling_loads_and_decodes_as_before(tuned_bundle):
    """A bundle written before frame subsampling (no frame_subsampling in model.yaml or the
    manifest) runs at the feature rate, and decodes as it did; a manifest that disagrees with
    model.yaml is refused."""
    feats = np.random.default_rng(0).standard_normal((90, 40)).astype(np.float32)
    model = HybridModel.load(tuned_bundle, CPU)
    before = decode_with(model, model.decoder(), {"u": model.posteriors(feats)}, acwt=1.0).hyps
    cfg = yaml.safe_load((tuned_bundle / "model.yaml").read_text())
    del cfg["frame_subsampling"]
    (tuned_bundle / "model.yaml").write_text(yaml.safe_dump(cfg))
    manifest = yaml.safe_load((tuned_bundle / BUNDLE_YAML).read_text())
    del manifest["components"]["network"]["frame_subsampling"]
    (tuned_bundle / BUNDLE_YAML).write_text(yaml.safe_dump(manifest))
    old = HybridModel.load(tuned_bundle, CPU)
    assert old.frame_rate.factor == 1 and old.frame_rate.shift_s == pytest.approx(0.01)
    post = old.posteriors(feats)
    assert post.shape == (90, old.context.num_pdfs)
    assert decode_with(old, old.decoder(), {"u": post}, acwt=1.0).hyps == before
    manifest["components"]["network"]["frame_subsampling"] = 3
    (tuned_bundle / BUNDLE_YAML).write_text(yaml.safe_dump(manifest))
    with pytest.raises(ModelError, match="frame subsampling"):
        HybridModel.load(tuned_bundle, CPU)


def test_cd_bundle_decodes_with_its_own_graph_only(tmp_path, langs):
    """A CD model is the same kind of bundle: it loads, takes the graph built from its tree
    (not the CI one) and decodes."""
    cd = make_bundle(tmp_path / "cd", toy_cd_tree())
    model = HybridModel.load(cd, CPU)
    assert model.context.width == 3 and model.network.cfg.num_pdfs == 3 + 47 * 6
    with pytest.raises(GraphError, match="built for another context dependency"):
        install_graph(model, langs["bigram"])
    install_graph(model, langs["cd"])
    post = np.log(np.random.default_rng(0).dirichlet(np.ones(model.context.num_pdfs), size=80))
    out = decode_with(model, model.decoder(), {"u": post.astype(np.float32)}, acwt=1.0)
    assert out.hyps["u"] and not out.failed


@pytest.fixture
def tuned_bundle(bundle, langs) -> Path:
    model = HybridModel.load(bundle, CPU)
    install_graph(model, langs["bigram"])
    save_acwt(model, 1.0, Path("dev"), 50.0, {1.0: 50.0})
    return bundle


def noise_wav(path: Path, seconds: float) -> Path:
    """Noise whose loudness swells 30 dB in the middle (the energy detector keeps it as speech)."""
    import soundfile as sf

    n = int(16000 * seconds)
    envelope = 0.003 + 0.1 * np.exp(-0.5 * ((np.arange(n) - n / 2) / (0.1 * n)) ** 2)
    sf.write(path, np.random.default_rng(0).normal(0, 1.0, n) * envelope, 16000)
    return path


def speech_wav(path: Path, seconds: float) -> Path:
    """A flite sentence (slt, 16 kHz) cut or zero-padded to ``seconds``: speech to Silero VAD."""
    import soundfile as sf

    from asr.synth.tts import synthesize

    audio, rate, _ = synthesize("The quick brown fox jumps over the lazy dog.", "slt", {}, str(path))
    assert rate == 16000
    n = int(rate * seconds)
    sf.write(path, np.resize(np.concatenate([audio, np.zeros(max(0, n - len(audio)))]), n), rate)
    return path


def test_a_silent_file_gives_an_empty_transcript(tuned_bundle, tmp_path, capsys):
    import json

    import soundfile as sf

    from asr.cli import main

    sf.write(tmp_path / "quiet.wav", np.zeros(16000 * 2), 16000)
    sf.write(tmp_path / "hiss.wav", np.random.default_rng(1).normal(0, 0.01, 16000 * 2), 16000)
    assert main(["transcribe", str(tuned_bundle), "--output", "phones", "--format", "json",
                 str(tmp_path / "quiet.wav"), str(tmp_path / "hiss.wav")]) == 0
    for line in capsys.readouterr().out.splitlines():
        record = json.loads(line)
        assert record["text"] == "" and record["phones"] == [] and "no speech found" in record["notes"]


def test_transcribe_json_and_ctm_times(tuned_bundle, tmp_path, capsys):
    """Segments tile the file's frames: contiguous from 0 to T * 10 ms; CTM = JSON."""
    import json

    from asr.cli import main

    wav = speech_wav(tmp_path / "a.wav", 1.234)
    num_frames = FeatureConfig().num_frames(int(16000 * 1.234))  # 121
    assert main(["transcribe", str(tuned_bundle), "--output", "phones", "--format", "json",
                 str(wav)]) == 0
    record = json.loads(capsys.readouterr().out)
    segs = record["phones"]
    assert segs[0]["start"] == 0.0 and segs[-1]["end"] == pytest.approx(num_frames * 0.01)
    assert all(a["end"] == b["start"] for a, b in zip(segs, segs[1:]))
    assert all(s["end"] - s["start"] >= 0.03 - 1e-9 for s in segs)  # 3-state HMM: >= 3 frames
    assert " ".join(s["phone"] for s in segs) == record["text"]
    assert main(["transcribe", str(tuned_bundle), "--output", "phones", "--format", "ctm",
                 str(wav)]) == 0
    ctm = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [(c[0], c[1], c[4]) for c in ctm] == [("a", "1", s["phone"]) for s in segs]
    assert [(float(c[2]), float(c[3])) for c in ctm] == [
        pytest.approx((s["start"], s["end"] - s["start"]), abs=0.006) for s in segs]


def test_transcribe_logs_the_traceback_of_an_unexpected_failure(tuned_bundle, tmp_path, monkeypatch, capsys):
    import asr.decode.transcribe as transcribe
    from asr.cli import main

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug in the front end")

    monkeypatch.setattr(transcribe, "features_and_speech", broken)
    log_file = tmp_path / "log.txt"
    wav = noise_wav(tmp_path / "b.wav", 0.5)
    assert main(["--log-file", str(log_file), "transcribe", str(tuned_bundle), "--output", "phones",
                 str(wav)]) == 1
    err = capsys.readouterr().err
    assert "b.wav: decoding failed (ZeroDivisionError: a bug in the front end)" in err
    assert "Traceback" not in err  # the console gets the message only
    text = log_file.read_text()
    assert "Traceback (most recent call last)" in text
    assert 'raise ZeroDivisionError("a bug in the front end")' in text


def segmented_data(path: Path, feat_cfg: FeatureConfig, seed: int = 0) -> Path:
    """A data dir of three 1 s noise utterances (one speaker), each segmented into ten
    0.1 s phones (sil, 8 random phones, sil), with features of ``feat_cfg``."""
    import soundfile as sf

    from asr.corpus.datadir import write_datadir
    from asr.features.storage import make_features

    rng = np.random.default_rng(seed)
    wav, text, utt2spk, segs = {}, {}, {}, {}
    path.mkdir(parents=True)
    for i in range(3):
        utt = f"s1_u{i}"
        sf.write(path / f"{utt}.wav", (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
        phones = ["sil", *rng.choice([p for p in PHONES if p != "sil"], 8), "sil"]
        wav[utt], text[utt], utt2spk[utt] = str(path / f"{utt}.wav"), "a b", "s1"
        segs[utt] = [(round(0.1 * k, 2), round(0.1 * (k + 1), 2), str(p)) for k, p in enumerate(phones)]
    write_datadir(path / "data", wav, text, utt2spk, phone_segments=segs)
    make_features(path / "data", path / "feats", feat_cfg)
    return path / "data"


def test_frame_accuracy_is_scored_against_each_models_own_targets(tmp_path, langs):
    """Two bundles with the same network, one recorded as trained on the uniform split, one
    on a realignment: decode scores the first against the uniform split and the second
    against its dev realignment (ali.yaml names the data dir), says which, and scores a
    set it has no realignment of not at all; the results table names the targets."""
    from asr.hmm.alignment import read_alignments
    from asr.hmm.transitions import alignment_pdfs
    from asr.steps.align import align_set
    from asr.steps.decode import decode_and_score, set_features, set_posteriors
    from asr.steps.results import results_table
    from asr.steps.train_am import UNIFORM, load_targets

    cfg = FeatureConfig(cmvn="speaker")
    dev, test = segmented_data(tmp_path / "dev", cfg), segmented_data(tmp_path / "test", cfg, seed=1)
    uniform = make_bundle(tmp_path / "exp/ci_lstm", feat_cfg=cfg, targets={"alignment": UNIFORM})
    align_set(HybridModel.load(uniform, CPU), dev, tmp_path / "exp/ci_lstm/ali_dev")
    ali_dirs = [str(tmp_path / "exp/ci_lstm/ali_train"), str(tmp_path / "exp/ci_lstm/ali_dev")]
    realigned = make_bundle(tmp_path / "exp/ci_lstm_realigned", feat_cfg=cfg, targets={"alignment": ali_dirs})
    scores = {}
    for bundle in (uniform, realigned):
        model = HybridModel.load(bundle, CPU)
        install_graph(model, langs["bigram"])
        save_acwt(model, 1.0, dev, 50.0, {1.0: 50.0})
        for name, data in (("dev", dev), ("test", test)):
            scores[bundle.name, name] = decode_and_score(model, data, bundle / f"decode_{name}")
    post = set_posteriors(model, set_features(model, dev))  # the same network in both bundles
    argmax = np.concatenate([post[u].argmax(-1) for u in sorted(post)])
    aligned = read_alignments(tmp_path / "exp/ci_lstm/ali_dev").alignments
    by_ali = 100 * np.mean(argmax == np.concatenate([alignment_pdfs(aligned[u], CI) for u in sorted(post)]))
    uniform_tgt = load_targets(dev, {u: len(p) for u, p in post.items()}, CI)
    by_uniform = 100 * np.mean(argmax == np.concatenate([uniform_tgt[u] for u in sorted(post)]))
    assert abs(by_ali - by_uniform) > 1.0  # the two target sources disagree on this network
    assert by_uniform == pytest.approx(0.34, abs=0.5) and by_ali == pytest.approx(7.48, abs=1.0)  # seeded run
    assert scores["ci_lstm", "dev"]["frame_acc"] == pytest.approx(by_uniform, abs=0.01)
    assert scores["ci_lstm", "dev"]["frame_acc_targets"] == "uniform split"
    assert scores["ci_lstm_realigned", "dev"]["frame_acc"] == pytest.approx(by_ali, abs=0.01)
    assert scores["ci_lstm_realigned", "dev"]["frame_acc_targets"] == f"realignment {ali_dirs[1]}"
    assert scores["ci_lstm", "test"]["frame_acc"] is not None  # the uniform split exists for any set
    assert scores["ci_lstm_realigned", "test"]["frame_acc"] is None  # no realignment of test
    assert "none of" in scores["ci_lstm_realigned", "test"]["frame_acc_targets"]
    on_disk = yaml.safe_load((realigned / "decode_dev/scores.yaml").read_text())
    assert on_disk["frame_acc_targets"] == f"realignment {ali_dirs[1]}"
    table = results_table([uniform, realigned])
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in table.splitlines()[2:4]}
    assert rows["ci_lstm"][7:9] == [f"{by_uniform:.2f}", "uniform split"]
    assert rows["ci_lstm_realigned"][7:9] == [f"{by_ali:.2f}", "realignment ci_lstm/ali_dev"]
