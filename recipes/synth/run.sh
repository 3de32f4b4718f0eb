#!/usr/bin/env bash
# Synthetic TIMIT-style corpus (flite voices + perturbations), end to end:
# corpus → data dirs → lang/graph → features → CI LSTM → realignment →
# decision tree → CD LSTM → HMM decoding → PER.
# Outputs: <out>/data/synth_<size>/ and <out>/exp/synth_<size>/.
set -euo pipefail

stage=0
stop_stage=10
size=auto           # tiny | small | medium | timit; auto: timit on a CUDA device, else medium
seed=0
nj=2
device=auto         # auto | cpu | cuda
ngpu=1              # data-parallel training processes (torchrun): GPUs on CUDA, gloo processes on the CPU
feat_kind=fbank     # fbank | mfcc
unseen_voices=awb   # flite voices held out of train/dev/test: they speak only test_unseen and dev_unseen ("" for none)
neural_voices=joe   # neural (piper) voices: word transcripts only, aligned from their words ("" for none)
# Defaults are relative to the repository root; --conf and --out given on the
# command line are relative to the directory the script is run from.
root=$(CDPATH='' cd -- "$(dirname -- "$0")/../.." && pwd)
conf=""             # CI model (stages 4, 5); default conf/ci_lstm_<size>.yaml, else conf/ci_lstm.yaml
cd_conf=""          # CD models (stage 7); default conf/cd_lstm_<size>.yaml, else conf/cd_lstm.yaml
cd_leaves="1000"    # decision-tree sizes to train CD models for, e.g. "300 500 1000" (1000: chosen on dev)
cd_init=true        # start the CD models' LSTM layers from the CI model's (stage 7)
ci_realigned=false  # also retrain the CI model on the realignment (stage 5)
frame_subsampling=1 # acoustic models emit one output every K feature frames (exp dir <name>_lfrK)
lfr_topology=1state # K > 1: every phone's HMM, 1state (one looping state) or chain (Kaldi's; <name>_lfrK_chain)
lfr_ali=""          # K > 1: a 10 ms CI model dir (e.g. exp/synth_medium/ci_lstm) whose alignments
                    # (ali_train or ali_train_all, ali_dev) the trees and CD models read, converted to
                    # K, instead of the K-rate CI model's realignment (exp dir <name>_lfrK_ali10ms)
vocab_size=""       # word LM vocabulary (default: 20000; 3000 for --size tiny)
lm_sentences=""     # sentences sampled for the word LM text (default: 400000; 3000 for tiny)
lm_opts=""          # more prepare-lang options, e.g. "--lm my.arpa" or "--lexicon my.dict"
phone_lm_conf=""    # the RNN decoder's phone LM (stage 9); default conf/phone_lm_<size>.yaml, else conf/phone_lm.yaml
phone_lm_text=true  # the phone LM also reads the word LM text expanded through the lexicon (chosen on dev)
phone_lm_opts=""    # more train-phone-lm options, e.g. "--eval /more/data/dir"
tune_set=auto       # decoding scales tuned on dev, or mixed: dev + dev_unseen + dev_neural (speech unlike
                    # training; dev WER +0.5, unseen voices -1.6 to -1.8 on medium); auto: mixed when those exist
