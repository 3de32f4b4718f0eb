import logging
import re

import kaldiio
import numpy as np
import pytest
import yaml

from asr.errors import DataError, ModelError
from asr.hmm.alignment import (AlignmentSet, check_against_features, format_alignment, format_ctm,
                               format_textgrid, read_alignments, write_alignments, write_textgrids)
from asr.hmm.context import ContextDependency
from asr.phones.topology import DEFAULT_TOPOLOGY as CI_TOPOLOGY, Topology
from asr.hmm.transitions import PhoneRun, alignment_from_runs, enter_tid, loop_tid
from asr.phones.timit import PHONES48
from asr.symbols import read_phone_table

PHONES = list(PHONES48)
SHIFT = 0.01


def _runs(spec, phones=PHONES):
    """[(phone, frames), …] → PhoneRuns with consecutive frames."""
    runs, t = [], 0
    for phone, n in spec:
        runs.append(PhoneRun(phones.index(phone), t, t + n))
        t += n
    return runs


def _ali(spec, phones=PHONES, topology=CI_TOPOLOGY):
    return alignment_from_runs(_runs(spec, phones), phones, topology)


SPECS = {
    "u1": [("sil", 5), ("aa", 4), ("b", 3), ("sil", 6)],          # 18 frames
    "u2": [("sil", 3), ("aa", 4), ("aa", 5), ("sil", 3)],         # 15 frames, repeated phone
    "u3": [("sil", 7), ("iy", 9), ("z", 3), ("sil", 4)],          # 23 frames
}


def _aset(specs=SPECS, info=None):
    return AlignmentSet(PHONES, CI_TOPOLOGY, SHIFT, {u: _ali(s) for u, s in specs.items()},
                        info if info is not None else
                        {"source": {"model": "exp/ci", "acwt": 0.1, "data": "data/train"},
                         "figures": {"loglike_per_frame": -42.5}})


def _pdf(phone, state):
    return ContextDependency.ci(PHONES).pdf((PHONES.index(phone) + 1,), state)


# ---------------------------------------------------------------- storage

def test_round_trip(tmp_path):
    aset = _aset()
    ali_dir = tmp_path / "ali"
    write_alignments(ali_dir, aset)
    assert sorted(p.name for p in ali_dir.iterdir()) == ["ali.ark", "ali.scp", "ali.yaml", "phones.txt"]
    back = read_alignments(ali_dir, expect_phones=PHONES, expect_topology=CI_TOPOLOGY)
    assert back == aset
    assert back.info["source"]["acwt"] == 0.1 and back.info["figures"] == {"loglike_per_frame": -42.5}
    assert all(a.dtype == np.int32 for a in back.alignments.values())
    assert read_phone_table(ali_dir / "phones.txt") == PHONES
    meta = yaml.safe_load((ali_dir / "ali.yaml").read_text())
    assert meta["num_utterances"] == 3 and meta["num_frames"] == 18 + 15 + 23
    assert meta["topology"] == {"states_per_phone": 3, "self_loop_prob": 0.75}
    assert meta["frame_shift_s"] == SHIFT
    # readable with kaldiio directly: one int vector per utterance
    direct = kaldiio.load_scp(str(ali_dir / "ali.scp"))
    assert sorted(direct) == ["u1", "u2", "u3"]
    for utt, spec in SPECS.items():
        vec = direct[utt]
        assert vec.ndim == 1 and vec.dtype == np.int32
        assert len(vec) == sum(n for _, n in spec)
        assert np.array_equal(vec, aset.alignments[utt])
    # no temp files left behind
    assert not list(ali_dir.glob(".*"))


def test_equality_sees_differences():
    a, b = _aset(), _aset()
    assert a == b
    b.alignments["u1"] = b.alignments["u1"].copy()
    b.alignments["u1"][1] = loop_tid(_pdf("sil", 0)) + 2  # another label
    assert a != b
    assert a != _aset(info={})


def test_rewrite_replaces_and_failed_write_keeps_old(tmp_path):
    ali_dir = tmp_path / "ali"
    write_alignments(ali_dir, _aset())
    small = _aset({"u9": SPECS["u1"]}, info={})
    write_alignments(ali_dir, small)
    assert read_alignments(ali_dir) == small
    bad = _aset({"u9": SPECS["u2"]})
    bad.alignments["u9"][0] = loop_tid(_pdf("sil", 0))
    with pytest.raises(DataError):
        write_alignments(ali_dir, bad)
    assert read_alignments(ali_dir) == small  # checked before anything was touched


