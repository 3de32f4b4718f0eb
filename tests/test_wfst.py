"""WfstDecoder on real 48-phone bigram graphs (CI H∘C∘G) with synthetic score matrices."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import pytest

from asr.decode.wfst import DecodeResult, WfstDecoder
from asr.errors import GraphError, ModelError
from asr.hmm.context import ContextDependency
from asr.phones.topology import DEFAULT_TOPOLOGY as CI_TOPOLOGY
from asr.hmm.transitions import ci_transitions
from asr.lang.graph import load_graph, make_decoding_graph
from asr.phones.timit import PHONES48

PHONES = list(PHONES48)
STATES_PER_PHONE = CI_TOPOLOGY.states_per_phone
N = len(PHONES)
NUM_PDFS = STATES_PER_PHONE * N
CI = ContextDependency.ci(PHONES)


def pdf_id(phone_index: int, state: int) -> int:
    return CI.pdf((phone_index + 1,), state)

TRANSITIONS = ci_transitions(PHONES, CI_TOPOLOGY)
#: Scaled log-likelihoods of the synthetic matrices (acwt 0.1 times log-probs).
TRUE_SCORE, OTHER_SCORE, NOISE = 0.0, -3.0, 0.5


def random_sentences(rng: random.Random, num: int) -> list[str]:
    return [" ".join(["sil", *(rng.choice(PHONES) for _ in range(rng.randint(5, 40))), "sil"])
            for _ in range(num)]


def build_graph(d: Path, sentences: list[str]) -> Path:
    text = d / "text"
    text.write_text("".join(f"utt{i:04d} {s}\n" for i, s in enumerate(sentences)))
    return make_decoding_graph(d / "lang", CI, text)


def synthetic_scores(phone_idx: list[int], rng: np.random.Generator,
                     max_state_frames: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(T, NUM_PDFS) scores peaked on a known alignment, and that alignment (T,)."""
    ali = [pdf_id(p, k) for p in phone_idx for k in range(STATES_PER_PHONE)
           for _ in range(int(rng.integers(1, max_state_frames + 1)))]
    scores = OTHER_SCORE + NOISE * rng.standard_normal((len(ali), NUM_PDFS))
    scores[np.arange(len(ali)), ali] = TRUE_SCORE
    return scores.astype(np.float32), np.asarray(ali)


