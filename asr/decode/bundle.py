"""The model bundle's manifest, ``bundle.yaml``: what a model directory holds
and the settings each part was made with.

    format_version: 1
    components:
      network:  {files: [model.yaml, final.pt], input_dim: 40, num_pdfs: 144, frame_subsampling: 1}
      features: {files: [feats.yaml], kind: fbank, dim: 40, ..., cmvn: {...}}
      phones:   {files: [phones.txt], num_phones: 48}
      lang:     {files: [lang/phones.txt, lang/topo, lang/phones/…], sha256: …}
      topology: {states_per_phone: 3, self_loop_prob: 0.75}
      context:  {files: [tree.json], context_width: 1, central_position: 0, num_pdfs: 144, sha256: …}
      priors:   {files: [log_priors.txt], num_pdfs: 144}
      graph:    {files: [graph/HCG.fst, graph/phones.txt], sha256: …, lm_order: 2, context: …}
      decode:   {files: [decode.yaml], acwt: 1.0, tuned_on: …, graph_sha256: …}
      word_graph:  {files: [graph_words/HCLG.fst, …], sha256: …, context: …, vocabulary: 20000}
      word_decode: {files: [word_decode.yaml], acwt: …, word_penalty: …, tuned_on: …, graph_sha256: …}
      phone_lm:    {files: [phone_lm/phone_lm.yaml, phone_lm/phone_lm.pt], sha256: …, num_phones: 48}
      rnn_decode:  {files: [rnn_decode.yaml], acwt: …, lm_weight: …, penalty: …, phone_lm_sha256: …}

Training writes the first seven (a bundle without ``context`` was written
before the context dependency was stored, and is read as CI; a network without
``frame_subsampling`` runs at the feature rate, 1; one without
``lang`` before the lang dir was copied, and its lang is TIMIT's 48 phones); installing a decoding graph adds ``graph``
(and drops a ``decode`` tuned on another graph); tuning the acoustic scale on
dev adds ``decode``; the word graph and its tuned settings are the same pair
for words (:mod:`asr.decode.words`), and the phone LM and its tuned settings the pair
for the RNN phone-sequence decoder (:mod:`asr.decode.rnn_decode`). :func:`check_manifest` is what ``HybridModel.load``
runs: a missing or inconsistent component is a :class:`ModelError` that
names it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from asr.errors import ModelError
from asr.io import atomic_write_text, file_sha256  # noqa: F401  (file_sha256: the bundle's hash)

BUNDLE_YAML = "bundle.yaml"
FORMAT_VERSION = 1
#: All components, in the order they are written.
COMPONENTS = ("network", "features", "phones", "lang", "topology", "context", "priors", "graph", "decode",
              "word_graph", "word_decode", "phone_lm", "rnn_decode")


def read_manifest(model_dir: Path) -> dict[str, Any]:
    """The ``components`` of ``model_dir/bundle.yaml``.

    Raises:
        ModelError: no manifest (not a model bundle, or training has not
            finished), unreadable, or another format version.
    """
    path = Path(model_dir) / BUNDLE_YAML
    if not path.is_file():
        raise ModelError(f"{path}: not found: {model_dir} is not a finished model bundle "
                         f"(train it with 'asr train', which writes the manifest)")
    try:
        manifest = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ModelError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("components"), dict):
        raise ModelError(f"{path}: not a bundle manifest (no 'components' mapping)")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelError(f"{path}: bundle format version {version!r}; this version of the "
                         f"toolkit reads version {FORMAT_VERSION}")
    return manifest["components"]


def update_manifest(model_dir: Path, **components: dict | None) -> dict[str, Any]:
    """Set (or, with None, remove) components of the manifest; write it atomically.

    A directory without a manifest gets a new one. Returns the components.
    """
    path = Path(model_dir) / BUNDLE_YAML
    current = read_manifest(model_dir) if path.is_file() else {}
    for name, settings in components.items():
        if name not in COMPONENTS:
            raise ValueError(f"unknown bundle component {name!r}")
        if settings is None:
            current.pop(name, None)
        else:
            current[name] = settings
    ordered = {name: current[name] for name in COMPONENTS if name in current}
    atomic_write_text(path, yaml.safe_dump({"format_version": FORMAT_VERSION,
                                            "components": ordered}, sort_keys=False))
    return ordered


def component(components: dict[str, Any], name: str, model_dir: Path, hint: str = "") -> dict:
    """The settings of component ``name``, with its files checked to exist.

    Raises:
        ModelError: the component is absent from the manifest (``hint`` says
            how to make it) or one of its files is missing.
    """
    where = Path(model_dir) / BUNDLE_YAML
    if name not in components:
        raise ModelError(f"{where}: the bundle has no {name} component" + (f" ({hint})" if hint else ""))
    settings = components[name]
    if not isinstance(settings, dict):
        raise ModelError(f"{where}: component {name} is not a mapping")
    for rel in settings.get("files", []):
        if not (Path(model_dir) / rel).is_file():
            raise ModelError(f"{Path(model_dir) / rel}: file of the bundle's {name} component is missing")
    return settings


def expect_equal(model_dir: Path, what: str, recorded: Any, actual: Any) -> None:
    """ModelError naming the bundle and ``what`` when a recorded setting disagrees."""
    if recorded != actual:
        raise ModelError(f"{Path(model_dir) / BUNDLE_YAML}: {what} is {actual!r} in the bundle's "
                         f"files but the manifest records {recorded!r} (inconsistent bundle)")
