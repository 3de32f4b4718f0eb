#!/usr/bin/env bash
# Real TIMIT (LDC93S1), end to end: data dirs (SA excluded; 3696 train,
# 400 dev, 192 core test) → lang/graph → features → CI LSTM → realignment →
# decision tree → CD LSTM → HMM decoding → PER.
# Outputs: <out>/data/timit/ and <out>/exp/timit/.
set -euo pipefail

stage=0
stop_stage=10
timit=              # the TIMIT directory (holding TRAIN/ and TEST/, any case)
device=auto         # auto | cpu | cuda
ngpu=1              # data-parallel training processes (torchrun): GPUs on CUDA, gloo processes on the CPU
feat_kind=fbank     # fbank | mfcc
# Defaults are relative to the repository root; --timit, --conf and --out given
# on the command line are relative to the directory the script is run from.
root=$(CDPATH='' cd -- "$(dirname -- "$0")/../.." && pwd)
conf=$root/recipes/timit/conf/ci_lstm.yaml        # CI model (stages 4, 5)
cd_conf=$root/recipes/timit/conf/cd_lstm.yaml     # CD models (stage 7)
cd_leaves="2500"    # decision-tree sizes to train CD models for, e.g. "1000 2500 4000"
cd_init=true        # start the CD models' LSTM layers from the CI model's (stage 7)
ci_realigned=true   # also retrain the CI model on the realignment (stage 5)
frame_subsampling=1 # acoustic models emit one output every K feature frames (exp dir <name>_lfrK)
lfr_topology=1state # K > 1: every phone's HMM, 1state (one looping state) or chain (Kaldi's; <name>_lfrK_chain)
nj=2                # processes for LM text sampling and decoding
vocab_size=""       # word LM vocabulary (default: 20000)
lm_sentences=""     # sentences sampled for the word LM text (default: 400000)
lm_opts=""          # more prepare-lang options, e.g. "--lm my.arpa" or "--lexicon my.dict"
phone_lm_conf=$root/recipes/timit/conf/phone_lm.yaml  # the RNN decoder's phone LM (stage 9)
phone_lm_text=true  # the phone LM also reads the word LM text expanded through the lexicon
phone_lm_opts=""    # more train-phone-lm options, e.g. "--eval /more/data/dir"
rnn_decoder=true    # stage 9: the RNN phone-sequence decoder (false: skip it)
out=$root           # data/ and exp/ are made under this directory
option_names="stage stop_stage timit nj device ngpu feat_kind conf cd_conf cd_leaves cd_init ci_realigned vocab_size lm_sentences lm_opts phone_lm_conf phone_lm_text phone_lm_opts rnn_decoder frame_subsampling lfr_topology out"
usage="Usage: $0 --timit /path/to/TIMIT [--stage N] [--stop-stage M] [--device auto|cpu|cuda] [--ngpu N]
  [--conf ci_model.yaml] [--cd-conf cd_model.yaml] [--cd-leaves \"1000 2000\"] [--cd-init true]
  [--ci-realigned true] [--vocab-size 20000] [--lm-sentences 400000] [--lm-opts \"--lm my.arpa\"]
  [--phone-lm-conf phone_lm.yaml] [--phone-lm-text true] [--phone-lm-opts \"...\"] [--rnn-decoder true] [--frame-subsampling 3] [--lfr-topology 1state|chain] [--out dir]"

. "$root/recipes/utils/parse_options.sh"
. "$root/recipes/utils/stages.sh"
if [ $# -ne 0 ] || [ -z "$timit" ]; then echo "$usage" >&2; exit 1; fi
command -v asr >/dev/null || { echo "$0: the 'asr' command is not on PATH (run 'make setup' and activate .venv)" >&2; exit 1; }
timit=$(abspath "$timit")
conf=$(abspath "$conf")
cd_conf=$(abspath "$cd_conf")
phone_lm_conf=$(abspath "$phone_lm_conf")
vocab_size=${vocab_size:-20000}
lm_sentences=${lm_sentences:-400000}
out=$(abspath "$out")
cd "$root"

data=$out/data/timit
exp=$out/exp/timit$(lfr_suffix "$frame_subsampling" "$lfr_topology")
times=$exp/stage_times.tsv
mkdir -p "$exp/log"

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  log "Stage 0: check the TIMIT path"
  [ -d "$timit" ] || { echo "$0: TIMIT directory '$timit' does not exist" >&2; exit 1; }
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "Stage 1: data dirs train, dev (50 speakers), core test (24 speakers)"
  SECONDS=0
  if [ -f "$data/test/phone_text" ] && [ -f "$data/dev/phone_text" ] && [ -f "$data/train/phone_text" ] && [ -f "$data/lang/topo" ]; then
    log "data dirs and the lang dir exist, skipping"
  else
    asr --log-file "$exp/log/prepare.log" prepare-timit "$timit" "$data" --standard-counts \
      --dev-spk "$root/recipes/timit/conf/dev_spk.list" --test-spk "$root/recipes/timit/conf/test_spk.list"
  fi
  record_time "$times" "1 data dirs" "$SECONDS"
fi

. "$root/recipes/utils/hybrid_stages.sh"
