"""The training curve: loss and frame accuracy per epoch, train and dev, as a PNG."""

from __future__ import annotations

import logging
from pathlib import Path

from asr.io import atomic_path

#: The curve's file name in a model dir.
CURVE_PNG = "training_curve.png"


def plot_history(history: list[dict], path: Path) -> None:
    """Plot the per-epoch records of a training run (``train_loss``, ``dev_loss``,
    ``train_frame_acc``, ``dev_frame_acc`` against ``epoch``) to ``path`` (PNG, atomically),
    without pyplot: the caller's matplotlib backend and open figures are untouched."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # its font search logs pages at debug level
    epochs = [r["epoch"] for r in history]
    fig = Figure(figsize=(9, 3.5))  # drawn by its own Agg canvas: pyplot's backend and figures are left alone
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for split, style in (("train", "o-"), ("dev", "s--")):
        ax_loss.plot(epochs, [r[f"{split}_loss"] for r in history], style, label=split)
        ax_acc.plot(epochs, [100 * r[f"{split}_frame_acc"] for r in history], style, label=split)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy per frame", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="frame accuracy (%)", title="frame accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
