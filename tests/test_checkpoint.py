"""Resuming training from epoch checkpoints: across devices and after damage."""

import logging
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from asr.errors import ModelError
from asr.nn.model import ModelConfig
from asr.nn.train import TrainConfig, load_model, train

DIM, PDFS = 4, 3
CPU = torch.device("cpu")


def tiny_data(n_utts: int, seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Random features and targets, 20-40 frames an utterance."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(20, 41, size=n_utts)
    feats = {f"u{i}": rng.standard_normal((n, DIM)).astype(np.float32) for i, n in enumerate(lengths)}
    targets = {f"u{i}": rng.integers(0, PDFS, size=n) for i, n in enumerate(lengths)}
    return feats, targets


def tiny_train(exp: Path, epochs: int, hidden: int = 8) -> dict:
    """Train a one-layer LSTM for ``epochs`` epochs (well under a second each)."""
    cfg = ModelConfig(input_dim=DIM, num_pdfs=PDFS, num_layers=1, hidden=hidden, bidirectional=False, dropout=0.0)
    tcfg = TrainConfig(epochs=epochs, lr=0.01, batch_frames=200, chunk_frames=50)
    return train(exp, tiny_data(8, 1), tiny_data(3, 2), cfg, tcfg, CPU)


def epoch_files(exp: Path) -> list[str]:
    return sorted(p.name for p in exp.glob("epoch-*.pt"))


def epoch_weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k])


def tag_storages_as_cuda(path: Path) -> None:
    """Rewrite a torch.save file so that its storages say they live on cuda:0.

    That is what a checkpoint written by a GPU run looks like: loading it
    without ``map_location`` on a host without CUDA fails ("Attempting to
    deserialize object on a CUDA device"). The storage location is a pickled
    string in ``data.pkl`` (BINUNICODE: b"X", 4-byte little-endian length, the
    text; later storages refer back to the memoised first one).
    """
    with zipfile.ZipFile(path) as zin:
        members = [(info, zin.read(info.filename)) for info in zin.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zout:
        for info, data in members:
            if info.filename.endswith("/data.pkl"):
                assert b"X\x03\x00\x00\x00cpu" in data
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            zout.writestr(info, data)


def test_three_epochs_keep_two_checkpoints(tmp_path):
    tiny_train(tmp_path, epochs=3)
    assert epoch_files(tmp_path) == ["epoch-2.pt", "epoch-3.pt"]


def test_truncated_newest_checkpoint_resumes_from_the_one_before(tmp_path, caplog):
    """Half an epoch-2.pt (a copy cut short): a warning names it, training
    resumes after epoch 1 and gives the weights of an uninterrupted run."""
    tiny_train(tmp_path / "clean", epochs=2)
    exp = tmp_path / "damaged"
    tiny_train(exp, epochs=2)
    newest = exp / "epoch-2.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    with caplog.at_level(logging.INFO, logger="asr.nn.train"):
        state = tiny_train(exp, epochs=2)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("epoch-2.pt: damaged checkpoint, cannot be read" in w for w in warnings), warnings
    assert "resuming after epoch 1 (epoch-1.pt)" in caplog.text
    assert [r["epoch"] for r in state["history"]] == [1, 2]
    assert epoch_files(exp) == ["epoch-1.pt", "epoch-2.pt"]
    assert_same_weights(epoch_weights(exp / "epoch-2.pt"), epoch_weights(tmp_path / "clean" / "epoch-2.pt"))


def test_checkpoint_missing_keys_counts_as_damaged(tmp_path, caplog):
    tiny_train(tmp_path, epochs=2)
    ckpt = torch.load(tmp_path / "epoch-2.pt", weights_only=True)
    del ckpt["optimizer"]
    torch.save(ckpt, tmp_path / "epoch-2.pt")
    with caplog.at_level(logging.INFO, logger="asr.nn.train"):
        tiny_train(tmp_path, epochs=2)
    assert "epoch-2.pt: damaged checkpoint, lacks optimizer" in caplog.text
    assert "resuming after epoch 1 (epoch-1.pt)" in caplog.text


def test_only_checkpoint_garbage_raises_model_error(tmp_path, caplog):
    tiny_train(tmp_path, epochs=1)
    (tmp_path / "epoch-1.pt").write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(ModelError, match=r"no usable checkpoint.*epoch-1\.pt cannot be read"):
        tiny_train(tmp_path, epochs=2)
    assert "epoch-1.pt: damaged checkpoint" in caplog.text
    assert epoch_files(tmp_path) == ["epoch-1.pt"]  # nothing was thrown away or overwritten


def test_all_checkpoints_damaged_raises_model_error_naming_each(tmp_path):
    tiny_train(tmp_path, epochs=2)
    for name in ("epoch-1.pt", "epoch-2.pt"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(ModelError, match=r"epoch-2\.pt cannot be read.*; epoch-1\.pt cannot be read"):
        tiny_train(tmp_path, epochs=3)


def test_checkpoint_of_another_network_raises_model_error(tmp_path):
    """A call with another network is refused before it writes anything: the dir's files
    are byte for byte what they were, and its model still loads."""
    tiny_train(tmp_path, epochs=1)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ModelError, match=r"epoch-1\.pt: checkpoint does not fit the network of model\.yaml"):
        tiny_train(tmp_path, epochs=2, hidden=12)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert load_model(tmp_path, CPU).cfg.hidden == 8


def test_checkpoint_without_every_process_rng_state_resumes(tmp_path):
    """A checkpoint written before every process's RNG state was kept (``torch_rng`` alone)
    resumes as it did: to the weights of an uninterrupted run (dropout on)."""
    cfg = ModelConfig(input_dim=DIM, num_pdfs=PDFS, num_layers=1, hidden=8, bidirectional=False, dropout=0.3)
    args = (tiny_data(8, 1), tiny_data(3, 2), cfg)
    train(tmp_path / "straight", *args, TrainConfig(epochs=2, lr=0.01, batch_frames=200, chunk_frames=50), CPU)
    exp = tmp_path / "old"
    train(exp, *args, TrainConfig(epochs=1, lr=0.01, batch_frames=200, chunk_frames=50), CPU)
    ckpt = torch.load(exp / "epoch-1.pt", weights_only=True)
    assert torch.equal(ckpt.pop("rank_rng")[0]["torch"], ckpt["torch_rng"])
    torch.save(ckpt, exp / "epoch-1.pt")
    train(exp, *args, TrainConfig(epochs=2, lr=0.01, batch_frames=200, chunk_frames=50), CPU)
    assert_same_weights(epoch_weights(exp / "epoch-2.pt"), epoch_weights(tmp_path / "straight/epoch-2.pt"))


def test_checkpoint_of_a_gpu_run_resumes_on_cpu(tmp_path):
    """A checkpoint whose storages are tagged cuda:0 (as a GPU run writes
    them) resumes on the CPU, with the same result as an uninterrupted run."""
    tiny_train(tmp_path / "clean", epochs=2)
    exp = tmp_path / "gpu"
    tiny_train(exp, epochs=1)
    tag_storages_as_cuda(exp / "epoch-1.pt")
    locations = []
    torch.load(exp / "epoch-1.pt", weights_only=True, map_location=lambda s, loc: locations.append(loc) or s)
    assert locations and set(locations) == {"cuda:0"}  # every tensor, the RNG state included
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="deserialize object on a CUDA device"):
            torch.load(exp / "epoch-1.pt", weights_only=True)
    state = tiny_train(exp, epochs=2)
    assert [r["epoch"] for r in state["history"]] == [1, 2]
    assert_same_weights(epoch_weights(exp / "epoch-2.pt"), epoch_weights(tmp_path / "clean" / "epoch-2.pt"))


