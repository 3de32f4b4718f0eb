"""Lower frame rates: the stacked network input, and alignments converted between rates."""

import numpy as np
import pytest

from asr.features.frame_rate import FrameRate
from asr.hmm.convert import convert_alignment
from asr.hmm.targets import TooShortError
from asr.hmm.transitions import PhoneRun, alignment_from_runs, check_alignment, ci_transitions
from asr.phones.topology import PhoneHmm, Topology

PHONES = ["sil", "aa", "b", "k"]
TOPO3 = Topology(3, 0.75)
TOPO1 = Topology(1, 0.5)
#: Kaldi's chain topology for every phone: a first frame of its own, then a looping state
CHAIN = Topology.of({p: PhoneHmm.chain() for p in PHONES})


def test_num_frames_and_stacking():
    rate = FrameRate(0.01, 3)
    assert rate.shift_s == pytest.approx(0.03)
    assert [rate.num_frames(10, o) for o in range(3)] == [4, 3, 3]
    assert rate.num_frames(0) == 0 and rate.num_frames(1, 0) == 1
    feats = np.arange(20, dtype=np.float32).reshape(10, 2)  # frame t = (2t, 2t + 1)
    stacked = rate.stack(feats, offset=1)
    assert stacked.shape == (3, 6)
    np.testing.assert_array_equal(stacked[0], [2, 3, 4, 5, 6, 7])   # frames 1, 2, 3
    np.testing.assert_array_equal(stacked[2], [14, 15, 16, 17, 18, 19])  # frames 7, 8, 9
    last = rate.stack(feats)[-1]  # frame 9, then 9 repeated past the end
    np.testing.assert_array_equal(last, [18, 19, 18, 19, 18, 19])
    assert FrameRate(0.01, 1).stack(feats) is feats
    np.testing.assert_allclose(rate.centers(3, 0.0125, 1), [0.0325, 0.0625, 0.0925])
    with pytest.raises(ValueError, match="offset 3"):
        rate.num_frames(10, 3)
    with pytest.raises(ValueError, match="whole number"):
        FrameRate(0.01, 0)


def _alignment(lengths, phones_idx, topo=TOPO3):
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    runs = [PhoneRun(p, int(a), int(b)) for p, a, b in zip(phones_idx, bounds[:-1], bounds[1:])]
    return alignment_from_runs(runs, PHONES, topo), bounds


@pytest.mark.parametrize("low_topo", [TOPO1, CHAIN], ids=["1-state", "chain"])
def test_conversion_down_and_back_keeps_every_phone(low_topo):
    rng = np.random.default_rng(0)
    for trial in range(50):
        n = int(rng.integers(2, 30))
        lengths = rng.integers(3, 15, size=n)  # 30–140 ms phones; some of one output frame
        phones_idx = rng.integers(0, len(PHONES), size=n)
        phones_idx[1:][phones_idx[1:] == phones_idx[:-1]] = (phones_idx[1:][phones_idx[1:] == phones_idx[:-1]] + 1) % 4
        ali, bounds = _alignment(lengths, phones_idx)
        T = len(ali)
        for offset in range(3):
            low = convert_alignment(ali, PHONES, (TOPO3, 1), (low_topo, FrameRate(0.01, 3)), T, offset)
            assert len(low) == FrameRate(0.01, 3).num_frames(T, offset)
            check_alignment(low, PHONES, low_topo, len(low), "low")  # a path of the low-rate HMMs
            low_runs = ci_transitions(PHONES, low_topo).phone_runs(low)
            assert [r.phone for r in low_runs] == list(phones_idx)
            # each low-rate boundary within one output frame of the feature-rate one
            starts = np.array([r.start for r in low_runs]) * 3 + offset
            assert np.abs(starts[1:] - bounds[1:-1]).max() <= 3
            back = convert_alignment(low, PHONES, (low_topo, 3), (TOPO3, FrameRate(0.01, 1)), T)
            back_runs = ci_transitions(PHONES, TOPO3).phone_runs(back)
            assert len(back) == T and [r.phone for r in back_runs] == list(phones_idx)


def test_identity_conversion_and_repeated_phones():
    ali, _ = _alignment([4, 3, 5, 6], [1, 1, 2, 2])  # a phone repeated: told apart by state 0's entry
    same = convert_alignment(ali, PHONES, (TOPO3, 1), (TOPO3, FrameRate(0.01, 1)), len(ali))
    np.testing.assert_array_equal(same, ali)
    low = convert_alignment(ali, PHONES, (TOPO3, 1), (TOPO1, FrameRate(0.01, 3)), len(ali))
    assert [r.phone for r in ci_transitions(PHONES, TOPO1).phone_runs(low)] == [1, 1, 2, 2]


def test_conversion_too_short_for_the_phones():
    ali, _ = _alignment([3, 3, 3, 3], [0, 1, 2, 3])
    low = convert_alignment(ali, PHONES, (TOPO3, 1), (TOPO1, FrameRate(0.01, 3)), 12)
    assert len(low) == 4  # a phone of one output frame each
    with pytest.raises(TooShortError, match="u1"):  # 4 output frames cannot hold four 3-state phones
        convert_alignment(ali, PHONES, (TOPO3, 1), (TOPO3, FrameRate(0.01, 3)), 12, utt="u1")


