"""The RNN phone-sequence decoder in a model bundle: the phone LM it carries, the settings
tuned on dev, and the decoder built from them.

Two bundle components (:mod:`asr.decode.bundle`):

    phone_lm:   {files: [phone_lm/phone_lm.yaml, phone_lm/phone_lm.pt], sha256: …, num_phones: 48, source: …}
    rnn_decode: {files: [rnn_decode.yaml], acwt: …, lm_weight: …, penalty: …, tuned_on: …, phone_lm_sha256: …}

Installing another phone LM drops settings tuned with the old one.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from asr.decode.bundle import component, expect_equal, file_sha256, update_manifest
from asr.decode.hybrid import HybridModel
from asr.decode.rnn_search import RnnPhoneDecoder, SearchConfig
from asr.errors import ModelError
from asr.io import atomic_path, atomic_write_text
from asr.nn.phone_lm import CONFIG_FILE, WEIGHTS_FILE, PhoneLm, load_phone_lm

log = logging.getLogger(__name__)

PHONE_LM_DIR = "phone_lm"
RNN_DECODE_YAML = "rnn_decode.yaml"


@dataclass(frozen=True)
class RnnSettings:
    """What the RNN decoder is run with: the acoustic scale, the LM weight and the phone
    insertion penalty (tuned on dev), and the search beams."""

    acwt: float
    lm_weight: float = 1.0
    penalty: float = 0.0
    beam: float = 12.0
    max_active: int = 2000

    def search(self) -> SearchConfig:
        return SearchConfig(beam=self.beam, max_active=self.max_active, lm_weight=self.lm_weight,
                            penalty=self.penalty)


def install_phone_lm(model: HybridModel, lm_dir: Path) -> None:
    """Copy the phone LM of ``lm_dir`` into the bundle (checked to load and to model the
    bundle's phones); a different LM than the installed one drops the tuned settings."""
    load_phone_lm(Path(lm_dir), model.device, model.phones)  # ModelError when it does not fit
    sha = file_sha256(Path(lm_dir) / WEIGHTS_FILE)
    files = [f"{PHONE_LM_DIR}/{CONFIG_FILE}", f"{PHONE_LM_DIR}/{WEIGHTS_FILE}"]
    (model.model_dir / PHONE_LM_DIR).mkdir(exist_ok=True)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        with atomic_path(model.model_dir / PHONE_LM_DIR / name) as tmp:
            shutil.copyfile(Path(lm_dir) / name, tmp)
    stale = model.components.get("phone_lm", {}).get("sha256") != sha
    model.components = update_manifest(
        model.model_dir, phone_lm={"files": files, "sha256": sha, "num_phones": len(model.phones),
                                   "source": str(Path(lm_dir).resolve())},
        **({"rnn_decode": None} if stale else {}))
    if stale:
        log.info("%s: phone LM installed from %s", model.model_dir, lm_dir)


def bundle_phone_lm(model: HybridModel) -> PhoneLm:
    """The bundle's phone LM (its file checked against the manifest)."""
    c = component(model.components, "phone_lm", model.model_dir,
                  "install one with 'asr decode MODEL DEV OUT --decoder rnn --phone-lm DIR --tune'")
    lm_dir = model.model_dir / PHONE_LM_DIR
    expect_equal(model.model_dir, "the phone LM's SHA-256", c.get("sha256"), file_sha256(lm_dir / WEIGHTS_FILE))
    return load_phone_lm(lm_dir, model.device, model.phones)


def tuned_settings(model: HybridModel) -> RnnSettings:
    """The settings tuned on dev; ModelError when none were (or for another phone LM)."""
    c = component(model.components, "rnn_decode", model.model_dir,
                  "tune them with 'asr decode MODEL DEV OUT --decoder rnn --tune' on a dev set")
    expect_equal(model.model_dir, "the phone LM the RNN decoder was tuned with", c.get("phone_lm_sha256"),
                 model.components.get("phone_lm", {}).get("sha256"))
    try:
        return RnnSettings(**yaml.safe_load((model.model_dir / RNN_DECODE_YAML).read_text())["settings"])
    except (OSError, yaml.YAMLError, TypeError, KeyError) as exc:
        raise ModelError(f"{model.model_dir / RNN_DECODE_YAML}: unreadable RNN decoder settings ({exc})") from None


def save_settings(model: HybridModel, settings: RnnSettings, dev_dir: Path, dev_per: float,
                  sweep: list[dict]) -> None:
    """Store the settings chosen on dev (``rnn_decode.yaml`` and the manifest)."""
    atomic_write_text(model.model_dir / RNN_DECODE_YAML, yaml.safe_dump(
        {"settings": asdict(settings), "tuned_on": str(dev_dir), "dev_per": dev_per, "sweep": sweep},
        sort_keys=False))
    model.components = update_manifest(model.model_dir, rnn_decode={
        "files": [RNN_DECODE_YAML], **{k: v for k, v in asdict(settings).items() if k != "max_active"},
        "tuned_on": str(dev_dir), "phone_lm_sha256": model.components["phone_lm"]["sha256"]})


def rnn_decoder(model: HybridModel, settings: RnnSettings, lm: PhoneLm | None = None) -> RnnPhoneDecoder:
    """The RNN decoder of the bundle's context dependency and phone LM (``lm``: already loaded)."""
    graph = model.components.get("graph", {})  # an older bundle's transition_scale is not read
    kwargs = {"self_loop_scale": graph["self_loop_scale"]} if "self_loop_scale" in graph else {}
    return RnnPhoneDecoder(model.context, lm or bundle_phone_lm(model), model.device, settings.search(), **kwargs)
