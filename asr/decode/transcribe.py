"""Recognise the words (or phones) of arbitrary audio files with a trained model bundle.

The model, its graph and its decoder are loaded once for all the files of a
call. Each file is read at the model's rate (resampled, down-mixed), its
features normalised per file as the model was trained (bundles with
``cmvn: speech``: statistics of the frames Silero VAD calls speech, so
leading or trailing silence does not shift them; older bundles: all frames),
and cut at pauses into segments of at most ``MAX_SEGMENT_S``
(:mod:`asr.decode.segment`), which are decoded one by one so that memory
stays bounded; segments with no speech are not decoded, and a file with
fewer than ``MIN_SPEECH_FRAMES`` speech frames gives an empty transcript.

Words: the bundle's word graph (``graph_words/HCLG.fst``) with the acoustic
scale and word insertion penalty tuned on dev (the penalty put on the graph's
word arcs once, at load); the words and their times come from FasterDecoder's
best path (its phone alignment matched to the lexicon), and, for JSON and CTM,
each word's confidence is the share of the lattice's 20 best word sequences
(weighted by their posteriors) that agree with it at its position. The LM's
garbage words (``<unk>``, ``<SPOKEN_NOISE>``) are left out of the transcript
unless ``keep_unk``. Phones:
the phone graph, or (``decoder="rnn"``) the RNN phone-sequence decoder with its
settings tuned on dev (:mod:`asr.decode.rnn_decode`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from asr.audio import read_audio
from asr.decode.hybrid import HybridModel, scaled_loglikes
from asr.decode.jobs import SearchOptions, penalised_graph
from asr.decode.lattice import LatticeDecoder, nbest_words, word_confidences
from asr.decode.segment import MAX_SEGMENT_S, frame_energy_db, segment_frames
from asr.decode.words import load_word_graph, word_decode_params, word_tokens
from asr.decode.wfst import WfstDecoder
from asr.errors import AsrError
from asr.features.cmvn import apply_cmvn, enough_speech, speech_stats
from asr.features.extract import features_and_speech
from asr.lang.graph import load_graph
from asr.lang.word_graph import with_word_penalty

log = logging.getLogger(__name__)

OUTPUTS = ("words", "phones")


@dataclass
class Transcript:
    """What was recognised in one file: tokens (words or phones) with
    (start_s, end_s, token, confidence); the confidence is None for phones."""

    path: str
    unit: str
    tokens: list[str]
    segments: list[tuple[float, float, str, float | None]]
    notes: list[str] = field(default_factory=list)


class Recogniser:
    """A model bundle with its decoder, loaded once for many files."""

    def __init__(self, model: HybridModel, output: str = "words", max_segment_s: float = MAX_SEGMENT_S,
                 confidences: bool = True, decoder: str = "hmm", keep_unk: bool = False) -> None:
        """``confidences``: also decode a lattice per segment for the words' confidences;
        ``decoder``: ``hmm`` (the WFST search) or ``rnn`` (phones only); ``keep_unk``: keep
        the LM's garbage words (``<unk>`` …) in word transcripts."""
        if output not in OUTPUTS:
            raise ValueError(f"unknown output {output!r}")
        if decoder == "rnn" and output != "phones":
            raise AsrError("the RNN phone-sequence decoder reads phones: use --output phones with --decoder rnn")
        self.model, self.output, self.max_segment_s = model, output, max_segment_s
        self.keep_unk = keep_unk
        self.shift_s = model.frame_rate.feature_shift_s  # spans are counted in feature frames
        if output == "words":
            self.graph = load_word_graph(model)
            self.acwt, penalty = word_decode_params(model)
            path, on_graph = penalised_graph(str(self.graph.path), penalty)  # kept in the bundle
            fst = load_graph(path) if on_graph else with_word_penalty(self.graph.fst, penalty,
                                                                      len(self.graph.words) - 1)
            opts = SearchOptions()
            self.decoder = WfstDecoder(fst, model.transitions, opts.beam, opts.max_active, check=False)
            self.lattices = (LatticeDecoder(fst, model.transitions, opts.lattice_search_beam, opts.lattice_beam,
                                            name=str(self.graph.path)) if confidences else None)
        elif decoder == "rnn":
            from asr.decode.rnn_decode import rnn_decoder, tuned_settings

            settings = tuned_settings(model)
            self.decoder, self.acwt = rnn_decoder(model, settings), settings.acwt
        else:
            self.decoder, self.acwt = model.decoder(), model.acwt

    def _decode_segment(self, feats: np.ndarray, offset: int, name: str) -> list[tuple]:
        """(start frame, end frame, token, confidence) of one segment's tokens (feature frames, offset
        into the file; a lower frame rate model's output frame j is feature frames k·j … k·j + k - 1)."""
        model = self.model
        scores = scaled_loglikes(model.posteriors(feats), model.log_priors, self.acwt)
        k = model.frame_rate.factor

        def at(frame: int) -> int:
            return offset + min(frame * k, len(feats))

        if self.output == "phones":
            result = self.decoder.decode(scores, utt=name)
            return [(at(r.start), at(r.end), model.phones[r.phone], None) for r in result.runs]
        path = self.decoder.decode(scores, utt=name)
        conf = (None if self.lattices is None
                else word_confidences(path.olabels, nbest_words(self.lattices.lattice(scores, name))))
        return [(at(a), at(b), word, c) for a, b, word, c
                in word_tokens(self.graph, model.phones, model.lang.optional_silence, path.olabels, path.runs, conf, self.keep_unk)]

    def transcribe(self, path: Path) -> Transcript:
        """Recognise one audio file (any rate or channel count)."""
        model = self.model
        audio = read_audio(path, rate=model.feat_cfg.sample_rate, resample=True)
        feats, speech = features_and_speech(audio.samples, model.feat_cfg, name=str(path))
        if speech is not None and not enough_speech(speech):
            speech = np.zeros_like(speech)  # too little to be speech: nothing is decoded
        feats = apply_cmvn(feats, speech_stats(feats, speech))  # per-file CMVN
        segments = segment_frames(frame_energy_db(audio.samples, model.feat_cfg.sample_rate), len(feats),
                                  self.max_segment_s, speech)
        spans: list[tuple] = []
        for seg in segments:
            if seg.has_speech:
                spans += self._decode_segment(feats[seg.start:seg.end], seg.start, f"{path}@{seg.start}")
        notes = list(audio.notes)
        if len(segments) > 1:
            notes.append(f"cut at pauses into {len(segments)} segments "
                         f"({sum(s.has_speech for s in segments)} with speech)")
        if not any(s.has_speech for s in segments):
            notes.append("no speech found")
        return Transcript(str(path), self.output[:-1], [t for _, _, t, _ in spans],
                          [(a * self.shift_s, b * self.shift_s, t, c) for a, b, t, c in spans], notes)


