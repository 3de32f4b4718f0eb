from asr.cli import main
from asr.phones.timit import timit_lang


def test_score_phones_and_words(tmp_path, capsys):
    ref, hyp = tmp_path / "ref", tmp_path / "hyp"
    ref.write_text("u1 sil dh ax k ae t sil\nu2 sil m ae t sil\n")
    # ax folds to ah, so 'ah' for 'ax' is correct; u2's hypothesis is empty
    hyp.write_text("u1 sil dh ah k eh t sil\nu2\n")
    timit_lang().write(tmp_path / "lang")
    assert main(["score", str(ref), str(hyp), "--lang", str(tmp_path / "lang"),
                 "--report", str(tmp_path / "rep.txt")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("%PER 50.00 [ 6 / 12, 0 ins, 5 del, 1 sub ]")
    assert main(["score", str(ref), str(hyp)]) == 0  # without a lang: the phones as given
    assert capsys.readouterr().out.startswith("%PER 58.33 [ 7 / 12, 0 ins, 5 del, 2 sub ]")
    assert main(["score", "--unit", "word", "--lang", str(tmp_path / "lang"), str(ref), str(hyp)]) == 1
    assert "--lang does nothing with --unit word" in capsys.readouterr().err
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


def test_cli_argument_errors_are_one_line(tmp_path, capsys):
    """A malformed --extra-test, a bad subset speaker list, and energy on MFCC: exit 1, one clear line."""
    assert main(["prepare-timit", str(tmp_path), str(tmp_path / "out"), "--dev-spk", "d", "--test-spk", "t",
                 "--extra-test", "test_unseen"]) == 1
    assert "--extra-test 'test_unseen': expected NAME=SPEAKER_LIST" in capsys.readouterr().err
    assert main(["subset-data", str(tmp_path), str(tmp_path / "sub"), "--speakers", str(tmp_path / "none")]) == 1
    assert "none: speaker list does not exist" in capsys.readouterr().err
    assert main(["subset-data", str(tmp_path), str(tmp_path / "sub")]) == 1
    assert "give --speakers or --shortest" in capsys.readouterr().err
    assert main(["make-feats", str(tmp_path / "f"), str(tmp_path), "--kind", "mfcc", "--energy"]) == 1
    assert "energy is an fbank option" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "sub").exists()
