#!/usr/bin/env bash
# Any corpus with word transcripts only (no phone segmentation), end to end:
# corpus → data dirs → lexicon, word LM, L and G → features → flat start (equal
# alignment over each transcript's training graph H∘C∘L∘words, a CI LSTM, rounds
# of Viterbi realignment over the training graphs and retraining) → decision
# tree → CD LSTM → HMM decoding over the word graph → WER.
# Without --corpus it generates the synthetic corpus in the LibriSpeech layout
# (word transcripts only) and trains on it, beside recipes/synth/run.sh's
# phone-supervised system on the same speech.
# Outputs: <out>/data/words_<tag>/ and <out>/exp/words_<tag>/.
set -euo pipefail

stage=0
stop_stage=10
corpus=""           # the corpus root; "" generates the synthetic corpus (--size, --seed) in the LibriSpeech layout
layout=librispeech  # librispeech | aligner | kaldi: how the subsets under --corpus are laid out
train_set=train     # subset (dir under --corpus) to train on
dev_set=dev         # subset for validation and tuning (its words align it too)
test_sets="test test_unseen test_neural"  # subsets to score (those missing are skipped)
tag=""              # data/words_<tag>, exp/words_<tag> (default: synth_<size>, or the corpus dir's name)
import_opts="--lowercase"  # import-corpus options (lowercase: the word LM's case; e.g. --speaker-chars 3 for aligner dirs)
size=medium         # synthetic corpus: tiny | small | medium | timit
seed=0
unseen_voices=awb   # synthetic corpus: flite voices that speak only test_unseen (and dev_unseen)
neural_voices=joe   # synthetic corpus: neural (piper) voices, in train, dev_neural and test_neural
nj=2
device=auto
ngpu=1
feat_kind=fbank
root=$(CDPATH='' cd -- "$(dirname -- "$0")/../.." && pwd)
phone_lang_opts="--phone-lang timit"  # the phone set: "--phone-lang DIR|timit", or "" to derive it from the lexicon
lexicon=""          # a CMUdict-format lexicon whose pronunciations come first (default: CMUdict, then flite)
conf=""             # the last CI model (default: recipes/synth/conf/ci_lstm_<size>.yaml, else ci_lstm.yaml)
flat_start_conf=""  # the flat start's first model, on the equal alignment (default: recipes/words/conf/ci_flat0_<size>.yaml, else ci_flat0.yaml)
flat_conf=""        # the flat start's later CI models but the last (default: recipes/words/conf/ci_flat_<size>.yaml, else --conf)
flat_rounds=2       # rounds of realignment over the training graphs and retraining (chosen on dev)
flat_start_utts=""  # N: the flat start's first model trains on the N shortest utterances only ("" all; chosen on dev)
realign_dnn=true    # a DNN (--flat-start-conf) trained on the last CI model's realignment realigns again for the tree and CD (chosen on dev)
cd_conf=""          # CD models (default: recipes/synth/conf/cd_lstm_<size>.yaml, else cd_lstm.yaml)
cd_leaves="1000"
ci_realigned=true   # a CI LSTM (--conf) retrained on the realignment the tree reads (stage 5; chosen on dev)
frame_subsampling=1 # acoustic models emit one output every K feature frames (exp dir <name>_lfrK)
lfr_topology=1state # K > 1: every phone's HMM, 1state (one looping state) or chain (Kaldi's; <name>_lfrK_chain)
cd_init=realigned   # the CD models start from: realigned (that CI LSTM), true (the flat start's last CI LSTM), false
vocab_size=""       # word LM vocabulary (default: 20000; 3000 for --size tiny)
lm_sentences=""     # sentences sampled for the word LM text (default: 400000; 3000 for tiny)
lm_opts=""          # more prepare-lang options, e.g. "--lm my.arpa"
out=$root
option_names="stage stop_stage corpus layout train_set dev_set test_sets tag import_opts size seed unseen_voices neural_voices nj device ngpu feat_kind phone_lang_opts lexicon conf flat_start_conf flat_conf flat_rounds flat_start_utts realign_dnn cd_conf cd_leaves cd_init ci_realigned vocab_size lm_sentences lm_opts frame_subsampling lfr_topology out"
usage="Usage: $0 [--corpus DIR --layout librispeech|aligner|kaldi --train-set S --dev-set S --test-sets \"S ...\"]
  [--phone-lang-opts \"--phone-lang DIR|timit\" | \"\"] [--lexicon my.dict] [--lm-opts \"--lm my.arpa\"]
  [--flat-rounds N] [--flat-start-utts N] [--realign-dnn true|false] [--ci-realigned true|false]
  [--cd-init realigned|true|false] [--size tiny|small|medium] [--stage N] [--stop-stage M] [--frame-subsampling 3] [--lfr-topology 1state|chain] [--out dir]
  e.g.: $0 --size small                      (the synthetic corpus, words only)
        $0 --corpus /corpora/LibriSpeech --train-set train-clean-100 --dev-set dev-clean \\
           --test-sets \"test-clean\" --phone-lang-opts \"\" --lm-opts \"--lm 3-gram.arpa\" --import-opts \"\""

. "$root/recipes/utils/parse_options.sh"
. "$root/recipes/utils/stages.sh"
case "$cd_init:$ci_realigned" in
  true:* | false:* | realigned:true) ;;
  realigned:*) echo "$0: --cd-init realigned starts the CD models from ci_lstm_realigned: it needs --ci-realigned true" >&2
               exit 1 ;;
  *) echo "$0: --cd-init must be realigned, true or false, not '$cd_init'" >&2; exit 1 ;;