@pytest.mark.parametrize("what", ["skip", "loop_on_new_pdf", "ends_inside", "out_of_range"])
def test_broken_alignment_refused_at_write(tmp_path, what):
    aset = _aset()
    tids = aset.alignments["u2"].copy()
    # u2: sil 0..3, aa 3..7 (states 0,1,2,2), aa 7..12, sil 12..15
    if what == "skip":  # aa state 0 → state 2, skipping state 1
        tids[4] = enter_tid(_pdf("aa", 2))
        frame = "frame 4"
    elif what == "loop_on_new_pdf":  # the second aa starts with a self-loop
        tids[7] = loop_tid(_pdf("aa", 0))
        frame = "frame 7"
    elif what == "ends_inside":
        tids = tids[:13]
        frame = "ends inside a phone"
    else:
        tids[2] = 2 * 3 * len(PHONES) + 1
        frame = "out of range"
    aset.alignments["u2"] = tids
    ali_dir = tmp_path / "ali"
    with pytest.raises(DataError, match=rf"utterance u2: .*{frame}"):
        write_alignments(ali_dir, aset)
    assert not ali_dir.exists() or not any(ali_dir.iterdir())


def test_write_refuses_bad_input(tmp_path):
    with pytest.raises(DataError, match="no alignments"):
        write_alignments(tmp_path / "a", _aset({}))
    floats = _aset()
    floats.alignments["u1"] = floats.alignments["u1"].astype(np.float64)
    with pytest.raises(DataError, match="u1: .*dtype float64"):
        write_alignments(tmp_path / "a", floats)
    with pytest.raises(DataError, match="reserved"):
        write_alignments(tmp_path / "a", _aset(info={"num_frames": 3}))
    with pytest.raises(DataError, match="whitespace"):
        write_alignments(tmp_path / "a", _aset({"u 1": SPECS["u1"]}))
    with pytest.raises(DataError, match="frame shift"):
        write_alignments(tmp_path / "a", AlignmentSet(PHONES, CI_TOPOLOGY, 0.0,
                                                      {"u1": _ali(SPECS["u1"])}, {}))
    with pytest.raises(DataError, match="plain YAML"):
        write_alignments(tmp_path / "a", _aset(info={"source": object()}))
    assert not (tmp_path / "a").exists()


def test_read_with_other_phones_or_topology(tmp_path):
    ali_dir = tmp_path / "ali_train"
    write_alignments(ali_dir, _aset())
    other = PHONES[:-1] + ["zz"]
    with pytest.raises(ModelError, match=r"ali_train: alignment was made for another phone set.*"
                                         r"phone 48 is 'zh', expected 'zz'"):
        read_alignments(ali_dir, expect_phones=other)
    with pytest.raises(ModelError, match="ali_train: alignment was made for another phone set"):
        read_alignments(ali_dir, expect_phones=PHONES[:-1])
    with pytest.raises(ModelError, match="ali_train: alignment was made for another topology"):
        read_alignments(ali_dir, expect_topology=Topology(states_per_phone=3, self_loop_prob=0.5))
    with pytest.raises(ModelError, match="ali_train: alignment was made for another topology"):
        read_alignments(ali_dir, expect_topology=Topology(states_per_phone=4))


def test_missing_files(tmp_path):
    with pytest.raises(DataError, match="nowhere: alignment directory does not exist"):
        read_alignments(tmp_path / "nowhere")
    for name in ["ali.yaml", "phones.txt", "ali.scp", "ali.ark"]:
        ali_dir = tmp_path / f"no_{name}"
        write_alignments(ali_dir, _aset())
        (ali_dir / name).unlink()
        with pytest.raises(DataError, match=re.escape(str(ali_dir))):
            read_alignments(ali_dir)


