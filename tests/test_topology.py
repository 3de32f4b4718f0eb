"""HMM topologies other than left to right: Kaldi's 5-state silence read from its topo
file, its shortest path, uniform splits, transition costs, alignment checks and H."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from asr.errors import DataError, ModelError
from asr.hmm.context import ContextDependency
from asr.hmm.transitions import PhoneRun, Transitions, alignment_from_runs, check_alignment, enter_tid, loop_tid
from asr.phones.lang import parse_topo
from asr.phones.topology import PhoneHmm, Topology

PHONES = ["sil", "a", "b"]
#: Kaldi's egs/wsj/s5 topology, as utils/gen_topo.pl writes it (phone 1 silence, 2-3 not)
KALDI_TOPO = """<Topology>
<TopologyEntry>
<ForPhones>
2 3
</ForPhones>
<State> 0 <PdfClass> 0 <Transition> 0 0.75 <Transition> 1 0.25 </State>
<State> 1 <PdfClass> 1 <Transition> 1 0.75 <Transition> 2 0.25 </State>
<State> 2 <PdfClass> 2 <Transition> 2 0.75 <Transition> 3 0.25 </State>
<State> 3 </State>
</TopologyEntry>
<TopologyEntry>
<ForPhones>
1
</ForPhones>
<State> 0 <PdfClass> 0 <Transition> 0 0.25 <Transition> 1 0.25 <Transition> 2 0.25 <Transition> 3 0.25 </State>
<State> 1 <PdfClass> 1 <Transition> 1 0.25 <Transition> 2 0.25 <Transition> 3 0.25 <Transition> 4 0.25 </State>
<State> 2 <PdfClass> 2 <Transition> 1 0.25 <Transition> 2 0.25 <Transition> 3 0.25 <Transition> 4 0.25 </State>
<State> 3 <PdfClass> 3 <Transition> 1 0.25 <Transition> 2 0.25 <Transition> 3 0.25 <Transition> 4 0.25 </State>
<State> 4 <PdfClass> 4 <Transition> 4 0.75 <Transition> 5 0.25 </State>
<State> 5 </State>
</TopologyEntry>
</Topology>
"""


@pytest.fixture
def topo(tmp_path: Path) -> Topology:
    (tmp_path / "topo").write_text(KALDI_TOPO)
    return parse_topo(tmp_path / "topo", PHONES)


def test_kaldis_topology_file_is_read(topo):
    sil, a = topo.hmm("sil"), topo.hmm("a")
    assert a == PhoneHmm(3, 0.75) and a.is_left_to_right and not sil.is_left_to_right
    assert sil.num_states == 5 and sil.min_frames == 3  # 0 → 1|2|3 → 4 → out
    assert sil.frames_to_exit.tolist() == [2, 1, 1, 1, 0]
    assert sil.state_path(3).tolist() == [0, 1, 4]
    assert sil.state_path(7).tolist() == [0, 0, 1, 2, 2, 3, 4]  # all five states when there is room
    with pytest.raises(ValueError):
        sil.state_path(2)


def test_costs_are_kaldis(topo):
    """A self-loop costs -ln p · scale; a move -ln(1 - p_ii) · scale - ln(p_ij / (1 - p_ii))."""
    sil = topo.hmm("sil")
    assert sil.loop_costs(0.1)[0] == pytest.approx(-0.1 * math.log(0.25))
    assert sil.move_costs(0.1)[1, 3] == pytest.approx(-0.1 * math.log(0.75) - math.log(1 / 3))
    assert sil.move_costs(0.1)[4, 5] == pytest.approx(-0.1 * math.log(0.25))  # 4 leaves: renormalised 1
    assert np.isinf(sil.move_costs(0.1)[0, 4]) and np.isinf(sil.move_costs(0.1)[1, 0])
    assert topo.hmm("a").move_costs(0.1)[0, 1] == pytest.approx(topo.hmm("a").costs(0.1)[1])


@pytest.mark.parametrize("edit, pattern", [
    (("<State> 1 <PdfClass> 1 <Transition> 1 0.25", "<State> 1 <PdfClass> 1 <Transition> 0 0.25"),
     "only state 0 may go to state 0"),
    (("<Transition> 4 0.75 <Transition> 5 0.25", "<Transition> 4 0.7 <Transition> 5 0.25"), "sum to 1"),
    (("<State> 4 <PdfClass> 4 <Transition> 4 0.75 <Transition> 5 0.25", "<State> 4 <PdfClass> 4 <Transition> 4 0.75 <Transition> 3 0.25"),
     "cannot be left"),
    (("<State> 2 <PdfClass> 2 <Transition> 1 0.25", "<State> 2 <PdfClass> 1 <Transition> 1 0.25"), "PdfClass"),
    (("2 3\n</ForPhones>", "2\n</ForPhones>"), "phone 'b' has no topology entry"),
])
def test_bad_topology_entries_are_named(tmp_path, edit, pattern):
    assert edit[0] in KALDI_TOPO
    (tmp_path / "topo").write_text(KALDI_TOPO.replace(edit[0], edit[1], 1))
    with pytest.raises(DataError, match=pattern) as err:
        parse_topo(tmp_path / "topo", PHONES)
    assert str(tmp_path / "topo") in str(err.value)


def test_a_phone_that_cannot_be_reached_whole_is_refused():
    with pytest.raises(ModelError, match="cannot be reached"):
        PhoneHmm(3, transitions=((0.5, 0.0, 0.0, 0.5), (0.0, 0.5, 0.0, 0.5), (0.0, 0.0, 0.5, 0.5)))


def test_alignments_follow_the_topology(topo):
    """Alignments of the ergodic silence: its paths pass the check, others do not; the
    uniform split uses every state when the phone is long enough."""
    ctx = ContextDependency.ci(PHONES, topo)
    tr = Transitions(ctx)
    assert ctx.num_pdfs == 5 + 3 + 3
    ali = alignment_from_runs([PhoneRun(0, 0, 3), PhoneRun(1, 3, 6), PhoneRun(0, 6, 14)], PHONES, topo)
    check_alignment(ali, PHONES, topo, 14, "u")
    assert tr.tid_state[ali[:3] - 1].tolist() == [0, 1, 4]  # the shortest path of a 3-frame silence
    assert set(tr.tid_state[ali[6:] - 1].tolist()) == {0, 1, 2, 3, 4}

    def path(states: list[int]) -> np.ndarray:  # silence pdfs are its states (CI, phone 0)
        return np.array([loop_tid(s) if i and s == states[i - 1] else enter_tid(s)
                         for i, s in enumerate(states)], dtype=np.int32)

    check_alignment(path([0, 2, 2, 1, 3, 4]), PHONES, topo, 6, "u")  # back from 2 to 1: allowed
    for bad, why in (([0, 4, 4], "0 → 4"), ([0, 1, 1, 0, 4], "back to 0 inside the phone"), ([0, 1, 3], "ends in 3")):
        with pytest.raises(DataError):
            check_alignment(path(bad), PHONES, topo, len(bad), why)


def test_path_cost_of_an_ergodic_path(topo):
    ctx = ContextDependency.ci(PHONES, topo)
    states = [0, 0, 2, 1, 4]
    tids = np.array([enter_tid(0), loop_tid(0), enter_tid(2), enter_tid(1), enter_tid(4)])
    sil = topo.hmm("sil")
    loop, move = sil.loop_costs(0.1), sil.move_costs(0.1)
    expected = loop[0] + move[0, 2] + move[2, 1] + move[1, 4] + move[4, 5]
    assert Transitions(ctx).path_cost(tids, 0.1) == pytest.approx(expected)
    assert states == Transitions(ctx).tid_state[tids - 1].tolist()


@pytest.mark.parametrize("text, pattern", [
    ("", "not a Kaldi topology file"),
    (KALDI_TOPO.replace("</TopologyEntry>\n<TopologyEntry>", "</TopologyEntry>\njunk\n<TopologyEntry>"),
     r":11: unexpected text 'junk' between topology entries"),
    (KALDI_TOPO.replace("<Transition> 4 0.75 <Transition> 5 0.25", "<Transition> 4 abc <Transition> 5 0.25"),
     "'abc' is not a number"),
    (KALDI_TOPO.replace("<Transition> 4 0.75 <Transition> 5 0.25", "<Transition> 4 1.0"), "can never be left"),
    (KALDI_TOPO.replace("</Topology>\n", ""), "not a Kaldi topology file"),
])
def test_malformed_topology_files_are_named(tmp_path, text, pattern):
    (tmp_path / "topo").write_text(text)
    with pytest.raises(DataError, match=pattern) as err:
        parse_topo(tmp_path / "topo", PHONES)
    assert str(tmp_path / "topo") in str(err.value)


def test_roots_need_every_phone_once(tmp_path):
    from asr.phones.lang import Lang

    lang = Lang(("NSN", "SIL", "a"), ("SIL", "NSN"), "SIL", Topology(), not_split=("SIL", "NSN", "SIL"))
    assert lang.silence == ("NSN", "SIL") and lang.not_split == ("NSN", "SIL")  # phone order, once
    lang.write(tmp_path)
    assert Lang.load(tmp_path) == lang and Lang.load(tmp_path).digest() == lang.digest()
    roots = tmp_path / "phones/roots.txt"
    roots.write_text("not-shared not-split NSN\nnot-shared not-split SIL\n")
    with pytest.raises(DataError, match="phone 'a' has no root"):
        Lang.load(tmp_path)
    roots.write_text("not-shared not-split NSN\nnot-shared not-split SIL\nshared split a\nnot-shared not-split a\n")
    with pytest.raises(DataError, match=r"roots.txt:4: phone 'a' has a root already \(line 3\)"):
        Lang.load(tmp_path)
