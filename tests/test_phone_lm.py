"""Training the recurrent phone LM: kill-safe resumption, damaged checkpoints, the finished
model kept, and the word text expanded through a lexicon (both formats)."""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from asr.decode.rnn_search import one_thread
from asr.errors import ModelError
from asr.lang.lexicon import Lexicon, LexiconError
from asr.nn.phone_lm import CHECKPOINT_DIR, WEIGHTS_FILE, PhoneLmConfig, encode, train_phone_lm
from asr.steps.train_phone_lm import expanded_sentences

CPU = torch.device("cpu")
PHONES = ("sil", "a", "b", "c", "d")
#: Small, with dropout (so the RNG state matters on resuming); an epoch takes ~0.1 s.
CFG = PhoneLmConfig(phones=PHONES, embed=8, hidden=24, num_layers=2, dropout=0.2, epochs=6, lr=0.01,
                    min_improvement=0.0, min_lr=0.0, batch_utterances=16, seed=3)
REPO = Path(__file__).resolve().parents[1]


def toy_data(n: int, seed: int) -> list[np.ndarray]:
    """``n`` token sequences: sil, phones of a..d (b always after a; otherwise uniform, the
    utterance ending with probability 0.2 after each), sil."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        seq = ["sil", str(rng.choice(["a", "b", "c", "d"]))]
        while rng.random() > 0.2:
            seq.append("b" if seq[-1] == "a" else str(rng.choice(["a", "b", "c", "d"])))
        out.append(encode(PHONES, seq + ["sil"], "toy"))
    return out


TRAIN, DEV = toy_data(200, 0), toy_data(40, 1)

#: Trains CFG in sys.argv[1] on one thread (the same data as this module's).
CHILD = f"""
import logging, sys
from pathlib import Path
import torch
sys.path.insert(0, {str(REPO / "tests")!r})
from test_phone_lm import CFG, DEV, TRAIN
from asr.nn.phone_lm import train_phone_lm
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
torch.set_num_threads(1)
train_phone_lm(Path(sys.argv[1]), TRAIN, DEV, CFG, torch.device("cpu"))
"""


def train(out: Path, cfg: PhoneLmConfig = CFG) -> dict:
    with one_thread():  # as the child runs: the same float results
        return train_phone_lm(out, TRAIN, DEV, cfg, CPU)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[Path, dict]:
    """A run of CFG that was never killed: its dir and final state."""
    out = tmp_path_factory.mktemp("uninterrupted")
    return out, train(out)


def newest_checkpoint(out: Path) -> Path:
    return max((out / CHECKPOINT_DIR).glob("epoch-*.pt"), key=lambda p: int(p.stem.split("-")[1]))


@pytest.mark.slow  # kept out of the default suite's 5 minutes
def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, uninterrupted):
    """SIGKILL during epoch 3 (just after epoch 2 is logged), then resume: the same final and
    best weights and the same dev losses as the run never killed."""
    ref_dir, ref_state = uninterrupted
    out = tmp_path / "lm"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(out)], cwd=REPO, stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        for line in child.stderr:
            seen.append(line)
            if line.startswith("phone LM epoch 2:"):
                child.send_signal(signal.SIGKILL)
                break
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL, "".join(seen)
    assert not any(line.startswith(f"phone LM epoch {CFG.epochs}:") for line in seen)
    state = train(out)
    assert state["epoch"] == CFG.epochs
    assert [h["dev_loss"] for h in state["history"]] == [h["dev_loss"] for h in ref_state["history"]]
    assert_same_weights(out / WEIGHTS_FILE, ref_dir / WEIGHTS_FILE)
    assert_same_weights(newest_checkpoint(out), newest_checkpoint(ref_dir))
    assert state["history"][-1]["dev_loss"] < state["history"][0]["dev_loss"] - 0.1  # it did learn


def test_a_damaged_newest_checkpoint_is_named_and_the_one_before_used(tmp_path, uninterrupted, caplog):
    """The newest checkpoint truncated: a warning names it, training resumes from the one
    before and ends with the weights of the uninterrupted run (phone_lm.pt too)."""
    ref_dir, ref_state = uninterrupted
    out = tmp_path / "lm"
    shutil.copytree(ref_dir, out)
    newest = newest_checkpoint(out)
    assert newest.name == f"epoch-{CFG.epochs}.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    with caplog.at_level(logging.INFO):
        state = train(out)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(newest) in w and "damaged" in w for w in warnings), warnings
    assert any(f"after epoch {CFG.epochs - 1}" in r.getMessage() for r in caplog.records)
    assert state["epoch"] == CFG.epochs and state["best_loss"] == ref_state["best_loss"]
    assert_same_weights(out / WEIGHTS_FILE, ref_dir / WEIGHTS_FILE)
    assert_same_weights(newest_checkpoint(out), newest_checkpoint(ref_dir))


def checkpoints(out: Path) -> list[Path]:
    """Every checkpoint under ``out`` but the finished ``phone_lm.pt``."""
    found = [p for p in out.rglob("*.pt") if p.name != WEIGHTS_FILE]
    assert found
    return found


def damage_checkpoints(out: Path) -> list[Path]:
    """Truncate every checkpoint under ``out`` but the finished ``phone_lm.pt``; the list of them."""
    damaged = checkpoints(out)
    for p in damaged:
        p.write_bytes(p.read_bytes()[:100])
    return damaged


def test_damaged_checkpoints_never_cost_the_finished_model(tmp_path, caplog):
    """Every checkpoint damaged: the run stops with an error naming them (as the acoustic
    trainer does) instead of training afresh over the finished phone_lm.pt."""
    out = tmp_path / "lm"
    cfg = PhoneLmConfig(**{**CFG.__dict__, "epochs": 3})
    train(out, cfg)
    best = (out / WEIGHTS_FILE).read_bytes()
    damaged = damage_checkpoints(out)
    with pytest.raises(ModelError, match="no usable checkpoint") as err:
        train(out, cfg)
    assert all(p.name in str(err.value) for p in damaged)
    assert (out / WEIGHTS_FILE).read_bytes() == best


def test_a_fresh_run_replaces_a_finished_model_only_with_a_better_one(tmp_path, caplog):
    """Checkpoints gone, a finished phone_lm.pt (6 epochs) is kept over a new run's 1-epoch
    model, whose dev loss is worse; an unreadable phone_lm.pt is named and replaced."""
    out = tmp_path / "lm"
    trained = train(out)
    best = (out / WEIGHTS_FILE).read_bytes()
    for p in checkpoints(out):
        p.unlink()
    short = PhoneLmConfig(**{**CFG.__dict__, "epochs": 1})
    (out / "phone_lm.yaml").unlink()  # the config check would refuse the shorter run
    state = train(out, short)
    assert state["history"][0]["dev_loss"] > trained["best_loss"] + 0.05  # one epoch is worse
    assert state["best_loss"] == pytest.approx(trained["best_loss"], abs=1e-6)
    assert (out / WEIGHTS_FILE).read_bytes() == best

    damaged = tmp_path / "damaged"
    train(damaged, short)
    for p in checkpoints(damaged):
        p.unlink()
    (damaged / WEIGHTS_FILE).write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.WARNING):
        state = train(damaged, short)
    assert any(str(damaged / WEIGHTS_FILE) in r.getMessage() for r in caplog.records)
    assert weights(damaged / WEIGHTS_FILE).keys() and state["best_loss"] == state["history"][0]["dev_loss"]


# ------------------------------------------------------------------ word text through a lexicon
LEX_PHONES = ["sil", "aa", "ah", "b", "cl", "d", "iy", "k", "s", "t", "vcl"]


def expand(tmp_path: Path, lexicon_text: str, text: str) -> list[list[str]]:
    lex, words = tmp_path / "lexicon.txt", tmp_path / "text.txt"
    lex.write_text(lexicon_text)
    words.write_text(text)
    return [[LEX_PHONES[i - 1] for i in s] for s in expanded_sentences(words, lex, LEX_PHONES, "sil")]


def test_a_lang_dir_lexicon_is_read_as_written(tmp_path):
    """``asr prepare-lang``'s lexicon.txt (:meth:`Lexicon.to_text`: word p1 p2 …, the model's
    phones, a word's lines in order): words keep their case, the first pronunciation is read,
    a word with brackets is a word, and a sentence with a missing word is left out."""
    written = Lexicon({"I": [("aa",)], "bad": [("vcl", "b", "aa", "vcl", "d"), ("vcl", "b", "ah", "vcl", "d")],
                       "cat": [("k", "aa", "cl", "t")], "i": [("iy",)], "see(2)": [("s", "iy")]})
    got = expand(tmp_path, written.to_text(), "I bad cat\ni see(2)\nI dog\n")
    assert got == [["sil", "aa", "vcl", "b", "aa", "vcl", "d", "k", "aa", "cl", "t", "sil"],
                   ["sil", "iy", "s", "iy", "sil"]]


def test_a_cmudict_format_lexicon_is_read_too(tmp_path):
    """CMUdict format (ARPAbet with stress digits, WORD(2) variants, ;;; comments): mapped to
    the 48 phones (stops get their closures), the first variant read, words lower-cased."""
    lexicon = ";;; a comment\nBAD  B AE1 D\nBAD(2)  B AA1 D\nCAT  K AA1 T\nSEE  S IY1\n"
    with pytest.raises(LexiconError, match="'ae' is not in the phone set"):
        expand(tmp_path, lexicon, "bad\n")
    lexicon = ";;; a comment\nBAD  B AA1 D\nBAD(2)  B AH1 D\nCAT  K AA1 T\nSEE  S IY1\n"
    assert expand(tmp_path, lexicon, "bad cat\nsee bad\n") == [
        ["sil", "vcl", "b", "aa", "vcl", "d", "cl", "k", "aa", "cl", "t", "sil"],
        ["sil", "s", "iy", "vcl", "b", "aa", "vcl", "d", "sil"]]


def test_bad_lexicons_and_texts_are_named(tmp_path):
    """A phone outside the model's, a missing lexicon or word text: errors naming the file."""
    from asr.errors import DataError

    with pytest.raises(LexiconError, match=r"lexicon.txt:2: word 'cat': phone 'zz' is not in the phone set"):
        expand(tmp_path, "bad vcl b aa vcl d\ncat k zz t\n", "bad\n")
    with pytest.raises(LexiconError, match=r"nowhere.txt: cannot read the lexicon"):
        expanded_sentences(tmp_path / "text.txt", tmp_path / "nowhere.txt", LEX_PHONES)
    (tmp_path / "lexicon.txt").write_text("bad vcl b aa vcl d\n")
    with pytest.raises(DataError, match=r"missing.txt: cannot read the word text"):
        expanded_sentences(tmp_path / "missing.txt", tmp_path / "lexicon.txt", LEX_PHONES)
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.txt: the word text is not UTF-8"):
        expanded_sentences(tmp_path / "latin1.txt", tmp_path / "lexicon.txt", LEX_PHONES)