def test_truncated_ark_raises_data_error(tmp_path):
    ali_dir = tmp_path / "ali"
    write_alignments(ali_dir, _aset())
    ark = ali_dir / "ali.ark"
    data = ark.read_bytes()
    for cut in range(len(data)):
        ark.write_bytes(data[:cut])
        with pytest.raises(DataError, match=re.escape(str(ali_dir))):
            read_alignments(ali_dir)
    ark.write_bytes(data)
    assert read_alignments(ali_dir) == _aset()


def test_corrupt_files_raise_data_error(tmp_path):
    ali_dir = tmp_path / "ali"
    write_alignments(ali_dir, _aset())
    ark = ali_dir / "ali.ark"
    data = ark.read_bytes()
    # the binary marker of u1 replaced: not a Kaldi binary object
    ark.write_bytes(data.replace(b"u1 \x00B", b"u1 \x00X", 1))
    with pytest.raises(DataError, match=r"ali.scp: utterance u1: cannot read"):
        read_alignments(ali_dir)
    # a label in u1 changed to a self-loop of another state: not an HMM path
    ark.write_bytes(data)
    vec = kaldiio.load_scp(str(ali_dir / "ali.scp"))["u1"]
    good = np.int32(vec[1]).tobytes()
    assert vec[1] == loop_tid(_pdf("sil", 0))
    pos = data.index(b"\x04" + np.int32(vec[0]).tobytes() + b"\x04" + good) + 6
    ark.write_bytes(data[:pos] + np.int32(loop_tid(_pdf("aa", 1))).tobytes() + data[pos + 4:])
    with pytest.raises(DataError, match=r"utterance u1: alignment is not an HMM path at frame 1"):
        read_alignments(ali_dir)
    ark.write_bytes(data)
    # scp and ali.yaml from different runs
    scp = ali_dir / "ali.scp"
    lines = scp.read_text().splitlines()
    scp.write_text("\n".join(lines[:2]) + "\n")
    with pytest.raises(DataError, match="ali.scp has 2 utterances"):
        read_alignments(ali_dir)
    scp.write_text("\n".join(lines) + "\n")
    meta = (ali_dir / "ali.yaml").read_text()
    (ali_dir / "ali.yaml").write_text("topology: [unclosed\n")
    with pytest.raises(DataError, match="ali.yaml: cannot read"):
        read_alignments(ali_dir)
    (ali_dir / "ali.yaml").write_text(yaml.safe_dump({
        "format_version": 1, "topology": {"states_per_phone": 0}, "frame_shift_s": 0.01,
        "num_utterances": 3, "num_frames": 56}))
    with pytest.raises(DataError, match="ali.yaml: bad topology"):
        read_alignments(ali_dir)
    (ali_dir / "ali.yaml").write_text(meta)
    assert read_alignments(ali_dir) == _aset()  # every file restored
    (ali_dir / "phones.txt").write_text("<eps> 0\naa one\n")
    with pytest.raises(DataError, match="bad phone table: .*phones.txt"):
        read_alignments(ali_dir)


def test_pdfs_for_a_model():
    aset = _aset()
    ci = ContextDependency.ci(PHONES, CI_TOPOLOGY)
    pdfs = aset.pdfs(ci)
    assert sorted(pdfs) == ["u1", "u2", "u3"]
    # u1: sil 5 frames (states 0,0,1,1,2), then aa 4 (0,0,1,2): uniform split
    assert pdfs["u1"][:9].tolist() == [_pdf("sil", k) for k in (0, 0, 1, 1, 2)] + \
        [_pdf("aa", k) for k in (0, 0, 1, 2)]
    assert pdfs["u1"].dtype == np.int64
    with pytest.raises(ModelError, match="another phone set"):
        aset.pdfs(ContextDependency.ci(PHONES[:-1], CI_TOPOLOGY))
    with pytest.raises(ModelError, match="another topology"):
        aset.pdfs(ContextDependency.ci(PHONES, Topology(states_per_phone=3, self_loop_prob=0.5)))


def test_runs_and_segments():
    aset = _aset()
    assert [(aset.phones[r.phone], r.start, r.end) for r in aset.runs("u2")] == \
        [("sil", 0, 3), ("aa", 3, 7), ("aa", 7, 12), ("sil", 12, 15)]
    segs = aset.segments("u1")
    assert [p for _, _, p in segs] == ["sil", "aa", "b", "sil"]
    assert segs[0][0] == 0.0 and segs[-1][1] == pytest.approx(0.18)
    assert all(a[1] == b[0] for a, b in zip(segs, segs[1:]))
    with pytest.raises(DataError, match="no alignment for utterance 'nope'"):
        aset.runs("nope")