rnn_decoder=true    # stage 9: the RNN phone-sequence decoder (false: skip it)
mmi=true            # stage 7: also continue each CD model with MMI (exp dir cd_lstm_<N>_mmi, a system of its own)
mmi_conf=""         # its settings; default conf/mmi.yaml
out=$root           # data/ and exp/ are made under this directory
option_names="stage stop_stage size seed nj device ngpu feat_kind unseen_voices neural_voices conf cd_conf cd_leaves cd_init ci_realigned vocab_size lm_sentences lm_opts phone_lm_conf phone_lm_text phone_lm_opts tune_set rnn_decoder mmi mmi_conf frame_subsampling lfr_topology lfr_ali out"
usage="Usage: $0 [--stage N] [--stop-stage M] [--size auto|tiny|small|medium|timit] [--device auto|cpu|cuda] [--ngpu N] [--unseen-voices awb]
  [--conf ci_model.yaml] [--cd-conf cd_model.yaml] [--cd-leaves \"500 1000\"] [--cd-init true]
  [--ci-realigned true] [--vocab-size 20000] [--lm-sentences 400000] [--lm-opts \"--lm my.arpa\"]
  [--phone-lm-conf phone_lm.yaml] [--phone-lm-text true] [--phone-lm-opts \"...\"] [--rnn-decoder true] [--mmi true] [--mmi-conf mmi.yaml]
  [--tune-set auto|dev|mixed] [--frame-subsampling 3] [--lfr-topology 1state|chain]
  [--lfr-ali exp/synth_medium/ci_lstm] [--out dir]
  e.g.: $0 --size small --stage 0 --stop-stage 10"

. "$root/recipes/utils/parse_options.sh"
. "$root/recipes/utils/stages.sh"
if [ $# -ne 0 ]; then echo "$usage" >&2; exit 1; fi
case $tune_set in dev | mixed | auto) ;; *) echo "$0: --tune-set must be dev, mixed or auto, not '$tune_set'" >&2; exit 1 ;; esac
command -v asr >/dev/null || { echo "$0: the 'asr' command is not on PATH (run 'make setup' and activate .venv)" >&2; exit 1; }
if [ "$size" = auto ]; then
  # The largest corpus the device trains in make demo's time: on 2 CPU cores 144 speakers
  # (bench/data_size.py); on a GPU the timit-sized corpus.
  resolved=$(asr device --device "$device") || exit 1
  if [ "$resolved" = cuda ]; then size=timit; else size=medium; fi
  log "--size auto: $size (device $resolved)"
fi
# The model configuration of a corpus size: conf/<kind>_lstm_<size>.yaml where there is one.
size_conf() {
  local f=$root/recipes/synth/conf/$1_lstm_$size.yaml
  if [ -f "$f" ]; then echo "$f"; else echo "$root/recipes/synth/conf/$1_lstm.yaml"; fi
}
conf=$(abspath "${conf:-$(size_conf ci)}")
cd_conf=$(abspath "${cd_conf:-$(size_conf cd)}")
if [ -z "$phone_lm_conf" ]; then
  phone_lm_conf=$root/recipes/synth/conf/phone_lm_$size.yaml
  [ -f "$phone_lm_conf" ] || phone_lm_conf=$root/recipes/synth/conf/phone_lm.yaml
fi
phone_lm_conf=$(abspath "$phone_lm_conf")
mmi_conf=$(abspath "${mmi_conf:-$root/recipes/synth/conf/mmi.yaml}")
if [ "$size" = tiny ]; then vocab_default=3000 lm_default=3000; else vocab_default=20000 lm_default=400000; fi
vocab_size=${vocab_size:-$vocab_default}
lm_sentences=${lm_sentences:-$lm_default}
out=$(abspath "$out")
if [ -n "$lfr_ali" ]; then lfr_ali=$(abspath "$lfr_ali"); fi
cd "$root"

data=$out/data/synth_${size}
exp=$out/exp/synth_${size}$(lfr_suffix "$frame_subsampling" "$lfr_topology")${lfr_ali:+_ali10ms}
times=$exp/stage_times.tsv
mkdir -p "$exp/log"

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  log "Stage 0: generate the synthetic corpus ($size, seed $seed)"
  SECONDS=0
  asr --log-file "$exp/log/corpus.log" synth-corpus "$data/corpus" --size "$size" --seed "$seed" --nj "$nj" \
    --unseen-voices "$unseen_voices" --neural-voices "$neural_voices"
  record_time "$times" "0 corpus" "$SECONDS"
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "Stage 1: data dirs train, dev, test (and the held-out voices' test_unseen, dev_unseen; the neural voice's train_words, dev_neural, test_neural)"
  SECONDS=0
  extra=() have=true
  for set in test_unseen dev_unseen dev_neural test_neural; do
    list=$data/corpus/${set}_spk.list
    if [ -s "$list" ]; then
      extra+=(--extra-test "$set=$list")
      [ -f "$data/$set/text" ] || have=false
      case $set in *neural) [ -f "$data/train_words/text" ] || have=false ;; esac
    fi
  done
  if [ "$have" = true ] && [ -f "$data/test/phone_text" ] && [ -f "$data/dev/phone_text" ] && [ -f "$data/train/phone_text" ] \
     && [ -f "$data/lang/topo" ]; then
    log "data dirs and the lang dir exist, skipping"
  else
    asr --log-file "$exp/log/prepare.log" prepare-timit "$data/corpus" "$data" \
      --dev-spk "$data/corpus/dev_spk.list" --test-spk "$data/corpus/test_spk.list" "${extra[@]}"
  fi
  record_time "$times" "1 data dirs" "$SECONDS"
fi

. "$root/recipes/utils/hybrid_stages.sh"
