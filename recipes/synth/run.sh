#!/usr/bin/env bash
# Synthetic TIMIT-style corpus (flite voices + perturbations), end to end:
# corpus → data dirs → lang/graph → features → CI LSTM → HMM decoding → PER.
# Outputs: data/synth_<size>/ and exp/synth_<size>/ under the repository root.
set -euo pipefail

stage=0
stop_stage=10
size=small          # tiny | small | timit
seed=0
nj=2
device=auto         # auto | cpu | cuda
feat_kind=fbank     # fbank | mfcc
conf=recipes/synth/conf/ci_lstm.yaml
out=.               # data/ and exp/ are made under this directory
option_names="stage stop_stage size seed nj device feat_kind conf out"
usage="Usage: $0 [--stage N] [--stop-stage M] [--size tiny|small|timit] [--device auto|cpu|cuda]
  e.g.: $0 --size small --stage 0 --stop-stage 10"

cd "$(dirname "$0")/../.."
. recipes/utils/parse_options.sh
. recipes/utils/stages.sh
if [ $# -ne 0 ]; then echo "$usage" >&2; exit 1; fi
command -v asr >/dev/null || { echo "$0: the 'asr' command is not on PATH (run 'make setup' and activate .venv)" >&2; exit 1; }

data=$out/data/synth_${size}
exp=$out/exp/synth_${size}
model=$exp/ci_lstm
times=$exp/stage_times.tsv
mkdir -p "$exp/log"

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  log "Stage 0: generate the synthetic corpus ($size, seed $seed)"
  SECONDS=0
  asr --log-file $exp/log/corpus.log synth-corpus $data/corpus --size $size --seed $seed --num-jobs $nj
  record_time $times "0 corpus" $SECONDS
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "Stage 1: data dirs train, dev, test"
  SECONDS=0
  if [ -f $data/test/phone_text ] && [ -f $data/dev/phone_text ] && [ -f $data/train/phone_text ]; then
    log "data dirs exist, skipping"
  else
    asr --log-file $exp/log/prepare.log prepare-timit $data/corpus $data \
      --dev-spk $data/corpus/dev_spk.list --test-spk $data/corpus/test_spk.list
  fi
  record_time $times "1 data dirs" $SECONDS
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  log "Stage 2: phone bigram LM and decoding graph"
  SECONDS=0
  asr --log-file $exp/log/graph.log make-graph $data/train $data/lang --order 2
  record_time $times "2 lang" $SECONDS
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  log "Stage 3: $feat_kind features and per-speaker CMVN"
  SECONDS=0
  asr --log-file $exp/log/feats.log make-feats --kind $feat_kind $data/feats $data/train $data/dev $data/test
  record_time $times "3 features" $SECONDS
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  log "Stage 4: CI targets (3 states per phone) and CI LSTM training"
  SECONDS=0
  if [ -f $model/final.pt ] && [ -f $model/history.yaml ]; then
    log "$model is trained, skipping"
  else
    asr --log-file $exp/log/train_ci.log train-ci $data/train $data/dev $model --conf $conf --device $device
  fi
  record_time $times "4 train CI LSTM" $SECONDS
fi

if [ $stage -le 8 ] && [ $stop_stage -ge 8 ]; then
  log "Stage 8: HMM decoding with the phone bigram (acoustic scale tuned on dev)"
  SECONDS=0
  if [ ! -f $model/decode_dev/scores.yaml ]; then
    asr --log-file $exp/log/decode_dev.log decode $model $data/dev $model/decode_dev \
      --graph $data/lang/HG.fst --tune-acwt --device $device
  fi
  if [ ! -f $model/decode_test/scores.yaml ]; then
    asr --log-file $exp/log/decode_test.log decode $model $data/test $model/decode_test --device $device
  fi
  record_time $times "8 decode" $SECONDS
fi

if [ $stage -le 10 ] && [ $stop_stage -ge 10 ]; then
  log "Stage 10: results"
  asr results $model --stage-times $times
  log "Reports: $model/decode_test/per_report.txt; table: $model/RESULTS.md"
fi