# ---------------------------------------------------------------- features

def test_check_against_features(caplog):
    aset = _aset()
    feats = {"u1": np.zeros((18, 4), np.float32), "u2": np.zeros((15, 4), np.float32),
             "x1": np.zeros((9, 4), np.float32), "x0": np.zeros((9, 4), np.float32)}
    with caplog.at_level(logging.WARNING):
        assert check_against_features(aset, feats, "ali vs data") == ["x0", "x1"]
    assert "ali vs data: 2 of 4 utterances have no alignment" in caplog.text
    assert check_against_features(aset, {"u1": feats["u1"]}, "w") == []
    feats["u2"] = np.zeros((16, 4), np.float32)
    with pytest.raises(DataError, match="ali vs data: utterance u2: alignment has 15 frames, "
                                        "features have 16"):
        check_against_features(aset, feats, "ali vs data")


# ---------------------------------------------------------------- export

def _parse_ctm(text):
    rows = []
    for line in text.splitlines():
        utt, chan, start, dur, phone = line.split()
        assert chan == "1" and re.fullmatch(r"\d+\.\d\d\d", start) and re.fullmatch(r"\d+\.\d\d\d", dur)
        rows.append((utt, float(start), float(dur), phone))
    return rows


def test_ctm():
    aset = _aset()
    rows = _parse_ctm(format_ctm(aset))
    assert [r[0] for r in rows] == ["u1"] * 4 + ["u2"] * 4 + ["u3"] * 4
    for utt, spec in SPECS.items():
        mine = [r for r in rows if r[0] == utt]
        assert [r[3] for r in mine] == [p for p, _ in spec]
        assert mine[0][1] == 0.0
        for a, b in zip(mine, mine[1:]):
            assert round(a[1] + a[2], 2) == b[1]
        total = sum(n for _, n in spec)
        assert round(mine[-1][1] + mine[-1][2], 2) == round(total * SHIFT, 2)
        assert [round(r[2] / SHIFT) for r in mine] == [n for _, n in spec]
    u2 = _parse_ctm(format_ctm(aset, ["u2"]))
    assert [(r[1], r[2], r[3]) for r in u2] == [(0.0, 0.03, "sil"), (0.03, 0.04, "aa"),
                                                 (0.07, 0.05, "aa"), (0.12, 0.03, "sil")]
    with pytest.raises(DataError, match="nope"):
        format_ctm(aset, ["nope"])


def test_frame_offset_moves_inner_boundaries_and_survives_a_round_trip(tmp_path):
    """With the offset (half of window − shift: a frame is labelled by its window's
    centre) each boundary between frames moves by it, the first stays at 0 and the last
    ends at T · shift + 2 · offset; ali.yaml keeps it, and a dir without it reads 0."""
    aset = _aset()
    aset.frame_offset_s = 0.0075
    bounds = [0.0, 0.0375, 0.0775, 0.1275, 0.165]
    assert [x for a, b, _ in aset.segments("u2") for x in (a, b)] == pytest.approx(
        [x for ab in zip(bounds, bounds[1:]) for x in ab])
    u2 = _parse_ctm(format_ctm(aset, ["u2"]))  # to the millisecond
    assert [r[1] for r in u2] == pytest.approx(bounds[:-1], abs=0.0006)
    assert u2[-1][1] + u2[-1][2] == pytest.approx(bounds[-1], abs=0.0006)
    assert aset.duration("u2") == pytest.approx(15 * SHIFT + 0.015)
    write_alignments(tmp_path / "ali", aset)
    back = read_alignments(tmp_path / "ali")
    assert back == aset and back.frame_offset_s == 0.0075
    meta = yaml.safe_load((tmp_path / "ali" / "ali.yaml").read_text())
    del meta["frame_offset_s"]
    (tmp_path / "ali" / "ali.yaml").write_text(yaml.safe_dump(meta))
    assert read_alignments(tmp_path / "ali").frame_offset_s == 0.0
    aset.frame_offset_s = SHIFT
    with pytest.raises(DataError, match="frame offset"):
        write_alignments(tmp_path / "bad", aset)


