import kaldifst
import numpy as np
import pytest

from asr.errors import DataError
from asr.features.extract import FeatureConfig
from asr.hmm.targets import (TargetStats, TooShortError, fit_min_frames, pdf_segments,
                             pdfs_to_phones, segments_to_pdfs)
from asr.hmm.topology import CI_TOPOLOGY, Topology
from asr.lang.graph import make_h

PHONES = ["sil", "aa", "b"]
INDEX = {p: i for i, p in enumerate(PHONES)}


def test_state_path():
    assert CI_TOPOLOGY.state_path(6).tolist() == [0, 0, 1, 1, 2, 2]
    assert CI_TOPOLOGY.state_path(3).tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="2 frames is shorter than the 3 frames"):
        CI_TOPOLOGY.state_path(2)
    assert Topology(states_per_phone=1).state_path(1).tolist() == [0]


def test_segments_to_pdfs_by_frame_centre():
    # 0.0-0.1 sil, 0.1-0.16 b, 0.16-0.3 aa; 10 ms frames centred at 12.5, 22.5, ... ms
    segs = [(0.0, 0.1, "sil"), (0.1, 0.16, "b"), (0.16, 0.3, "aa")]
    centres = FeatureConfig().frame_centers(28)
    pdfs = segments_to_pdfs(segs, centres, INDEX, "u1")
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
    pdfs = segments_to_pdfs(segs, FeatureConfig().frame_centers(28), INDEX, "u1", stats=stats)
    assert pdfs_to_phones(pdfs, PHONES) == ["sil", "b", "aa", "sil"]  # every phone kept
    runs = [round((e - s) * 100) for s, e, _ in pdf_segments(pdfs, PHONES, 0.01)]
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
    with pytest.raises(TooShortError, match="utterance u9: 8 frames cannot hold 3 phones"):
        fit_min_frames(ok, 8, 3, "u9")


def test_targets_are_paths_of_h():
    """Every target sequence, short phones included, is accepted by the decoding graph's H."""
    rng = np.random.default_rng(0)
    h = make_h(len(PHONES), with_disambig=False)
    kaldifst.arcsort(h, sort_type="ilabel")
    for _ in range(20):
        ends = np.cumsum(rng.uniform(0.002, 0.09, size=8))
        segs = [(s, e, PHONES[rng.integers(3)]) for s, e in zip(np.r_[0, ends[:-1]], ends)]
        centres = FeatureConfig().frame_centers(int(ends[-1] * 100))
        pdfs = segments_to_pdfs(segs, centres, INDEX, "u")
        acceptor = kaldifst.make_linear_acceptor((pdfs + 1).tolist())
        kaldifst.arcsort(acceptor, sort_type="olabel")
        assert kaldifst.compose(acceptor, h).num_states > 0, pdfs.tolist()


def test_unknown_phone_names_utterance():
    with pytest.raises(DataError, match="utterance u7: phone 'zz'"):
        segments_to_pdfs([(0.0, 0.5, "zz")], FeatureConfig().frame_centers(10), INDEX, "u7")


def test_pdf_segments_split_repeated_phone():
    pdfs = np.array([0, 0, 1, 2, 0, 1, 2, 3, 4, 5])  # sil sil aa
    assert pdfs_to_phones(pdfs, PHONES) == ["sil", "sil", "aa"]
    assert pdfs_to_phones(pdfs, PHONES, split_on_state_reset=False) == ["sil", "aa"]
    segs = pdf_segments(pdfs, PHONES, 0.01)
    assert [(round(s, 2), round(e, 2), p) for s, e, p in segs] == [
        (0.0, 0.04, "sil"), (0.04, 0.07, "sil"), (0.07, 0.1, "aa")]