def test_augmented_training_resumes_to_the_same_weights(tmp_path):
    """With augmented copies and SpecAugment, an interrupted run resumed from its
    checkpoint ends with the weights of an uninterrupted one (the copy draws are
    seeded by the epoch, the masks come from the checkpointed torch RNG), and the
    epochs read the copies as well as the originals."""
    from asr.features.augment import AugmentConfig
    from asr.nn.train import epoch_data, epoch_versions

    cfg = ModelConfig(input_dim=DIM, num_pdfs=PDFS, num_layers=1, hidden=8, bidirectional=False, dropout=0.0)
    aug = AugmentConfig(freq_masks=1, freq_width=2, time_masks=1, time_width=5)
    data = tiny_data(8, 1)
    copies = [({u: x + 1.0 for u, x in data[0].items()}, data[1])]
    picks = [sum(epoch_data(data, copies, epoch_versions(data, copies, 0, e))[0][u] is not data[0][u]
                 for u in data[0]) for e in (1, 2, 3)]
    assert all(0 < p < 8 for p in picks) and len(set(picks)) > 1, picks
    args = (data, tiny_data(3, 2), cfg)
    train(tmp_path / "straight", *args, TrainConfig(epochs=3, lr=0.01, batch_frames=200, chunk_frames=50), CPU,
          copies=copies, aug=aug)
    train(tmp_path / "resumed", *args, TrainConfig(epochs=3, lr=0.01, batch_frames=200, chunk_frames=50), CPU,
          copies=copies, aug=aug)
    (tmp_path / "resumed/epoch-3.pt").unlink()  # as if killed after epoch 2
    (tmp_path / "resumed/final.pt").unlink()
    train(tmp_path / "resumed", *args, TrainConfig(epochs=3, lr=0.01, batch_frames=200, chunk_frames=50), CPU,
          copies=copies, aug=aug)
    assert_same_weights(epoch_weights(tmp_path / "straight/epoch-3.pt"), epoch_weights(tmp_path / "resumed/epoch-3.pt"))
    plain = tmp_path / "plain"
    train(plain, *args, TrainConfig(epochs=3, lr=0.01, batch_frames=200, chunk_frames=50), CPU)
    a, b = epoch_weights(tmp_path / "straight/epoch-3.pt"), epoch_weights(plain / "epoch-3.pt")
    assert any(not torch.allclose(a[k], b[k]) for k in a)  # the augmentation did change the training


def test_damaged_mid_epoch_checkpoint_is_skipped_with_a_warning(tmp_path, caplog):
    """A garbage ``partial.pt`` is named in a warning and training resumes from the last
    epoch checkpoint, to the weights of an uninterrupted run."""
    tiny_train(tmp_path / "clean", epochs=3)
    exp = tmp_path / "exp"
    tiny_train(exp, epochs=2)
    (exp / "partial.pt").write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.WARNING):
        tiny_train(exp, epochs=3)
    assert "partial.pt: not resuming mid-epoch, cannot be read" in caplog.text
    assert not (exp / "partial.pt").exists()
    assert_same_weights(epoch_weights(exp / "epoch-3.pt"), epoch_weights(tmp_path / "clean" / "epoch-3.pt"))