def test_ctm_rounding_keeps_times_contiguous():
    aset = AlignmentSet(PHONES, CI_TOPOLOGY, 0.0125, {"u": _ali([("sil", 3), ("aa", 5), ("sil", 3)])})
    rows = _parse_ctm(format_ctm(aset))
    for a, b in zip(rows, rows[1:]):
        assert round(a[1] + a[2], 3) == b[1]
    assert round(rows[-1][1] + rows[-1][2], 3) == round(11 * 0.0125, 3)


def _unquote(value):
    m = re.fullmatch(r'"((?:[^"]|"")*)"', value)
    assert m, value
    return m.group(1).replace('""', '"')


def parse_textgrid(text):
    """A minimal reader of Praat's long TextGrid format (interval tiers only)."""
    lines = text.splitlines()
    assert lines[:3] == ['File type = "ooTextFile"', 'Object class = "TextGrid"', ""]
    assert lines[5:8] == ["tiers? <exists> ", "size = 2 ", "item []: "]
    grid = {"xmin": float(re.fullmatch(r"xmin = (\S+) ", lines[3]).group(1)),
            "xmax": float(re.fullmatch(r"xmax = (\S+) ", lines[4]).group(1)),
            "size": 2, "tiers": []}
    current = None
    for line in lines[8:]:
        if m := re.fullmatch(r"    item \[(\d+)\]:", line):
            assert int(m.group(1)) == len(grid["tiers"]) + 1
            current = {"intervals": []}
            grid["tiers"].append(current)
            tier = current
        elif m := re.fullmatch(r"        intervals \[(\d+)\]:", line):
            assert int(m.group(1)) == len(tier["intervals"]) + 1
            current = {}
            tier["intervals"].append(current)
        elif m := re.fullmatch(r"        intervals: size = (\d+) ", line):
            tier["declared"] = int(m.group(1))
        elif m := re.fullmatch(r" +(class|name|text) = (\".*\") ", line):
            current[m.group(1)] = _unquote(m.group(2))
        elif m := re.fullmatch(r" +(xmin|xmax) = (-?[0-9.e+-]+) ", line):
            current[m.group(1)] = float(m.group(2))
        else:
            raise AssertionError(f"unexpected line {line!r}")
    for tier in grid["tiers"]:
        assert tier["declared"] == len(tier["intervals"])
    return grid


def _check_contiguous(tier, xmax):
    iv = tier["intervals"]
    assert tier["xmin"] == 0 and tier["xmax"] == xmax
    assert iv[0]["xmin"] == 0 and iv[-1]["xmax"] == xmax
    for a, b in zip(iv, iv[1:]):
        assert a["xmax"] == b["xmin"] and a["xmin"] < a["xmax"]


def test_textgrid_structure():
    aset = _aset()
    grid = parse_textgrid(format_textgrid(aset, "u2"))
    assert grid["xmin"] == 0 and grid["xmax"] == 0.15
    phones, states = grid["tiers"]
    assert (phones["class"], phones["name"]) == ("IntervalTier", "phones")
    assert (states["class"], states["name"]) == ("IntervalTier", "states")
    assert [i["text"] for i in phones["intervals"]] == ["sil", "aa", "aa", "sil"]
    assert [(i["xmin"], i["xmax"]) for i in phones["intervals"]] == \
        [(0, 0.03), (0.03, 0.07), (0.07, 0.12), (0.12, 0.15)]
    assert [i["text"] for i in states["intervals"]] == \
        [f"{p}_{k}" for p in ("sil", "aa", "aa", "sil") for k in range(3)]
    # aa 3..7 has states 0,0,1,2: the state tier says so
    assert [(i["xmin"], i["xmax"]) for i in states["intervals"][3:6]] == \
        [(0.03, 0.05), (0.05, 0.06), (0.06, 0.07)]
    for tier in grid["tiers"]:
        _check_contiguous(tier, 0.15)
    for utt, spec in SPECS.items():
        grid = parse_textgrid(format_textgrid(aset, utt))
        xmax = round(sum(n for _, n in spec) * SHIFT, 9)
        assert grid["xmax"] == xmax
        assert len(grid["tiers"][0]["intervals"]) == len(spec)
        assert len(grid["tiers"][1]["intervals"]) == 3 * len(spec)
        for tier in grid["tiers"]:
            _check_contiguous(tier, xmax)


