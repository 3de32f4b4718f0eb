"""A lang unlike TIMIT's, end to end: 10 phones named nothing like TIMIT's, Kaldi's
ergodic 5-state silence, a 1-state phone, a spoken-noise phone that scoring deletes and a phone that
scores as another. A tiny corpus of tones is generated (tests/toy_corpus.py: each phone two sine waves of
its own, silence faint noise), and every stage runs on it through the command line:
features → CI targets → CI training → realignment → tree → CD training → graph →
decoding → scoring. Nothing of TIMIT's may appear in any of it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from asr.cli import main
from asr.decode.hybrid import HybridModel
from asr.hmm.alignment import read_alignments
from asr.hmm.context import ContextDependency
from asr.phones.lang import Lang
from asr.phones.timit import PHONES61, PHONES48
from toy_corpus import PHONES, TOY, phone_corpus as _corpus  # the lang and its corpus of tones

CONF = """model: {num_layers: 1, hidden: 64, proj: 0, bidirectional: true, dropout: 0.0}
train: {epochs: 25, lr: 0.01, batch_frames: 1500, chunk_frames: 300, seed: 0}
"""


def _run(*args) -> None:
    assert main([str(a) for a in args]) == 0, args


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    """The whole pipeline on the toy lang; returns the working dir."""
    d = tmp_path_factory.mktemp("toy")
    TOY.write(d / "lang")
    train, dev = _corpus(d, "train", 4, 0), _corpus(d, "dev", 1, 1)
    (d / "conf.yaml").write_text(CONF)
    _run("make-feats", d / "feats", train, dev)
    _run("train", train, dev, d / "ci", "--lang", d / "lang", "--conf", d / "conf.yaml", "--device", "cpu")
    for name, data in (("train", train), ("dev", dev)):
        _run("align", d / "ci", data, d / f"ci/ali_{name}", "--device", "cpu")
    _run("build-tree", train, d / "ci/ali_train", d / "tree", "--lang", d / "lang", "--num-leaves", 60,
         "--min-occupancy", 20)
    _run("make-graph", train, d / "lang", "--order", 2, "--tree", d / "tree/tree.json", "--graph-dir", d / "tree")
    _run("train", train, dev, d / "cd", "--lang", d / "lang", "--conf", d / "conf.yaml", "--tree",
         d / "tree/tree.json", "--ali-train", d / "ci/ali_train", "--ali-dev", d / "ci/ali_dev",
         "--init-from", d / "ci", "--device", "cpu")
    _run("decode", d / "cd", dev, d / "cd/decode_dev", "--graph-dir", d / "tree", "--tune", "--device", "cpu")
    return d


def test_the_lang_round_trips_through_its_files(tmp_path):
    TOY.write(tmp_path)
    assert Lang.load(tmp_path) == TOY
    assert TOY.score(["SIL", "NSN", "to", "Q"]) == ["SIL", "te", "Q"]


def test_targets_and_alignments_follow_each_phones_topology(toy):
    ci = ContextDependency.load(toy / "ci/tree.json")
    assert ci.phones == list(PHONES) and ci.num_pdfs == 5 + 3 + 3 * 7 + 1  # SIL 5, Q 1, the rest 3
    aset = read_alignments(toy / "ci/ali_train")
    runs = [(aset.phones[r.phone], r.end - r.start) for u in aset.alignments for r in aset.runs(u)]
    assert min(n for p, n in runs if p == "SIL") >= 3 and min(n for p, n in runs if p == "Q") >= 1
    assert any(n < 3 for p, n in runs if p == "Q")  # a 1-state phone may last less than 3 frames


def test_the_tree_keeps_silence_whole_and_asks_the_extra_question(toy):
    tree = ContextDependency.load(toy / "tree/tree.json")
    assert tree.ci_phones == ["NSN", "SIL"] and 30 < tree.num_pdfs <= 60
    assert frozenset(TOY.index(p) + 1 for p in TOY.extra_questions[0]) in tree.questions
    for phone in ("SIL", "NSN"):
        assert len(set(tree.pdfs((1, TOY.index(phone) + 1, 3)) + tree.pdfs((4, TOY.index(phone) + 1, 0)))) \
            == TOY.topology.hmm(phone).num_states


def test_the_bundle_keeps_the_lang_and_decodes_with_it(toy):
    model = HybridModel.load(toy / "cd", device=__import__("torch").device("cpu"))
    assert model.lang == TOY and not model.topology.hmm("SIL").is_left_to_right
    scores = yaml.safe_load((toy / "cd/decode_dev/scores.yaml").read_text())
    assert scores["per"] <= 8.0, scores  # measured 3.33; a model that learnt nothing reads ~90%
    hyps = [line.split()[1:] for line in (toy / "cd/decode_dev/hyp.txt").read_text().splitlines()]
    assert set(p for h in hyps for p in h) <= set(PHONES)
    assert "score map" in (toy / "cd/decode_dev/per_report.txt").read_text()


def test_nothing_of_timit_appears(toy):
    timit = (set(PHONES48) | set(PHONES61)) - set(PHONES)
    for path in [toy / "cd/phones.txt", toy / "tree/phones.txt", toy / "cd/decode_dev/hyp.txt",
                 *sorted((toy / "cd/lang").rglob("*.txt"))]:
        if path.is_file():
            words = set(path.read_text().split())
            assert not words & timit, (path, words & timit)


def test_scoring_uses_the_lang_score_map(toy, capsys):
    ref, hyp = toy / "ref.txt", toy / "hyp.txt"
    ref.write_text("u1 SIL ka to NSN SIL\n")
    hyp.write_text("u1 SIL ka te SIL\n")
    assert main(["score", str(ref), str(hyp), "--lang", str(toy / "cd")]) == 0
    assert capsys.readouterr().out.startswith("%PER 0.00 [ 0 / 4")
    assert main(["score", str(ref), str(hyp)]) == 0  # as given: 'te' for 'to', NSN deleted
    assert capsys.readouterr().out.startswith("%PER 40.00 [ 2 / 5")


def test_a_phone_lm_trained_on_alignments(toy):
    """make-graph on an alignment dir (a corpus without phone transcripts): the LM text is the
    aligned phone sequences, written to the dir's phone_text, and the graph builds from it."""
    ali = read_alignments(toy / "ci/ali_train")
    _run("make-graph", toy / "ci/ali_train", toy / "lang_ali", "--lang", toy / "lang", "--order", 2)
    lines = (toy / "ci/ali_train/phone_text").read_text().splitlines()
    assert [line.split()[0] for line in lines] == ali.utts
    for line in lines:
        utt, *phones = line.split()
        assert phones == [ali.phones[r.phone] for r in ali.runs(utt)]
    assert (toy / "lang_ali/HCG.fst").stat().st_size > 0
    arpa = (toy / "lang_ali/lm.arpa").read_text().split("\\1-grams:")[1].split("\\2-grams:")[0]
    unigrams = {row.split()[1] for row in arpa.strip().splitlines()}
    assert {p for line in lines for p in line.split()[1:]} <= unigrams
