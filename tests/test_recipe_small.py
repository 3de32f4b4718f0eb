"""The demo recipe on the `small` corpus (about 10 minutes on 2 CPU cores).

Slow: deselected by default; run with ``pytest -m slow`` (``make test-slow``).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_small_recipe_per(tmp_path):
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    proc = subprocess.run(["bash", str(ROOT / "recipes/synth/run.sh"), "--size", "small", "--out", str(tmp_path),
                           "--device", "cpu"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    model = tmp_path / "exp/synth_small/ci_lstm"
    dev = yaml.safe_load((model / "decode_dev/scores.yaml").read_text())
    test = yaml.safe_load((model / "decode_test/scores.yaml").read_text())
    # Measured with seed 0 on CPU: dev 19.32%, test 23.73% PER, frame acc 66.6%;
    # pocketsphinx's phone decoder reads 61% on this test set.
    assert dev["per"] < 22.0, dev
    assert test["per"] < 27.0, test
    assert test["frame_acc"] > 63.0, test
