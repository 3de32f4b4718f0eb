import numpy as np
import pytest

from asr.errors import DataError
from asr.features.extract import FeatureConfig
from asr.hmm.targets import pdf_segments, pdfs_to_phones, segments_to_pdfs
from asr.hmm.topology import uniform_states

PHONES = ["sil", "aa", "b"]
INDEX = {p: i for i, p in enumerate(PHONES)}


def test_uniform_states():
    assert uniform_states(6).tolist() == [0, 0, 1, 1, 2, 2]
    assert uniform_states(1).tolist() == [0]


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