esac
if [ $# -ne 0 ]; then echo "$usage" >&2; exit 1; fi
command -v asr >/dev/null || { echo "$0: the 'asr' command is not on PATH (run 'make setup' and activate .venv)" >&2; exit 1; }

conf_or() {
  # conf_or <dir> <kind>: <dir>/<kind>_<size>.yaml where there is one, else <dir>/<kind>.yaml
  local f=$1/$2_$size.yaml
  if [ -f "$f" ]; then echo "$f"; else echo "$1/$2.yaml"; fi
}
conf=$(abspath "${conf:-$(conf_or "$root/recipes/synth/conf" ci_lstm)}")
cd_conf=$(abspath "${cd_conf:-$(conf_or "$root/recipes/synth/conf" cd_lstm)}")
if [ -z "$flat_conf" ]; then
  flat_conf=$root/recipes/words/conf/ci_flat_$size.yaml
  [ -f "$flat_conf" ] || flat_conf=$conf
fi
flat_conf=$(abspath "$flat_conf")
flat_start_conf=$(abspath "${flat_start_conf:-$(conf_or "$root/recipes/words/conf" ci_flat0)}")
if [ "$size" = tiny ]; then vocab_default=3000 lm_default=3000; else vocab_default=20000 lm_default=400000; fi
vocab_size=${vocab_size:-$vocab_default}
lm_sentences=${lm_sentences:-$lm_default}
if [ -n "$lexicon" ]; then lexicon=$(abspath "$lexicon"); lm_opts="$lm_opts --lexicon $lexicon"; fi
out=$(abspath "$out")
if [ -n "$corpus" ]; then
  corpus=$(abspath "$corpus")
  tag=${tag:-$(basename "$corpus")}
else
  tag=${tag:-synth_$size}
fi
cd "$root"

data=$out/data/words_$tag
exp=$out/exp/words_$tag$(lfr_suffix "$frame_subsampling" "$lfr_topology")
times=$exp/stage_times.tsv
mkdir -p "$exp/log"
corpus_dir=${corpus:-$data/corpus}

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  SECONDS=0
  if [ -z "$corpus" ]; then
    log "Stage 0: generate the synthetic corpus in the LibriSpeech layout ($size, seed $seed): word transcripts only"
    asr --log-file "$exp/log/corpus.log" synth-corpus "$corpus_dir" --size "$size" --seed "$seed" --nj "$nj" \
      --unseen-voices "$unseen_voices" --neural-voices "$neural_voices" --layout librispeech
  else
    log "Stage 0: corpus $corpus ($layout layout)"
  fi
  record_time "$times" "0 corpus" "$SECONDS"
fi

eval_sets=()
for set in $test_sets; do
  if [ -e "$corpus_dir/$set" ] || [ -d "$data/$set" ]; then eval_sets+=("$set"); fi
done

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "Stage 1: data dirs (word transcripts): $train_set → train, $dev_set → dev, ${eval_sets[*]}"
  SECONDS=0
  import_set() {
    # import_set <subset> <data dir name>
    if [ -f "$data/$2/text" ] && [ "$data/$2/text" -nt "$corpus_dir/$1" ]; then
      log "data dir $2 exists, skipping"
    else
      # shellcheck disable=SC2086  # import_opts is a list of options
      asr --log-file "$exp/log/import_$2.log" import-corpus "$layout" "$corpus_dir/$1" "$data/$2" $import_opts
    fi
  }
  import_set "$train_set" train
  import_set "$dev_set" dev
  for set in "${eval_sets[@]}"; do import_set "$set" "$set"; done
  record_time "$times" "1 data dirs" "$SECONDS"
fi

supervision=words
rnn_decoder=false
phone_lm_conf="" phone_lm_text=false phone_lm_opts=""
. "$root/recipes/utils/hybrid_stages.sh"
