"""Fixtures shared by several test modules."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_synth_corpus(tmp_path_factory) -> Path:
    """The tiny synthetic corpus in the TIMIT layout (seed 0), flite voices only, made once per
    session (~7 s on 2 cores; the timing is in bench/synth_speed.py). Read it, never change it.
    (tests/test_synth_neural.py makes neural-voice utterances of its own.)"""
    from asr.synth import corpus as synth

    out = tmp_path_factory.mktemp("synth") / "tiny"
    assert synth.generate_corpus(out, "tiny", seed=0, num_jobs=2, neural_voices=()) == out
    return out
