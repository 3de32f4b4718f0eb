"""The trainer: truncated BPTT with carried state, data-parallel runs over gloo
processes, mid-epoch checkpoints that survive a kill, the training curve."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from asr.errors import ModelError
from asr.nn.data import EMPTY, PieceDataset, StreamBatchSampler, collate
from asr.nn.model import LstmAcousticModel, ModelConfig
from asr.nn.train import PARTIAL, TrainConfig, carry, train

DIM, PDFS = 6, 5
CPU = torch.device("cpu")

#: The script's toy data: ``n`` utterances of 6-dim features whose targets (of 5) show in them.
TOY = '''
def toy(n, seed):
    rng = np.random.default_rng(seed)
    feats, targets = {}, {}
    for u in range(n):
        y = np.repeat(rng.integers(0, 5, 12), rng.integers(2, 7, 12)).astype(np.int64)
        x = rng.normal(0, 1, (len(y), 6)).astype(np.float32)
        x[np.arange(len(y)), y] += 1.5
        feats[f"u{u:02d}"], targets[f"u{u:02d}"] = x, y
    return feats, targets
'''

#: Trains a small LSTM on toy data (train ``toy(48, 1)``, dev ``toy(8, 2)``) in one process
#: or, under torchrun, in several.
#: argv: exp_dir epochs tbptt checkpoint_every delay dropout [more TrainConfig settings as JSON]
SCRIPT = '''
import json
import logging
import sys
from pathlib import Path
import numpy as np
import torch
from asr.nn.distributed import init_distributed
from asr.nn.model import ModelConfig
from asr.nn.train import TrainConfig, train
''' + TOY + '''
exp, epochs, tbptt, every, delay = Path(sys.argv[1]), *map(int, sys.argv[2:6])
dropout = float(sys.argv[6])
opts = {"batch_frames": 240, **json.loads(sys.argv[7])}
torch.set_num_threads(1)
logging.basicConfig(level=logging.INFO)
device = init_distributed(torch.device("cpu"))
model = ModelConfig(input_dim=6, num_pdfs=5, num_layers=2, hidden=24, bidirectional=False, dropout=dropout,
                    output_delay=delay)
cfg = TrainConfig(epochs=epochs, lr=0.01, chunk_frames=40, tbptt=tbptt, checkpoint_every=every, **opts)
train(exp, toy(48, 1), toy(8, 2), model, cfg, device)
'''


def toy_data(n: int, seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``n`` utterances of DIM-dim features whose targets (of PDFS) show in the features."""
    rng = np.random.default_rng(seed)
    feats, targets = {}, {}
    for u in range(n):
        y = np.repeat(rng.integers(0, PDFS, 8), rng.integers(2, 6, 8)).astype(np.int64)
        x = rng.normal(0, 1, (len(y), DIM)).astype(np.float32)
        x[np.arange(len(y)), y] += 1.5
        feats[f"u{u:02d}"], targets[f"u{u:02d}"] = x, y
    return feats, targets


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(script: Path, exp: Path, epochs: int, tbptt: int = 0, every: int = 0, delay: int = 0,
            nproc: int = 1, dropout: float = 0.0, opts: dict | None = None) -> list[str]:
    """Run SCRIPT; ``opts``: TrainConfig settings besides those of its argv."""
    args = [str(script), str(exp), str(epochs), str(tbptt), str(every), str(delay), str(dropout),
            json.dumps(opts or {})]
    if nproc == 1:
        return [sys.executable, *args]
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
            f"--master_port={free_port()}", "--master_addr=127.0.0.1", *args]


@pytest.fixture
def script(tmp_path) -> Path:
    path = tmp_path / "toy_train.py"
    path.write_text(SCRIPT)
    return path


