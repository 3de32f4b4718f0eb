from asr.cli import main


def test_score_phones_and_words(tmp_path, capsys):
    ref, hyp = tmp_path / "ref", tmp_path / "hyp"
    ref.write_text("u1 sil dh ax k ae t sil\nu2 sil m ae t sil\n")
    # ax folds to ah, so 'ah' for 'ax' is correct; u2's hypothesis is empty
    hyp.write_text("u1 sil dh ah k eh t sil\nu2\n")
    assert main(["score", str(ref), str(hyp), "--report", str(tmp_path / "rep.txt")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("%PER 50.00 [ 6 / 12, 0 ins, 5 del, 1 sub ]")
    assert "ae -> eh" in (tmp_path / "rep.txt").read_text().replace("  ", " ")
    assert main(["score", "--unit", "word", str(ref), str(hyp)]) == 0
    # word scoring compares tokens as they are: no folding, so ah/ax is an error too
    assert capsys.readouterr().out.startswith("%WER 58.33 [ 7 / 12, 0 ins, 5 del, 2 sub ]")


def test_score_errors_name_the_files(tmp_path, capsys):
    ref, hyp = tmp_path / "ref", tmp_path / "hyp"
    ref.write_text("u1 a b\n")
    hyp.write_text("u9 a b\n")
    assert main(["score", str(ref), str(hyp)]) == 1
    err = capsys.readouterr().err
    assert f"{hyp} against {ref}" in err and "u9" in err
    hyp.write_text("u1 a\nu1 b\n")
    assert main(["score", str(ref), str(hyp)]) == 1
    assert f"{hyp}:2: duplicate utterance 'u1'" in capsys.readouterr().err
    assert main(["score", str(ref), str(tmp_path / "nope")]) == 1
    assert "nope: transcript file does not exist" in capsys.readouterr().err