def format_transcript(tr: Transcript, fmt: str) -> str:
    """Render as ``text`` (path: tokens), ``json`` (one object per line) or ``ctm``."""
    if fmt == "text":
        return f"{tr.path}: {' '.join(tr.tokens)}"
    if fmt == "json":
        key = f"{tr.unit}s"
        return json.dumps({"path": tr.path, "text": " ".join(tr.tokens), "notes": tr.notes,
                           key: [{tr.unit: t, "start": round(s, 3), "end": round(e, 3),
                                  **({} if c is None else {"confidence": c})}
                                 for s, e, t, c in tr.segments]})
    if fmt == "ctm":
        name = Path(tr.path).stem
        return "\n".join(f"{name} 1 {s:.2f} {e - s:.2f} {t}" + ("" if c is None else f" {c:.3f}")
                         for s, e, t, c in tr.segments)
    raise ValueError(f"unknown output format {fmt!r}")


def transcribe_files(model: HybridModel, paths: list[Path], fmt: str = "text", output: str = "words",
                     decoder: str = "hmm", keep_unk: bool = False) -> int:
    """Print the transcript of each file; return the number of files that failed.

    ``keep_unk``: keep the LM's garbage words (``<unk>`` …) in word transcripts."""
    recogniser = Recogniser(model, output, confidences=fmt != "text", decoder=decoder, keep_unk=keep_unk)
    failed = 0
    for path in paths:
        try:
            tr = recogniser.transcribe(Path(path))
        except AsrError as exc:
            log.error("%s", exc)
            failed += 1
            continue
        except Exception as exc:  # e.g. out of memory, or a bug: report the file, go on with the rest
            log.error("%s: decoding failed (%s: %s); the traceback is in the log file "
                      "(--log-file) and on the console with --verbose", path, type(exc).__name__, exc)
            log.debug("%s: traceback of the failure", path, exc_info=True)
            failed += 1
            continue
        for note in tr.notes:
            log.info("%s: %s", path, note)
        print(format_transcript(tr, fmt), flush=True)
    return failed