def run(cmd: list[str]) -> str:
    """Run ``cmd`` to success; its log."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def stream_model(delay: int = 0, proj: int = 0) -> LstmAcousticModel:
    torch.manual_seed(0)
    return LstmAcousticModel(ModelConfig(input_dim=DIM, num_pdfs=PDFS, num_layers=2, hidden=16, proj=proj,
                                         bidirectional=False, output_delay=delay)).eval()


@pytest.mark.parametrize("delay,proj", [(0, 0), (3, 8)])
def test_carried_state_gives_the_whole_utterance_outputs(delay, proj):
    """Pieces of 7 frames run one after another with the state carried give the
    outputs of the whole utterance run at once (eval mode); with an output delay,
    the delayed outputs of the utterance extended by ``delay`` frames."""
    model = stream_model(delay, proj)
    x = torch.randn(1, 50, DIM)
    with torch.no_grad():
        whole = model(x, torch.tensor([50]))
        x_ext = torch.nn.functional.pad(x, (0, 0, 0, delay))
        state, outs = None, []
        for a in range(0, 50 + delay, 7):
            out, state = model.forward_stream(x_ext[:, a:a + 7], state)
            outs.append(out)
    torch.testing.assert_close(torch.cat(outs, 1)[:, delay:], whole, atol=1e-5, rtol=1e-5)


def test_stream_batches_reproduce_each_utterance():
    """Every utterance, dealt to a stream of the sampler and read piece by piece in
    batches with the state carried (and reset where a new utterance starts), gets
    the outputs it gets when run alone."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 60, 13)
    feats = {f"u{i:02d}": rng.normal(size=(n, DIM)).astype(np.float32) for i, n in enumerate(lengths)}
    targets = {u: np.zeros(len(x), np.int64) for u, x in feats.items()}
    ds = PieceDataset(feats, targets, 8, fixed=True)
    sampler = StreamBatchSampler(ds.utterance_pieces, ds.lengths, streams=4, seed=3)
    sampler.set_epoch(2)
    model = stream_model()
    got: dict[str, list[torch.Tensor]] = {u: [] for u in feats}
    state = None
    with torch.no_grad():
        for ids in sampler:
            batch = collate([ds[i] for i in ids])
            out, state = model.forward_stream(batch.feats, carry(state, batch.reset))
            for row, i in enumerate(ids):
                if i != EMPTY:
                    got[ds.pieces[i][0]].append(out[row, : batch.lengths[row]])
            state = [(h, c) for h, c in state]
    seen = sorted(i for b in sampler.global_batches() for i in b if i != EMPTY)
    assert seen == list(range(len(ds)))  # every piece once
    # every batch's loss is divided by a full batch's frames, however few streams still run
    assert {sampler.loss_frames(k) for k in range(len(sampler))} == {4 * 8}
    assert sampler.global_frames(len(sampler) - 1) < 4 * 8
    with torch.no_grad():
        for u, x in feats.items():
            alone = model(torch.from_numpy(x)[None], torch.tensor([len(x)]))[0]
            torch.testing.assert_close(torch.cat(got[u]), alone, atol=1e-5, rtol=1e-5)


def test_tbptt_needs_a_unidirectional_lstm(tmp_path):
    data = ({"u": np.zeros((10, DIM), np.float32)}, {"u": np.zeros(10, np.int64)})
    cfg = ModelConfig(input_dim=DIM, num_pdfs=PDFS, num_layers=1, hidden=8)
    with pytest.raises(ModelError, match="bidirectional"):
        train(tmp_path, data, data, cfg, TrainConfig(epochs=1, tbptt=20), CPU)
    with pytest.raises(ValueError, match="longer than a batch"):
        TrainConfig(tbptt=100, batch_frames=50)


