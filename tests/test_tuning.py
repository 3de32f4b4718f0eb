"""The searches that choose decoding scales on dev: the acoustic scale from the cheap end of a
grid down (stopping once it stops helping), the word penalty walked from 0."""

from __future__ import annotations

import pytest

from asr.steps.decode import ACWT_GRID, sweep_down
from asr.steps.decode_words import WORD_PENALTIES, climb_penalty


def _curve(best: float):
    """An error with one minimum at ``best`` (the distance to it), recording what was asked."""
    asked = []

    def error(x: float) -> float:
        asked.append(x)
        return abs(x - best)
    return error, asked


@pytest.mark.parametrize("best", [0.3, 0.05, 3.0, 1.0])
def test_sweep_down_finds_the_minimum_and_stops_two_past_it(best: float):
    error, asked = _curve(best)
    table = sweep_down(ACWT_GRID, error)
    assert min(table, key=table.get) == best
    grid = sorted(ACWT_GRID, reverse=True)
    above = [4.5] if best == grid[0] else []  # the grid's largest is best: one step past it
    assert asked == grid[: min(grid.index(best) + 3, len(grid))] + above  # the best, then two worse


@pytest.mark.parametrize("best,above", [(7.0, [4.5, 6.75, 10.125]), (100.0, [4.5, 6.75, 10.125])])
def test_sweep_down_goes_past_the_grid_while_the_top_is_best(best: float, above: list[float]):
    error, asked = _curve(best)
    table = sweep_down(ACWT_GRID, error)
    assert asked == sorted(ACWT_GRID, reverse=True)[:3] + above  # at most three steps above
    assert min(table, key=table.get) == (6.75 if best == 7.0 else 10.125)


def test_sweep_down_counts_equal_values_as_no_better():
    table = sweep_down([1.0, 0.5, 0.2, 0.1], {1.0: 5.0, 0.5: 4.0, 0.2: 4.0, 0.1: 4.0}.__getitem__)
    assert list(table) == [1.0, 0.5, 0.2, 0.1]
    table = sweep_down([1.0, 0.5, 0.2, 0.1, 0.05], {1.0: 5.0, 0.5: 4.0, 0.2: 4.0, 0.1: 3.0, 0.05: 9}.__getitem__)
    assert list(table) == [1.0, 0.5, 0.2, 0.1, 0.05]  # a later improvement resets the count
    with pytest.raises(ValueError):
        sweep_down([1.0], abs, patience=0)


@pytest.mark.parametrize("best,expected", [
    (-2.0, [-1.0, -2.0, -3.0]),     # down while it helps, up never tried
    (-3.0, [-1.0, -2.0, -3.0]),     # to the grid's edge
    (0.0, [-1.0, 1.0]),             # both neighbours worse
    (2.0, [-1.0, 1.0, 2.0, 3.0]),   # -1 worse: up until a step is worse
])
def test_climb_penalty_walks_from_zero(best: float, expected: list[float]):
    error, asked = _curve(best)
    table = climb_penalty(error, abs(best), WORD_PENALTIES)
    assert asked == expected
    assert min(table, key=lambda p: (table[p], abs(p))) == best


def test_climb_penalty_stops_on_a_tie_and_needs_zero():
    asked = []
    table = climb_penalty(lambda p: asked.append(p) or 5.0, 5.0, WORD_PENALTIES)
    assert asked == [-1.0, 1.0] and min(table, key=lambda p: (table[p], abs(p))) == 0.0
    with pytest.raises(ValueError):
        climb_penalty(abs, 1.0, (1.0, 2.0))


def test_grid_at_a_lower_frame_rate_is_k_times_larger():
    from asr.steps.decode import grid_at_rate

    assert grid_at_rate(ACWT_GRID, 1) == list(ACWT_GRID)
    assert grid_at_rate((0.1, 0.3), 3) == [0.3, 0.9]
