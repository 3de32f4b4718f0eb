"""The MMI denominator graph built from a real phone bigram (H∘C∘G, epsilons removed), checked
against kaldi-decoder's best path over the decoding graph made from the same G."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from asr.decode.wfst import WfstDecoder
from asr.errors import GraphError
from asr.lang.graph import load_graph
from asr.nn.mmi import forward_backward, mmi_objective
from asr.steps.train_mmi import denominator_graph
from test_wfst import CI, TRANSITIONS, build_graph, random_sentences, synthetic_scores


@pytest.fixture(scope="module")
def graphs(tmp_path_factory) -> tuple[Path, Path]:
    """(G.fst, HCG.fst) of a phone bigram over 200 random sentences."""
    d = tmp_path_factory.mktemp("den")
    hcg = build_graph(d, random_sentences(random.Random(1), 200))
    return d / "lang" / "G.fst", hcg


def test_the_denominator_sums_what_the_decoder_maximises(graphs):
    g_path, hcg_path = graphs
    den = denominator_graph(g_path, CI)
    assert den.num_states > 100 and len(den.src) > len(den.final)
    decoder = WfstDecoder(load_graph(hcg_path), TRANSITIONS, beam=40.0, max_active=100000)
    rng = np.random.default_rng(0)
    for scale in (1.0, 10.0):
        phones = [CI.phones.index("sil")] + list(rng.integers(0, len(CI.phones), 6)) + [CI.phones.index("sil")]
        scores, ali = synthetic_scores(phones, rng)
        scores = scores * scale
        best = decoder.decode(scores)
        best_log_p = -(best.graph_cost + best.acoustic_cost)
        y = torch.tensor(scores, dtype=torch.float64)[None]
        log_z, gamma = forward_backward(den, y, torch.tensor([len(scores)]))
        assert log_z.item() >= best_log_p - 1e-4  # a sum over paths is at least its best one
        if scale == 10.0:  # peaked scores: one path holds nearly all the mass
            assert log_z.item() == pytest.approx(best_log_p, abs=1e-3)
            assert (gamma[0].argmax(-1).numpy() == best.pdfs).all()
        np.testing.assert_allclose(gamma[0].sum(-1).numpy(), 1.0, atol=1e-9)
        # the numerator (the best path's pdfs, without its graph costs) plus those costs is one
        # of the denominator's paths: at most the whole
        mmi = mmi_objective(y, torch.tensor([len(scores)]), den, torch.tensor(best.pdfs)[None])
        assert mmi.item() * len(scores) - best.graph_cost <= 1e-6


def test_a_missing_g_is_named(tmp_path):
    with pytest.raises(GraphError, match="G.fst is missing"):
        denominator_graph(tmp_path / "G.fst", CI)