@pytest.mark.slow  # kept out of the default suite's 5 minutes
def test_tbptt_trains_and_writes_the_curve(tmp_path, script):
    run(command(script, tmp_path / "tb", epochs=3, tbptt=10, delay=2))
    history = (tmp_path / "tb/history.yaml").read_text()
    import yaml

    records = yaml.safe_load(history)
    assert records[-1]["dev_frame_acc"] > 0.7, records  # chance is 0.2
    png = (tmp_path / "tb/training_curve.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def script_toy(n: int, seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """SCRIPT's toy data."""
    scope = {"np": np}
    exec(TOY, scope)  # noqa: S102 - the constant above
    return scope["toy"](n, seed)


def fewest_pieces(opts: dict, epochs: int) -> tuple[list[int], int]:
    """The fewest pieces in a batch of SCRIPT's training epochs 1..``epochs`` and of its dev
    set, batched with ``opts`` (TrainConfig settings) for one process: a batch of one piece is
    a group that a run of two processes has to merge (the others have four or more)."""
    from asr.nn.data import FrameBatchSampler

    cfg = TrainConfig(chunk_frames=40, **{"batch_frames": 240, **opts})
    train_lengths = PieceDataset(*script_toy(48, 1), cfg.chunk_frames).lengths
    dev_lengths = PieceDataset(*script_toy(8, 2), cfg.chunk_frames).lengths
    sampler = FrameBatchSampler(train_lengths, cfg.batch_frames, cfg.seed, bucket_width=cfg.bucket_width)
    fewest = []
    for epoch in range(1, epochs + 1):
        sampler.set_epoch(epoch)
        fewest.append(min(map(len, sampler.global_batches())))
    dev = FrameBatchSampler(dev_lengths, cfg.batch_frames, shuffle=False)
    return fewest, min(map(len, dev.global_batches()))


# slow, both: 12 s and more each; the default suite runs DDP through the 2-process kill-and-resume
# test below, and the recipe's slow test trains with two gloo processes too
@pytest.mark.parametrize("tbptt,delay,opts", [
    pytest.param(0, 0, {"batch_frames": 200, "bucket_width": 0}, marks=pytest.mark.slow),
    pytest.param(10, 2, {}, marks=pytest.mark.slow)])
def test_two_gloo_processes_match_one(tmp_path, script, tbptt, delay, opts):
    """DDP over 2 gloo processes, each on its half of every batch, ends within
    1e-4 of one process training on the whole batches (dropout is off: the
    processes draw other masks than one process would). Batched by length, the
    dev set's last group holds one piece: both processes score a share of it."""
    if not tbptt:
        assert fewest_pieces(opts, 2) == ([2, 2], 1)
    run(command(script, tmp_path / "one", epochs=2, tbptt=tbptt, delay=delay, opts=opts))
    run(command(script, tmp_path / "two", epochs=2, tbptt=tbptt, delay=delay, nproc=2, opts=opts))
    a, b = weights(tmp_path / "one/epoch-2.pt"), weights(tmp_path / "two/epoch-2.pt")
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-4, rtol=1e-3)
    assert any(not torch.equal(a[k], weights(tmp_path / "one/epoch-1.pt")[k]) for k in a)


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (torchrun starts each worker in a session of its own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def kill_mid_epoch(cmd: list[str], exp: Path) -> None:
    """Start ``cmd``; SIGKILL it and every process it started once it has written a
    mid-epoch checkpoint (as a machine that loses power)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    while not (exp / PARTIAL).is_file():
        assert proc.poll() is None, "the run ended without a mid-epoch checkpoint"
        time.sleep(0.005)
    for pid in [proc.pid, *descendants(proc.pid)]:
        os.kill(pid, signal.SIGKILL)
    proc.wait()
    assert (exp / PARTIAL).is_file()  # killed mid-epoch


#: A batching of SCRIPT's data whose second training epoch and dev set have a group of one piece.
SHORT_GROUPS = {"batch_frames": 200, "bucket_width": 0.2}


# the default suite keeps the 2-process case (the same resume code, with every process's RNG
# state and batches); the 1-process case (12 s) is slow
@pytest.mark.parametrize("nproc,tbptt,train_opts", [pytest.param(1, 0, {}, marks=pytest.mark.slow),
                                                    pytest.param(2, 10, {}, marks=pytest.mark.slow),
                                                    (2, 0, SHORT_GROUPS)])
def test_a_run_killed_mid_epoch_resumes_to_the_same_weights(tmp_path, script, nproc, tbptt, train_opts):
    """Killed mid-epoch and resumed from ``partial.pt``, a run (with dropout: every
    process's RNG state is in the checkpoint) ends with the weights and history of an
    uninterrupted one; over 2 processes too, with batches that change from epoch to
    epoch and a last length group of one piece (merged into the one before)."""
    if train_opts:
        assert fewest_pieces(train_opts, 2) == ([5, 1], 1)
    opts = dict(epochs=2, tbptt=tbptt, every=3, nproc=nproc, dropout=0.2, opts=train_opts)
    run(command(script, tmp_path / "straight", **opts))
    resumed = tmp_path / "resumed"
    kill_mid_epoch(command(script, resumed, **opts), resumed)
    log = run(command(script, resumed, **opts))
    assert re.search(r"resuming after epoch \d, batch \d+ \(partial.pt\)", log), log
    assert not (resumed / PARTIAL).exists()
    a, b = weights(tmp_path / "straight/epoch-2.pt"), weights(resumed / "epoch-2.pt")
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    import yaml

    ha = yaml.safe_load((tmp_path / "straight/history.yaml").read_text())
    hb = yaml.safe_load((resumed / "history.yaml").read_text())
    for ra, rb in zip(ha, hb, strict=True):
        assert ra["train_loss"] == pytest.approx(rb["train_loss"], rel=1e-5)
        assert ra["dev_frame_acc"] == rb["dev_frame_acc"]
    ckpt = torch.load(tmp_path / "straight/epoch-2.pt", map_location="cpu", weights_only=True)
    states = [r["torch"] for r in ckpt["rank_rng"]]
    assert len(states) == nproc and torch.equal(ckpt["torch_rng"], states[0])
    if nproc == 2:  # process r is seeded with seed + r: its own dropout masks, even where
        # its streams are the shape of the other's (tbptt: both draw as many numbers)
        assert not torch.equal(states[0], states[1])


@pytest.mark.slow
def test_a_mid_epoch_checkpoint_of_another_process_count_is_refused(tmp_path, script):
    exp = tmp_path / "exp"
    kill_mid_epoch(command(script, exp, epochs=2, every=3, nproc=2), exp)
    proc = subprocess.run(command(script, exp, epochs=2, every=3), capture_output=True, text=True)
    assert proc.returncode != 0 and "written by a run of 2 processes" in proc.stderr


@pytest.mark.parametrize("delay", [0, 3, 25])
def test_delayed_pieces_are_the_extended_utterance_cut(delay):
    """The fixed pieces of an utterance, read back in order, are the utterance extended
    by ``delay`` zero frames, its targets shifted by ``delay`` (IGNORE before them)."""
    from asr.nn.data import IGNORE

    rng = np.random.default_rng(0)
    x = rng.normal(size=(47, DIM)).astype(np.float32)
    y = rng.integers(0, PDFS, 47)
    ds = PieceDataset({"u": x}, {"u": y}, 10, fixed=True, delay=delay)
    pieces = [ds[i] for i in ds.utterance_pieces[0]]
    assert [len(p[1]) for p in pieces[:-1]] == [10] * (len(pieces) - 1) and [p[2] for p in pieces][:2] == [True, False]
    np.testing.assert_array_equal(np.concatenate([p[0] for p in pieces]), np.concatenate([x, np.zeros((delay, DIM))]))
    np.testing.assert_array_equal(np.concatenate([p[1] for p in pieces]), np.concatenate([np.full(delay, IGNORE), y]))


@pytest.mark.parametrize("fixed,delay", [(False, 0), (True, 0), (True, 3)])
def test_resident_batches_equal_host_batches(fixed, delay):
    """Batches gathered from the features held on the device equal the pieces padded on the
    host (:func:`collate`), for length-bucketed and stream batches, with output delay, and
    with each utterance read in the version (original or copy) the epoch drew, and with the
    pieces reshuffled within length buckets."""
    from asr.nn.data import FrameBatchSampler, ResidentBatches, ResidentFrames

    rng = np.random.default_rng(1)
    lengths = rng.integers(3, 70, 11)
    original = ({f"u{i:02d}": rng.normal(size=(n, DIM)).astype(np.float32) for i, n in enumerate(lengths)},
                {f"u{i:02d}": rng.integers(0, PDFS, n) for i, n in enumerate(lengths)})
    copy = ({u: np.concatenate([x, x[:5]]) + 1 for u, x in original[0].items()},  # another length too
            {u: np.concatenate([y, y[:5]]) for u, y in original[1].items()})
    versions = {u: int(rng.integers(2)) for u in original[0]}
    epoch = tuple({u: (original, copy)[v][k][u] for u, v in versions.items()} for k in (0, 1))
    ds = PieceDataset(*epoch, 9 if fixed else 25, fixed=fixed, delay=delay)
    sampler = (StreamBatchSampler(ds.utterance_pieces, ds.lengths, streams=4, seed=5) if fixed
               else FrameBatchSampler(ds.lengths, 60, seed=5, bucket_width=0.2))
    sampler.set_epoch(1)
    resident = ResidentBatches(ResidentFrames([original, copy], torch.device("cpu"), delay), ds, sampler, versions)
    batches = list(resident)
    assert len(batches) == len(sampler) > 3
    for ids, got in zip(sampler, batches):
        want = collate([ds[i] for i in ids])
        for name in ("feats", "targets", "lengths", "reset"):
            torch.testing.assert_close(getattr(got, name), getattr(want, name), rtol=0, atol=0)
    if fixed:
        assert any(i == EMPTY for ids in sampler for i in ids)  # empty streams are gathered too


@pytest.mark.parametrize("tbptt", [0, 10])
def test_resident_and_host_batches_train_the_same_weights(tmp_path, tbptt):
    """Training from features held on the device gives the weights of training from
    batches padded on the host."""
    data = toy_data(20, 1)
    model = ModelConfig(input_dim=DIM, num_pdfs=PDFS, num_layers=1, hidden=12, bidirectional=False,
                        dropout=0.0, output_delay=2)
    got = {}
    for resident in (True, False):
        cfg = TrainConfig(epochs=2, lr=0.01, batch_frames=120, chunk_frames=30, tbptt=tbptt, resident=resident)
        train(tmp_path / str(resident), data, toy_data(4, 2), model, cfg, torch.device("cpu"))
        got[resident] = weights(tmp_path / str(resident) / "epoch-2.pt")
    for name, w in got[True].items():
        torch.testing.assert_close(w, got[False][name], rtol=0, atol=1e-6)


CURVE_SCRIPT = """
import sys
import matplotlib
matplotlib.use("svg")
from pathlib import Path
from asr.nn.curves import plot_history
history = [{"epoch": e, "train_loss": 2.0 / e, "dev_loss": 2.2 / e, "train_frame_acc": 0.3 + 0.1 * e,
            "dev_frame_acc": 0.25 + 0.1 * e} for e in (1, 2, 3)]
plot_history(history, Path(sys.argv[1]))
print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
"""


def test_the_curve_leaves_the_callers_matplotlib_backend_alone(tmp_path):
    """A caller that chose the svg backend still has it after the curve is drawn (and
    pyplot was not imported), and the PNG is written."""
    proc = subprocess.run([sys.executable, "-c", CURVE_SCRIPT, str(tmp_path / "curve.png")], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["svg", "False"]
    png = (tmp_path / "curve.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
