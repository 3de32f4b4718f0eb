#!/usr/bin/env bash
# Stages 2-10 of the hybrid CI LSTM-HMM recipe, shared by every corpus.
# Sourced by recipes/<corpus>/run.sh after stages 0-1, with these set:
#   stage stop_stage data exp conf device feat_kind times
# where $data holds train/ dev/ test/ data dirs with phone segmentations.

model=$exp/ci_lstm

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  log "Stage 2: phone bigram LM and decoding graph"
  SECONDS=0
  asr --log-file "$exp/log/graph.log" make-graph "$data/train" "$data/lang" --order 2
  record_time "$times" "2 lang" "$SECONDS"
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "Stage 3: $feat_kind features and per-speaker CMVN"
  SECONDS=0
  asr --log-file "$exp/log/feats.log" make-feats --kind "$feat_kind" "$data/feats" "$data/train" "$data/dev" "$data/test"
  record_time "$times" "3 features" "$SECONDS"
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  log "Stage 4: CI targets (3 states per phone) and CI LSTM training"
  SECONDS=0
  # resumes an interrupted run, returns at once when done, refuses a changed config
  asr --log-file "$exp/log/train_ci.log" train-ci "$data/train" "$data/dev" "$model" --conf "$conf" --device "$device"
  record_time "$times" "4 train CI LSTM" "$SECONDS"
fi

if [ "$stage" -le 8 ] && [ "$stop_stage" -ge 8 ]; then
  log "Stage 8: HMM decoding with the phone bigram (acoustic scale tuned on dev)"
  SECONDS=0
  # redo dev (and so test) when the graph or the model changed since the last tuning
  if [ ! -f "$model/decode_dev/scores.yaml" ] || ! cmp -s "$data/lang/HG.fst" "$model/graph/HG.fst" \
     || [ "$model/final.pt" -nt "$model/decode.yaml" ]; then
    asr --log-file "$exp/log/decode_dev.log" decode "$model" "$data/dev" "$model/decode_dev" \
      --graph "$data/lang/HG.fst" --tune-acwt --device "$device"
  else
    log "dev decode is up to date, skipping"
  fi
  if [ ! -f "$model/decode_test/scores.yaml" ] || [ "$model/decode.yaml" -nt "$model/decode_test/scores.yaml" ]; then
    asr --log-file "$exp/log/decode_test.log" decode "$model" "$data/test" "$model/decode_test" --device "$device"
  fi
  record_time "$times" "8 decode" "$SECONDS"
fi

if [ "$stage" -le 10 ] && [ "$stop_stage" -ge 10 ]; then
  log "Stage 10: results"
  asr --log-file "$exp/log/results.log" results "$model" --stage-times "$times"
  log "Reports: $model/decode_test/per_report.txt; table: $model/RESULTS.md"
fi
