import kaldifst
import numpy as np
import pytest

from asr.errors import DataError
from asr.features.extract import FeatureConfig
from asr.hmm.context import ContextDependency
from asr.hmm.targets import TargetStats, TooShortError, fit_min_frames, segments_to_alignment
from asr.phones.topology import DEFAULT_TOPOLOGY as CI_TOPOLOGY, Topology
from asr.hmm.transitions import check_alignment, ci_transitions
from asr.lang.graph import make_h

PHONES = ["sil", "aa", "b"]
INDEX = {p: i for i, p in enumerate(PHONES)}
CI = ci_transitions(PHONES, CI_TOPOLOGY)


def segments_to_pdfs(segs, centres, index, utt, stats=None):
    """CI pdfs of the uniform alignment (checked to be an HMM path)."""
    ali = segments_to_alignment(segs, centres, index, CI_TOPOLOGY, utt, stats=stats)
    check_alignment(ali, PHONES, CI_TOPOLOGY, len(centres), utt)
    return CI.pdfs(ali), ali


def run_phones(ali):
    return [PHONES[r.phone] for r in CI.phone_runs(ali)]


def test_state_path():
    assert CI_TOPOLOGY.default.state_path(6).tolist() == [0, 0, 1, 1, 2, 2]
    assert CI_TOPOLOGY.default.state_path(3).tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="2 frames is shorter than the 3 frames"):
        CI_TOPOLOGY.default.state_path(2)
    assert Topology(states_per_phone=1).default.state_path(1).tolist() == [0]


def test_segments_to_pdfs_by_frame_centre():
    # 0.0-0.1 sil, 0.1-0.16 b, 0.16-0.3 aa; 10 ms frames centred at 12.5, 22.5, ... ms
    segs = [(0.0, 0.1, "sil"), (0.1, 0.16, "b"), (0.16, 0.3, "aa")]
    centres = FeatureConfig().frame_centers(28)
    pdfs, _ = segments_to_pdfs(segs, centres, INDEX, "u1")
    # frames 0..8 (centres 12.5..92.5 ms) are sil: 9 frames → states 0,0,0,1,1,1,2,2,2
    assert pdfs[:9].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    # frames 9..14 (centres 102.5..152.5 ms) are b (index 2 → pdfs 6,7,8)
    assert pdfs[9:15].tolist() == [6, 6, 7, 7, 8, 8]
    # the rest, including frames past 0.3 s, are aa (pdfs 3..5)
    assert set(pdfs[15:].tolist()) == {3, 4, 5}


def test_short_segments_are_lengthened_not_lost():
    # sil 0-0.1 (9 frames), b 0.1-0.115 (1 frame), aa 0.115-0.118 (no frame centre), sil to the end
    segs = [(0.0, 0.1, "sil"), (0.1, 0.115, "b"), (0.115, 0.118, "aa"), (0.118, 0.3, "sil")]
    stats = TargetStats()
    _, ali = segments_to_pdfs(segs, FeatureConfig().frame_centers(28), INDEX, "u1", stats=stats)
    assert run_phones(ali) == ["sil", "b", "aa", "sil"]  # every phone kept
    runs = [r.end - r.start for r in CI.phone_runs(ali)]
    assert min(runs) == 3 and sum(runs) == 28
    # boundaries move as little as possible: sil keeps most of its 9 frames
    assert runs[0] >= 7, runs
    assert (stats.segments, stats.lengthened, stats.without_frame) == (4, 2, 1)


def test_fit_min_frames_least_squares():
    starts = np.array([0, 10, 11, 11, 30])
    fitted = fit_min_frames(starts, 40, 3)
    assert np.diff(np.append(fitted, 40)).min() >= 3
    assert fitted.tolist() == [0, 8, 11, 14, 30]  # the short run pushes both neighbours
    ok = np.array([0, 3, 10])
    assert fit_min_frames(ok, 13, 3) is ok  # already valid: unchanged
    with pytest.raises(TooShortError, match="utterance u9: 8 frames cannot hold its 3 phones, whose HMMs need 9 frames"):
        fit_min_frames(ok, 8, 3, "u9")


def test_targets_are_paths_of_h():
    """Every target sequence, short phones included, is accepted by the decoding graph's H."""
    rng = np.random.default_rng(0)
    ctx = ContextDependency.ci(PHONES)
    h = make_h(ctx, [[]] + [[i + 1] for i in range(len(PHONES))])
    kaldifst.arcsort(h, sort_type="ilabel")
    for _ in range(20):
        ends = np.cumsum(rng.uniform(0.002, 0.09, size=8))
        segs = [(s, e, PHONES[rng.integers(3)]) for s, e in zip(np.r_[0, ends[:-1]], ends)]
        centres = FeatureConfig().frame_centers(int(ends[-1] * 100))
        _, ali = segments_to_pdfs(segs, centres, INDEX, "u")
        acceptor = kaldifst.make_linear_acceptor(ali.tolist())  # transition ids: H's input labels
        kaldifst.arcsort(acceptor, sort_type="olabel")
        assert kaldifst.compose(acceptor, h).num_states > 0, ali.tolist()


def test_unknown_phone_names_utterance():
    with pytest.raises(DataError, match="utterance u7: phone 'zz'"):
        segments_to_alignment([(0.0, 0.5, "zz")], FeatureConfig().frame_centers(10), INDEX, CI_TOPOLOGY, "u7")


def test_phone_runs_split_repeated_phone():
    """Transition ids mark where a phone starts, so 'sil sil' stays two phones."""
    segs = [(0.0, 0.04, "sil"), (0.04, 0.07, "sil"), (0.07, 0.1, "aa")]
    _, ali = segments_to_pdfs(segs, np.arange(10) * 0.01 + 0.005, INDEX, "u")
    assert run_phones(ali) == ["sil", "sil", "aa"]
    assert [(r.start, r.end) for r in CI.phone_runs(ali)] == [(0, 4), (4, 7), (7, 10)]