def test_textgrid_escapes_quotes_and_one_state_repeats():
    phones = ["sil", 'q"x']
    topo = Topology(states_per_phone=1)
    aset = AlignmentSet(phones, topo, SHIFT,
                        {"u": _ali([("sil", 2), ('q"x', 3), ('q"x', 1), ("sil", 1)], phones, topo)})
    text = format_textgrid(aset, "u")
    assert 'text = "q""x" ' in text and 'text = "q""x_0" ' in text
    grid = parse_textgrid(text)
    assert [i["text"] for i in grid["tiers"][0]["intervals"]] == ["sil", 'q"x', 'q"x', "sil"]
    assert [i["text"] for i in grid["tiers"][1]["intervals"]] == ["sil_0", 'q"x_0', 'q"x_0', "sil_0"]
    assert grid["xmax"] == 0.07


def test_write_textgrids(tmp_path):
    aset = _aset()
    paths = write_textgrids(aset, tmp_path / "tg", ["u3", "u1"])
    assert [p.name for p in paths] == ["u3.TextGrid", "u1.TextGrid"]
    assert paths[0].read_text() == format_textgrid(aset, "u3")
    assert sorted(p.name for p in (tmp_path / "tg").iterdir()) == ["u1.TextGrid", "u3.TextGrid"]
    assert len(write_textgrids(aset, tmp_path / "all")) == 3
    with pytest.raises(DataError, match="file name"):
        write_textgrids(_aset({"a/b": SPECS["u1"]}), tmp_path / "bad")


def test_format_alignment():
    aset = _aset()
    text = format_alignment(aset, "u2")
    lines = text.splitlines()
    assert lines[0] == "u2: 15 frames, 0.15 s, 4 phones"
    phone_lines = [l for l in lines if "states:" in l]
    assert len(phone_lines) == 4
    total = 0
    for line, (phone, n) in zip(phone_lines, SPECS["u2"]):
        start, end, frames, name = line.split()[:4]
        counts = [(int(k), int(c)) for k, c in re.findall(r"(\d)×(\d+)", line)]
        assert name == phone and int(frames) == n
        assert [k for k, _ in counts] == [0, 1, 2] and sum(c for _, c in counts) == n
        assert float(end) - float(start) == pytest.approx(n * SHIFT)
        total += n
    assert total == 15
    assert phone_lines[1].endswith("states: 0×2 1×1 2×1")  # aa over 4 frames
    assert phone_lines[2].endswith("states: 0×2 1×2 2×1")  # aa over 5 frames
    for utt, spec in SPECS.items():
        body = format_alignment(aset, utt)
        assert all(re.search(rf"\s{re.escape(p)}\s+states:", body) for p, _ in spec)


def test_format_alignment_frames():
    aset = _aset()
    text = format_alignment(aset, "u2", frames=True)
    frame_lines = [l.split() for l in text.splitlines() if re.fullmatch(r"\s*\d+\s+\d+\.\d\d\s.*(loop|enter)", l)]
    assert [int(f[0]) for f in frame_lines] == list(range(15))
    assert [f[2] for f in frame_lines] == ["sil"] * 3 + ["aa"] * 9 + ["sil"] * 3
    # one "enter" per state visit: 4 phones × 3 states
    assert sum(f[5] == "enter" for f in frame_lines) == 12
    # frame 7: the second aa enters its state 0 (CI pdf of aa state 0)
    assert frame_lines[7][2:] == ["aa", "0", str(_pdf("aa", 0)), "enter"]
    assert frame_lines[8][2:] == ["aa", "0", str(_pdf("aa", 0)), "loop"]
    assert "loop" not in format_alignment(aset, "u2")


def test_phone_text_lists_each_aligned_phone_once():
    from asr.hmm.alignment import format_phone_text

    assert format_phone_text(_aset()) == "u1 sil aa b sil\nu2 sil aa aa sil\nu3 sil iy z sil\n"
    assert format_phone_text(_aset(), ["u3"]) == "u3 sil iy z sil\n"