@pytest.fixture(scope="module")
def decoder(tmp_path_factory: pytest.TempPathFactory) -> WfstDecoder:
    graph = build_graph(tmp_path_factory.mktemp("wfst"), random_sentences(random.Random(0), 300))
    return WfstDecoder(graph, TRANSITIONS)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovers_known_sequence(decoder: WfstDecoder, seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = [PHONES.index("sil"), *rng.integers(0, N, 60).tolist(), PHONES.index("sil")]
    scores, ali = synthetic_scores(truth, rng)
    result = decoder.decode(scores)
    assert isinstance(result, DecodeResult)
    assert result.olabels == [p + 1 for p in truth]
    np.testing.assert_array_equal(result.pdfs, ali)
    # the transition ids mark each phone's first frame: runs are the planted phones and times
    starts = np.flatnonzero(np.diff(np.r_[-1, ali]) != 0)[::STATES_PER_PHONE]
    assert [r.phone for r in result.runs] == truth
    assert [r.start for r in result.runs] == starts.tolist()
    assert result.reached_final
    assert result.acoustic_cost == pytest.approx(-scores[np.arange(len(ali)), ali].sum(), abs=1e-3)
    assert 0 < result.graph_cost < 10 * len(truth)


def test_ambiguous_scores_still_give_a_path(decoder: WfstDecoder) -> None:
    rng = np.random.default_rng(3)
    for scores in (np.zeros((200, NUM_PDFS), np.float32),
                   (0.01 * rng.standard_normal((200, NUM_PDFS))).astype(np.float32)):
        result = decoder.decode(scores)
        assert result.reached_final
        assert len(result.pdfs) == 200 and len(result.olabels) >= 1
        assert result.pdfs.min() >= 0 and result.pdfs.max() < NUM_PDFS
        assert all(1 <= p <= N for p in result.olabels)


def test_partial_path_when_no_final_state(decoder: WfstDecoder,
                                          caplog: pytest.LogCaptureFixture) -> None:
    # One frame cannot get through a 3-state phone: the best partial path comes back.
    with caplog.at_level(logging.WARNING):
        result = decoder.decode(np.zeros((1, NUM_PDFS), np.float32), utt="u1")
    assert not result.reached_final
    assert len(result.pdfs) == 1 and len(result.olabels) == 1
    assert "u1: no final state reached" in caplog.text


def test_bad_scores(decoder: WfstDecoder) -> None:
    with pytest.raises(ModelError, match=r"shape \(10, 100\), expected \(T, 144\)"):
        decoder.decode(np.zeros((10, 100), np.float32))
    with pytest.raises(ModelError, match="shape"):
        decoder.decode(np.zeros(NUM_PDFS, np.float32))
    with pytest.raises(ModelError, match="T=0"):
        decoder.decode(np.zeros((0, NUM_PDFS), np.float32))
    scores = np.zeros((10, NUM_PDFS), np.float32)
    scores[4, 7] = np.nan
    with pytest.raises(ModelError, match="utterance u9: .*NaN or inf .*frame 4"):
        decoder.decode(scores, utt="u9")
    scores[4, 7] = -np.inf
    with pytest.raises(ModelError, match="frame 4"):
        decoder.decode(scores)


def test_graph_model_mismatch(decoder: WfstDecoder) -> None:
    fewer = ci_transitions(PHONES[:-1], CI_TOPOLOGY)
    with pytest.raises(GraphError, match="input label 288 exceeds the model's 282 transition ids"):
        WfstDecoder(decoder.graph, fewer)
    with pytest.raises(GraphError, match="missing.fst"):
        WfstDecoder(Path("/nonexistent/missing.fst"), TRANSITIONS)


def test_float64_and_loaded_graph(decoder: WfstDecoder) -> None:
    rng = np.random.default_rng(5)
    truth = rng.integers(0, N, 10).tolist()
    scores, ali = synthetic_scores(truth, rng)
    other = WfstDecoder(decoder.graph, TRANSITIONS)
    result = other.decode(scores.astype(np.float64))
    assert result.olabels == [p + 1 for p in truth]


@pytest.mark.parametrize("preferred,rare", [("aa", "ae"), ("ae", "aa")])
def test_bigram_breaks_acoustic_ties(tmp_path: Path, preferred: str, rare: str) -> None:
    """Scores equally good for two phones: the one the bigram prefers after sil wins."""
    sentences = random_sentences(random.Random(1), 100)
    sentences += [f"sil {preferred} sil"] * 200 + [f"sil {rare} sil"] * 5
    dec = WfstDecoder(load_graph(build_graph(tmp_path, sentences)), TRANSITIONS)
    rng = np.random.default_rng(0)
    sil, a, b = PHONES.index("sil"), PHONES.index(preferred), PHONES.index(rare)
    scores, ali = synthetic_scores([sil, a, sil], rng)
    tie = np.isin(ali, [pdf_id(a, k) for k in range(STATES_PER_PHONE)])
    scores[tie, pdf_id(b, 0):pdf_id(b, 0) + STATES_PER_PHONE] = \
        scores[tie, pdf_id(a, 0):pdf_id(a, 0) + STATES_PER_PHONE]
    assert dec.decode(scores).olabels == [sil + 1, a + 1, sil + 1]
    scores[tie, pdf_id(b, 0):pdf_id(b, 0) + STATES_PER_PHONE] += 2.0  # rare phone clearly better
    assert dec.decode(scores).olabels == [sil + 1, b + 1, sil + 1]


def test_no_surviving_path_is_a_graph_error_naming_the_utterance() -> None:
    """A graph that only accepts 3 frames cannot decode 5: GraphError, which the
    decode step counts per utterance (tests/test_bundle.py)."""
    import kaldifst

    linear = kaldifst.compile("0 1 1 1\n1 2 3 0\n2 3 5 0\n3\n", acceptor=False)  # enter pdfs 0, 1, 2
    dec = WfstDecoder(linear, ci_transitions(["aa"], CI_TOPOLOGY))
    assert dec.decode(np.zeros((3, 3), np.float32)).pdfs.tolist() == [0, 1, 2]
    with pytest.raises(GraphError, match="utterance long: no path survived decoding 5 frames"):
        dec.decode(np.zeros((5, 3), np.float32), utt="long")
