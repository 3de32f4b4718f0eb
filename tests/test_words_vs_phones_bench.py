"""bench/words_vs_phones.py: the two layouts' utterance ids are matched by speaker name and
transcript, and both systems are scored against the same references."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import words_vs_phones as bench  # noqa: E402

SPEAKERS = """; Synthetic speakers
;ID  |SEX| SUBSET           |MINUTES| NAME
252  | M | test             |  0.35 | MEYV0 kal
253  | F | test             |  0.30 | FABC0 slt
"""


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))


@pytest.fixture
def dirs(tmp_path):
    (tmp_path / "w/corpus").mkdir(parents=True)
    (tmp_path / "w/corpus/SPEAKERS.TXT").write_text(SPEAKERS)
    _write(tmp_path / "p/test/text", ["meyv0_si1 a b c d", "fabc0_si2 e f g h", "meyv0_si3 e f g h"])
    _write(tmp_path / "w/test/text", ["252-1-0000 e f g h", "252-1-0001 a b c d", "253-2-0000 e f g h"])
    _write(tmp_path / "pm/decode_words_test/hyp.txt", ["meyv0_si1 a b c d", "fabc0_si2 e f g h", "meyv0_si3 e f x h"])
    # the word system: one error on meyv0_si1 (252-1-0001), two on fabc0_si2 (253-2-0000)
    _write(tmp_path / "wm/decode_words_test/hyp.txt", ["252-1-0000 e f g h", "252-1-0001 a b c", "253-2-0000 e y g z"])
    return tmp_path


def test_ids_are_matched_and_both_systems_scored_on_one_reference(dirs, capsys):
    assert bench.main(["--pair", f"cd={dirs / 'pm'},{dirs / 'wm'}", "--phones-data", str(dirs / "p"),
                       "--words-data", str(dirs / "w"), "--sets", "test", "dev"]) == 0
    out, err = capsys.readouterr()
    row = [line for line in out.splitlines() if line.startswith("| cd | test |")]
    # 12 reference words: phones 1 error (8.33%), words 3 errors (25.00%)
    assert row and row[0].startswith("| cd | test | 8.33 | 25.00 | +200.0% | +16.67 [")
    assert "cd / dev: no word decode of both systems, skipped" in err


def test_an_utterance_without_a_twin_is_named(dirs):
    _write(dirs / "w/test/text", ["252-1-0000 e f g h", "252-1-0001 a b c d", "253-2-0000 never said"])
    with pytest.raises(SystemExit, match="utterance 253-2-0000 .*fabc0.*no twin"):
        bench.main(["--pair", f"cd={dirs / 'pm'},{dirs / 'wm'}", "--phones-data", str(dirs / "p"),
                    "--words-data", str(dirs / "w")])
    with pytest.raises(SystemExit):
        bench.main(["--pair", "cd=only_one", "--phones-data", str(dirs / "p"), "--words-data", str(dirs / "w")])