def test_a_phone_of_one_output_frame_is_decoded(tmp_path):
    """Over the graph of a 1-state lang (a lower frame rate model's), phones of one frame
    come out of the decoder with their frames."""
    from asr.decode.wfst import WfstDecoder
    from asr.hmm.context import ContextDependency
    from asr.lang.graph import make_decoding_graph
    from asr.phones.timit import PHONES48

    phones = list(PHONES48)
    ctx = ContextDependency.ci(phones, TOPO1)
    rng = np.random.default_rng(0)
    sentences = [rng.choice(phones, 30).tolist() for _ in range(200)]
    text = tmp_path / "text"
    text.write_text("".join(f"u{i:03d} {' '.join(s)}\n" for i, s in enumerate(sentences)))
    decoder = WfstDecoder(make_decoding_graph(tmp_path / "lang", ctx, text), ci_transitions(phones, TOPO1))
    truth = ["sil", "b", "aa", "k", "iy", "t", "sil"]
    lengths = [3, 1, 1, 2, 1, 4, 2]
    idx = [phones.index(p) for p in truth]
    pdfs = np.repeat([ctx.pdf((i + 1,), 0) for i in idx], lengths)
    scores = (-10.0 + 0.5 * rng.standard_normal((len(pdfs), ctx.num_pdfs))).astype(np.float32)
    scores[np.arange(len(pdfs)), pdfs] = 0.0
    result = decoder.decode(scores)
    assert [phones[r.phone] for r in result.runs] == truth
    assert [r.end - r.start for r in result.runs] == lengths


def test_a_lower_rate_models_batches_hold_as_much_audio():
    from asr.nn.train import TrainConfig

    cfg = TrainConfig(batch_frames=8000, chunk_frames=800)
    assert cfg.at_network_rate(1) is cfg
    low = cfg.at_network_rate(3)
    assert (low.batch_frames, low.chunk_frames, low.tbptt) == (2667, 267, 0)
    assert TrainConfig(batch_frames=600, chunk_frames=20, tbptt=20).at_network_rate(3).tbptt == 7


def test_the_chain_topologys_entry_state_lasts_one_frame():
    hmm = PhoneHmm.chain(0.6)
    assert hmm.min_frames == 1 and not hmm.is_left_to_right
    assert [hmm.state_path(t).tolist() for t in (1, 2, 4)] == [[0], [0, 1], [0, 1, 1, 1]]
    assert PhoneHmm(3, 0.75).state_path(5).tolist() == [0, 0, 1, 1, 2]  # left to right: as before
    with pytest.raises(Exception, match="self-loop probability"):
        PhoneHmm.chain(1.0)


def test_lang_topology_copies_a_lang_dir_with_other_hmms(tmp_path):
    """asr lang-topology: the phones, score map and other files are the source's, the HMMs the
    new ones, graphs left behind; a second call finds the copy up to date and leaves it."""
    from asr.cli import main
    from asr.phones.lang import Lang
    from toy_corpus import TOY

    TOY.write(tmp_path / "lang")
    (tmp_path / "lang/HCG.fst").write_text("a graph of the old HMMs")
    (tmp_path / "lang/G.fst").write_text("G")
    assert main(["lang-topology", str(tmp_path / "lang"), str(tmp_path / "chain"), "--chain"]) == 0
    chain = Lang.load(tmp_path / "chain")
    assert chain.phones == TOY.phones and chain.score_map == TOY.score_map
    assert all(chain.topology.hmm(p) == PhoneHmm.chain() for p in chain.phones)
    assert (tmp_path / "chain/G.fst").is_file() and not (tmp_path / "chain/HCG.fst").exists()
    stamp = (tmp_path / "chain/topo").stat().st_mtime_ns
    assert main(["lang-topology", str(tmp_path / "lang"), str(tmp_path / "chain"), "--chain"]) == 0
    assert (tmp_path / "chain/topo").stat().st_mtime_ns == stamp
    assert main(["lang-topology", str(tmp_path / "lang"), str(tmp_path / "chain"), "--states", "1"]) == 0
    assert Lang.load(tmp_path / "chain").topology == Topology(1, 0.5)
    assert main(["lang-topology", str(tmp_path / "lang"), str(tmp_path / "bad"), "--self-loop-prob", "1"]) != 0


def test_a_small_lms_backoff_loops_are_warned_of_for_one_frame_phones(tmp_path, caplog):
    """A bigram of a few phone strings has backoff weights above 1; with phones that can last
    one frame, building the graph says so (3-state phones: silent)."""
    import logging

    from asr.hmm.context import ContextDependency
    from asr.lang.graph import make_decoding_graph
    from asr.lang.ngram import backoffs_above_one

    text = tmp_path / "text"
    text.write_text("u1 sil b aa k sil\nu2 sil k aa b sil\nu3 sil aa aa sil\n")
    with caplog.at_level(logging.WARNING):
        make_decoding_graph(tmp_path / "three", ContextDependency.ci(PHONES, TOPO3), text)
    assert "backoff weights above 1" not in caplog.text
    assert backoffs_above_one(tmp_path / "three/lm.arpa")
    with caplog.at_level(logging.WARNING):
        make_decoding_graph(tmp_path / "one", ContextDependency.ci(PHONES, TOPO1), text)
    assert "backoff weights above 1" in caplog.text
