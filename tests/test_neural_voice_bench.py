"""bench/neural_voice.py on hand-made decode dirs: the table's cells and the bootstrap rows."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("neural_voice", ROOT / "bench/neural_voice.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _system(root: Path, name: str, wer: dict[str, float], hyps: dict[str, str]) -> Path:
    model = root / name
    for set_name, value in wer.items():
        (model / f"decode_words_{set_name}").mkdir(parents=True)
        (model / f"decode_words_{set_name}/scores.yaml").write_text(yaml.safe_dump({"wer": value}))
        (model / f"decode_words_{set_name}/hyp.txt").write_text(hyps[set_name])
    (model / "decode_test").mkdir()
    (model / "decode_test/scores.yaml").write_text(yaml.safe_dump({"per": 12.5}))
    (model / "word_decode.yaml").write_text(yaml.safe_dump({"acwt": 0.12, "word_penalty": -1.0}))
    return model


def test_table_and_comparison(tmp_path, capsys):
    data = tmp_path / "data"
    (data / "test").mkdir(parents=True)
    (data / "test/text").write_text("u1 a b c d\nu2 e f g h\n")
    _system(tmp_path, "a", {"test": 50.0}, {"test": "u1 a b x y\nu2 e f x y\n"})
    _system(tmp_path, "b", {"test": 12.5}, {"test": "u1 a b c d\nu2 e f g x\n"})
    bench = _bench()
    assert bench.main(["--data", str(data), "--system", f"a={tmp_path / 'a'}", "--system", f"b={tmp_path / 'b'}",
                       "--sets", "test", "test_neural", "--compare", "a,b"]) == 0
    out = capsys.readouterr().out
    assert "| a | 50.00 | — | 12.50 | — | — | — | 0.12 / -1 |" in out
    assert "| b | 12.50 | — | 12.50 | — | — | — | 0.12 / -1 |" in out
    row = next(line for line in out.splitlines() if line.startswith("| a → b | test |"))
    assert "| 50.00 | 12.50 | -37.50 [" in row
    with pytest.raises(SystemExit):
        bench.main(["--data", str(data), "--system", "a=" + str(tmp_path / "a"), "--compare", "a,c"])
