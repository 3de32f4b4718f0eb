#!/usr/bin/env bash
# Stages 2-10 of the hybrid LSTM-HMM recipe, shared by every corpus.
# Sourced by recipes/<corpus>/run.sh after stages 0-1, with these set:
#   stage stop_stage data exp conf cd_conf cd_leaves cd_init ci_realigned device ngpu feat_kind times
#   (cd_init: true starts the CD models from ci_lstm, false from random weights; recipes/words/run.sh
#   also takes realigned: from ci_lstm_realigned)
#   nj lm_sentences vocab_size lm_opts (extra prepare-lang options, e.g. "--lm my.arpa")
#   phone_lm_conf (stage 9: the phone LM's settings; phone_lm_opts: more train-phone-lm options)
#   phone_lm_text (true: the phone LM also reads the word LM's text expanded through the lexicon,
#   its first phone_lm_sentences (default 20000) sentences)
#   rnn_decoder (false: skip stage 9)
#   mmi (true: stage 7 continues each CD model with MMI, $exp/cd_lstm_<N>_mmi, a system of its own;
#   phone supervision only) and mmi_conf (its settings, asr.steps.train_mmi.MmiConfig)
#   frame_subsampling (default 1; K > 1: every acoustic model emits one output every K feature
#   frames and reads K stacked; the lang dirs get an HMM a phone can cross in one frame, as
#   $data/lang_lfrK and $data/lang_words_lfrK, and the graphs are built from those)
#   lfr_topology (K > 1: 1state, one looping state a phone; chain, Kaldi's chain topology, the
#   dirs' suffix _lfrK_chain)
#   lfr_ali (K > 1: a 10 ms CI model dir whose ali_train (or ali_train_all) and ali_dev the trees
#   and the CD models read, converted to K, as Kaldi's lower frame rate recipes read the 10 ms
#   system's; default: the K-rate CI model's own realignment)
# where $data holds train/ dev/ test/ data dirs with phone segmentations, and
# optionally more test sets (test_unseen/: voices never heard in training;
# test_neural/: the neural voice's test speakers, word transcripts only),
# which are scored with the settings tuned on dev, like test; more dev sets
# (dev_unseen/, dev_neural/) for tuning on speech unlike training (tune_set=mixed);
# and train_words/: training speakers with word transcripts only (the neural
# voice), aligned from their words by the CI model and trained on with train/
# from stage 5 on (the combined set train_all/).
#   tune_set (dev: scales tuned on dev; mixed: on dev + dev_unseen + dev_neural, dev_mixed/;
#   auto: mixed when $data has dev_unseen or dev_neural, else dev)
# Word supervision (supervision=words, recipes/words/run.sh): the data dirs have word
# transcripts only; also set
#   phone_lang_opts (prepare-lang's phone set: "--phone-lang DIR" or lexicon options)
#   flat_rounds flat_start_conf flat_conf (stage 4: rounds of realignment; the first model's
#   settings, on the equal alignment; those of the rounds after it but the last)
#   flat_start_utts (stage 4: "" or N, the first model trains on the N shortest utterances only)
#   realign_dnn (stage 5: true: a DNN of flat_start_conf's settings, trained on the CI LSTM's
#   realignment, realigns train and dev again, and the tree and CD models read its alignment)
#   eval_sets (the test sets' names, default test and test_unseen when there)
# The word lang dir is then the lang dir of every stage ($lang_dir = $data/lang_words),
# stage 4 is a flat start, and only WER is scored (no phone transcripts train a phone LM).
#
# Experiment directories (each named for what it holds):
#   $exp/ci_lstm               CI LSTM on the uniform split of the phone segmentation
#   $exp/ci_lstm/ali_{train,dev}  its Viterbi realignment of train and dev
#   $exp/ci_lstm_dnn/ali_{train,dev}  word supervision with realign_dnn: the DNN's realignment,
#                              the tree's and the CD models' targets
#   $exp/ci_lstm_realigned     CI LSTM retrained on the realignment the tree reads (ci_realigned=true)
#   $exp/tree_<N>              decision tree of about N leaves + its graph H∘C∘G
#                              and its word graph graph_words/HCLG.fst
#   $exp/cd_lstm_<N>           CD LSTM on the tree's pdfs, targets from the realignment
#   $exp/cd_lstm_<N>_mmi       the same continued with MMI (mmi=true)
#   $data/lang_words           word trigram, lexicon, L and G; $data/graph_words_ci the CI HCLG
#   $exp/phone_lm              the recurrent phone-sequence model (stage 9)
#   <system>/decode_{dev,test}        PER;  <system>/decode_words_{dev,test}  WER
#   <system>/decode_rnn_{dev,test}    PER of the RNN phone-sequence decoder

supervision=${supervision:-phones}
frame_subsampling=${frame_subsampling:-1}
# the lang dirs the models and graphs use: the prepared ones, or at a lower frame rate copies
# with a 1-state HMM for every phone (a phone can last one output frame)
phone_lang=$data/lang words_lang=$data/lang_words ci_word_graph=$data/graph_words_ci train_opts=()
lfr_topology=${lfr_topology:-1state}
lfr=$(lfr_suffix "$frame_subsampling" "$lfr_topology")
topology_opts=(--states 1)
if [ "$lfr_topology" = chain ]; then topology_opts=(--chain); fi
if [ -n "$lfr" ]; then
  phone_lang=$data/lang$lfr words_lang=$data/lang_words$lfr ci_word_graph=$data/graph_words_ci$lfr
  train_opts=(--frame-subsampling "$frame_subsampling")
fi
ci=$exp/ci_lstm
cd_ali=$ci  # the model whose realignment the tree and the CD models read
if [ "$supervision" = words ] && [ "${realign_dnn:-false}" = true ]; then cd_ali=${ci}_dnn; fi
if [ -n "${lfr_ali:-}" ]; then
  if [ "$frame_subsampling" -le 1 ]; then log "--lfr-ali needs --frame-subsampling K > 1"; exit 1; fi
  cd_ali=$lfr_ali
fi
systems=("$ci")
if [ -z "${eval_sets+set}" ]; then
  eval_sets=(test)
  for set in test_unseen test_neural; do
    if [ -d "$data/$set" ]; then eval_sets+=("$set"); fi
  done
fi
dev_extra=()  # dev sets unlike training: features made, excluded from the LM text, in the mixed tuning set
for set in dev_unseen dev_neural; do
  if [ -d "$data/$set" ]; then dev_extra+=("$set"); fi
done
tune_set=${tune_set:-dev}
if [ "$tune_set" = auto ]; then  # mixed where there is speech unlike training to tune on
  if [ "${#dev_extra[@]}" -gt 0 ]; then tune_set=mixed; else tune_set=dev; fi
  log "--tune-set auto: $tune_set"
fi
if [ "$tune_set" = mixed ] && [ "${#dev_extra[@]}" -eq 0 ]; then
  log "tune_set=mixed needs dev_unseen or dev_neural data dirs; $data has neither"; exit 1
fi
# training speakers with word transcripts only: aligned from their words, then trained on with
# train/ as train_all/ (stage 5 on)
cd_train=train
if [ "$supervision" = phones ] && [ -d "$data/train_words" ]; then cd_train=train_all; fi
if [ "$supervision" = words ]; then
  lang_dir=$words_lang
  align_opts=(--words "$words_lang")
  score_phones=false  # no phone transcripts: no phone LM, no PER (WER only)
  rnn_decoder=false
else
  lang_dir=$phone_lang
  align_opts=()
  score_phones=true
fi
eval_dirs=() eval_texts=()
for set in "${eval_sets[@]}"; do eval_dirs+=("$data/$set"); eval_texts+=("$data/$set/text"); done
extra_dirs=() extra_texts=()
for set in "${dev_extra[@]}"; do extra_dirs+=("$data/$set"); extra_texts+=("$data/$set/text"); done
train_words_dirs=()
if [ "$cd_train" = train_all ]; then train_words_dirs=("$data/train_words"); fi
if [ "$ci_realigned" = true ]; then systems+=("${ci}_realigned"); fi
mmi=${mmi:-false}
if [ "$supervision" = words ]; then mmi=false; fi  # MMI's denominator is the phone n-gram of phone transcripts
for n in $cd_leaves; do systems+=("$exp/cd_lstm_$n"); done
if [ "$mmi" = true ]; then for n in $cd_leaves; do systems+=("$exp/cd_lstm_${n}_mmi"); done; fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  SECONDS=0
  if [ "$supervision" = phones ]; then
    if [ "$frame_subsampling" -gt 1 ]; then
      asr --log-file "$exp/log/lang_topology.log" lang-topology "$data/lang" "$phone_lang" "${topology_opts[@]}"
    fi
    log "Stage 2: phone bigram LM and the CI decoding graph"
    asr --log-file "$exp/log/graph.log" make-graph "$data/train" "$phone_lang" --order 2
    phone_lang_opts="--phone-lang $data/lang"
  fi
  log "Stage 2: word trigram ($vocab_size-word vocabulary), lexicon, L, G and the CI word graph"
  # the options that train the word LM, unless lm_opts gives one (--lm)
  lm_train_opts=(--exclude "$data/dev/text" "${extra_texts[@]}" "${eval_texts[@]}" --vocab-size "$vocab_size"
                 --lm-sentences "$lm_sentences" --nj "$nj")
  case " $lm_opts " in *" --lm "*|*" --lm="*) lm_train_opts=() ;; esac
  # shellcheck disable=SC2086
  asr --log-file "$exp/log/lang_words.log" prepare-lang "$data/train" "$data/lang_words" \
    $phone_lang_opts "${lm_train_opts[@]}" --eval "$data/dev" "${extra_dirs[@]}" "${eval_dirs[@]}" $lm_opts
  if [ "$frame_subsampling" -gt 1 ]; then
    asr --log-file "$exp/log/lang_words_topology.log" lang-topology "$data/lang_words" "$words_lang" "${topology_opts[@]}"
  fi
  asr --log-file "$exp/log/graph_words_ci.log" make-word-graph "$words_lang" "$ci_word_graph"
  record_time "$times" "2 lang" "$SECONDS"
fi

combine_newer() {
  # combine_newer <out> <data dir>...: asr combine-data, unless <out>'s features are newer than every input's
  local out=$1 dir fresh=true
  shift
  for dir in "$@"; do
    if [ ! -f "$out/feats.scp" ] || [ "$dir/feats.scp" -nt "$out/feats.scp" ]; then fresh=false; fi
  done
  if [ "$fresh" = true ]; then
    log "$(basename "$out") is up to date, skipping"
  else
    asr --log-file "$exp/log/combine_$(basename "$out").log" combine-data "$out" "$@"
  fi
}

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "Stage 3: $feat_kind features and CMVN statistics (per utterance, speech frames by Silero VAD)"
  SECONDS=0
  asr --log-file "$exp/log/feats.log" make-feats --kind "$feat_kind" --cmvn speech "$data/feats" "$data/train" \
    "${train_words_dirs[@]}" "$data/dev" "${extra_dirs[@]}" "${eval_dirs[@]}"
  if [ "$tune_set" = mixed ]; then
    # the mixed tuning sets: words dev + dev_unseen + dev_neural; phones (PER) those with phone labels
    combine_newer "$data/dev_mixed" "$data/dev" "${extra_dirs[@]}"
    if [ -d "$data/dev_unseen" ]; then combine_newer "$data/dev_mixed_phones" "$data/dev" "$data/dev_unseen"; fi
  fi
  record_time "$times" "3 features" "$SECONDS"
fi

align_set() {
  # align_set <model dir> <set>: Viterbi alignment of $data/<set> into <model dir>/ali_<set>,
  # unless one newer than the model is there
  local model=$1 set=$2 name
  name=$(basename "$model")
  if [ -f "$model/ali_$set/ali.yaml" ] && [ "$model/ali_$set/ali.yaml" -nt "$model/final.pt" ]; then
    log "alignment of $set by $name is up to date, skipping"
  else
    asr --log-file "$exp/log/align_${set}_$name.log" align "$model" "$data/$set" "$model/ali_$set" \
      "${align_opts[@]}" --device "$device"
  fi
}

flat_start() {
  # The flat start of word supervision: the equal alignment over each transcript's training
  # graph, a CI model on it, then $flat_rounds rounds of realignment over the training graphs
  # and retraining; the last model is $ci (the rounds before it are ${ci}_round<r>).
  local r model ali_train=$exp/ali_equal_train ali_dev=$exp/ali_equal_dev model_conf
  for set in train dev; do
    if [ -f "$exp/ali_equal_$set/ali.yaml" ] && [ "$exp/ali_equal_$set/ali.yaml" -nt "$words_lang/lang.yaml" ]; then
      log "equal alignment of $set is up to date, skipping"
    else
      asr --log-file "$exp/log/align_equal_$set.log" align-equal "$data/$set" "$words_lang" "$exp/ali_equal_$set"
    fi
  done
  local train_dir
  for ((r = 0; r <= flat_rounds; r++)); do
    if [ "$r" -eq "$flat_rounds" ]; then model=$ci model_conf=$conf; else model=${ci}_round$r model_conf=$flat_conf; fi
    train_dir=$data/train
    if [ "$r" -eq 0 ] && [ "$flat_rounds" -gt 0 ]; then
      model_conf=$flat_start_conf
      if [ -n "${flat_start_utts:-}" ]; then
        # Kaldi's flat start begins on the shortest utterances, where the equal alignment is least wrong
        train_dir=$data/train_shortest_$flat_start_utts
        if [ ! -f "$train_dir/feats.scp" ] || [ "$data/train/feats.scp" -nt "$train_dir/feats.scp" ]; then
          asr subset-data "$data/train" "$train_dir" --shortest "$flat_start_utts"
        fi
      fi
    fi
    log "flat start: model $r of $flat_rounds ($(basename "$model")) on $(basename "$train_dir"), $(basename "$(dirname "$ali_train")")/$(basename "$ali_train")"
    asr --log-file "$exp/log/train_$(basename "$model").log" train "$train_dir" "$data/dev" "$model" \
      --lang "$lang_dir" --conf "$model_conf" --ali-train "$ali_train" --ali-dev "$ali_dev" "${train_opts[@]}" \
      --device "$device" --ngpu "$ngpu"
    if [ "$r" -lt "$flat_rounds" ]; then
      align_set "$model" train
      align_set "$model" dev
      ali_train=$model/ali_train ali_dev=$model/ali_dev
    fi
  done
}

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  SECONDS=0
  if [ "$supervision" = words ]; then
    log "Stage 4: flat start (equal alignment over the training graphs H∘C∘L∘words, $flat_rounds rounds of realignment)"
    flat_start
  else
    log "Stage 4: CI targets (uniform split over each phone's HMM states) and CI LSTM training"
    # resumes an interrupted run, returns at once when done, refuses a changed config
    asr --log-file "$exp/log/train_ci.log" train "$data/train" "$data/dev" "$ci" --lang "$phone_lang" --conf "$conf" \
      "${train_opts[@]}" --device "$device" --ngpu "$ngpu"
  fi
  record_time "$times" "4 train CI LSTM" "$SECONDS"
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  log "Stage 5: Viterbi realignment of train and dev with the CI LSTM"
  SECONDS=0
  if [ -n "${lfr_ali:-}" ]; then
    for set in "$cd_train" dev; do
      if [ ! -f "$lfr_ali/ali_$set/ali.yaml" ]; then
        log "--lfr-ali: $lfr_ali/ali_$set/ali.yaml does not exist (run the 10 ms recipe's stage 5 first)"; exit 1
      fi
    done
    log "Stage 5: the trees and the CD models read $lfr_ali's alignments, converted to $frame_subsampling-frame outputs"
  fi
  for set in train dev; do align_set "$ci" "$set"; done
  if [ "$cd_train" = train_all ]; then
    log "Stage 5: the word-transcript speakers (train_words) aligned from their words; train_all = train + train_words"
    if [ -f "$ci/ali_train_words/ali.yaml" ] && [ "$ci/ali_train_words/ali.yaml" -nt "$ci/final.pt" ]; then
      log "alignment of train_words by $(basename "$ci") is up to date, skipping"
    else
      asr --log-file "$exp/log/align_train_words_$(basename "$ci").log" align "$ci" "$data/train_words" \
        "$ci/ali_train_words" --words "$words_lang" --device "$device"
    fi
    all_ali=$ci/ali_train_all/ali.yaml
    if [ -f "$all_ali" ] && [ -f "$data/train_all/feats.scp" ] && [ "$all_ali" -nt "$ci/ali_train/ali.yaml" ] \
       && [ "$all_ali" -nt "$ci/ali_train_words/ali.yaml" ]; then
      log "train_all and its alignment are up to date, skipping"
    else
      asr --log-file "$exp/log/combine_train_all.log" combine-data "$data/train_all" "$data/train" "$data/train_words" \
        --ali "$ci/ali_train" "$ci/ali_train_words" --ali-out "$ci/ali_train_all"
    fi
  fi
  if [ "$cd_ali" = "${ci}_dnn" ]; then
    # a network of ±5 frames places the boundaries closer to the truth than the BLSTM it learns
    # from (which learns its own targets' timing): dev word-boundary error 19.0 → 15.4 ms on medium
    log "Stage 5: a DNN on that realignment realigns train and dev again (the tree's and CD targets)"
    asr --log-file "$exp/log/train_$(basename "$cd_ali").log" train "$data/train" "$data/dev" "$cd_ali" \
      --lang "$lang_dir" --conf "$flat_start_conf" --ali-train "$ci/ali_train" --ali-dev "$ci/ali_dev" \
      "${train_opts[@]}" --device "$device" --ngpu "$ngpu"
    for set in train dev; do align_set "$cd_ali" "$set"; done
  fi
  if [ "$ci_realigned" = true ]; then
    asr --log-file "$exp/log/train_ci_realigned.log" train "$data/$cd_train" "$data/dev" "${ci}_realigned" \
      --lang "$lang_dir" --conf "$conf" --ali-train "$cd_ali/ali_$cd_train" --ali-dev "$cd_ali/ali_dev" \
      "${train_opts[@]}" --device "$device" --ngpu "$ngpu"
  fi
  record_time "$times" "5 realign" "$SECONDS"
fi

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  log "Stage 6: decision trees ($cd_leaves leaves) and their graphs H∘C∘G"
  SECONDS=0
  for n in $cd_leaves; do
    tree=$exp/tree_$n
    if [ -f "$tree/tree.json" ] && [ "$tree/tree.json" -nt "$cd_ali/ali_$cd_train/ali.yaml" ]; then
      log "tree $tree is up to date, skipping"
    else
      asr --log-file "$exp/log/tree_$n.log" build-tree "$data/$cd_train" "$cd_ali/ali_$cd_train" "$tree" \
        --lang "$lang_dir" --num-leaves "$n" --frame-subsampling "$frame_subsampling"
    fi
    if [ "$score_phones" = true ]; then
      asr --log-file "$exp/log/graph_$n.log" make-graph "$data/train" "$phone_lang" --order 2 \
        --tree "$tree/tree.json" --graph-dir "$tree"
    fi
    asr --log-file "$exp/log/graph_words_$n.log" make-word-graph "$words_lang" "$tree/graph_words" \
      --tree "$tree/tree.json"
  done
  record_time "$times" "6 trees" "$SECONDS"
fi

# the sets the scales are tuned on, and the sets decoded with them (dev too when tuned elsewhere)
tune_words=dev tune_phones=dev scored_sets=("${eval_sets[@]}")
if [ "$tune_set" = mixed ]; then
  tune_words=dev_mixed scored_sets=(dev "${eval_sets[@]}")
  if [ -d "$data/dev_unseen" ]; then tune_phones=dev_mixed_phones; fi
fi

decode_system() {
  # decode_system <model dir> <graph dir>: tune the acoustic scale on $tune_phones, decode the
  # scored sets that have phone transcripts.
  local model=$1 graph=$2 name
  name=$(basename "$model")
  # redo the tuning (and so the rest) when the graph or the model changed since the last tuning
  if [ ! -f "$model/decode_$tune_phones/scores.yaml" ] || ! cmp -s "$graph/HCG.fst" "$model/graph/HCG.fst" \
     || [ "$model/final.pt" -nt "$model/decode.yaml" ]; then
    asr --log-file "$exp/log/decode_${tune_phones}_$name.log" decode "$model" "$data/$tune_phones" \
      "$model/decode_$tune_phones" --graph-dir "$graph" --tune --device "$device"
  else
    log "$name: $tune_phones decode is up to date, skipping"
  fi
  for set in "${scored_sets[@]}"; do
    if [ ! -f "$data/$set/phone_text" ]; then continue; fi  # word transcripts only: WER only
    if [ ! -f "$model/decode_$set/scores.yaml" ] || [ "$model/decode.yaml" -nt "$model/decode_$set/scores.yaml" ]; then
      asr --log-file "$exp/log/decode_${set}_$name.log" decode "$model" "$data/$set" "$model/decode_$set" --device "$device"
    fi
  done
}

if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ]; then
  log "Stage 7: CD LSTM training on the realigned targets"
  SECONDS=0
  init=()
  if [ "$cd_init" = true ]; then init=(--init-from "$ci"); fi
  if [ "$cd_init" = realigned ]; then init=(--init-from "${ci}_realigned"); fi
  for n in $cd_leaves; do
    asr --log-file "$exp/log/train_cd_$n.log" train "$data/$cd_train" "$data/dev" "$exp/cd_lstm_$n" \
      --lang "$lang_dir" --conf "$cd_conf" --tree "$exp/tree_$n/tree.json" \
      --ali-train "$cd_ali/ali_$cd_train" --ali-dev "$cd_ali/ali_dev" "${init[@]}" "${train_opts[@]}" \
      --device "$device" --ngpu "$ngpu"
  done
  record_time "$times" "7 train CD LSTM" "$SECONDS"
  if [ "$mmi" = true ]; then
    log "Stage 7: the CD LSTMs continued with MMI (lattice-free; the denominator the phone n-gram)"
    SECONDS=0
    for n in $cd_leaves; do
      decode_system "$exp/cd_lstm_$n" "$exp/tree_$n"  # its phone acoustic scale: the criterion's
      asr --log-file "$exp/log/train_mmi_$n.log" train-mmi "$exp/cd_lstm_$n" "$data/$cd_train" "$data/dev" \
        "$exp/cd_lstm_${n}_mmi" --phone-lm "$phone_lang" --ali-train "$cd_ali/ali_$cd_train" \
        --ali-dev "$cd_ali/ali_dev" --conf "$mmi_conf" --device "$device"
    done
    record_time "$times" "7 MMI" "$SECONDS"
  fi
fi

decode_words_system() {
  # decode_words_system <model dir> <word graph dir>: tune acwt and word penalty on $tune_words,
  # decode the scored sets.
  local model=$1 graph=$2 name
  name=$(basename "$model")
  if [ ! -f "$model/decode_words_$tune_words/scores.yaml" ] || ! cmp -s "$graph/HCLG.fst" "$model/graph_words/HCLG.fst" \
     || [ "$model/final.pt" -nt "$model/word_decode.yaml" ] || [ "$model/decode.yaml" -nt "$model/word_decode.yaml" ]; then
    asr --log-file "$exp/log/decode_words_${tune_words}_$name.log" decode-words "$model" "$data/$tune_words" \
      "$model/decode_words_$tune_words" --graph-dir "$graph" --tune --nj "$nj" --device "$device"
  else
    log "$name: $tune_words word decode is up to date, skipping"
  fi
  for set in "${scored_sets[@]}"; do
    if [ ! -f "$model/decode_words_$set/scores.yaml" ] || [ "$model/word_decode.yaml" -nt "$model/decode_words_$set/scores.yaml" ]; then
      asr --log-file "$exp/log/decode_words_${set}_$name.log" decode-words "$model" "$data/$set" \
        "$model/decode_words_$set" --nj "$nj" --device "$device"
    fi
  done
}

if [ "$stage" -le 8 ] && [ "$stop_stage" -ge 8 ]; then
  log "Stage 8: HMM decoding with the phone bigram (PER) and the word trigram (WER); scales tuned on $tune_words"
  SECONDS=0
  # up to $nj systems at a time, each in its own process (a system's own steps stay in order:
  # they update one bundle); the stage fails after all have ended if any failed
  pids=() failed=0
  for model in "${systems[@]}"; do
    case $(basename "$model") in
      cd_lstm_*) n=$(basename "$model"); n=${n#cd_lstm_}; n=${n%_mmi}  # its tree: tree_<N>
                 (if [ "$score_phones" = true ]; then decode_system "$model" "$exp/tree_$n"; fi
                  decode_words_system "$model" "$exp/tree_$n/graph_words") & ;;
      *) (if [ "$score_phones" = true ]; then decode_system "$model" "$phone_lang"; fi
          decode_words_system "$model" "$ci_word_graph") & ;;
    esac
    pids+=("$!")
    if [ "${#pids[@]}" -ge "$nj" ]; then
      wait "${pids[0]}" || failed=1
      pids=("${pids[@]:1}")
    fi
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  if [ "$failed" -ne 0 ]; then log "Stage 8: a system's decoding failed (its log is in $exp/log/)"; exit 1; fi
  record_time "$times" "8 decode" "$SECONDS"
fi

decode_rnn_system() {
  # decode_rnn_system <model dir>: install the phone LM, tune the RNN decoder on $tune_phones, decode
  # the scored sets that have phone transcripts.
  local model=$1 name
  name=$(basename "$model")
  if [ ! -f "$model/decode_rnn_$tune_phones/scores.yaml" ] || ! cmp -s "$exp/phone_lm/phone_lm.pt" "$model/phone_lm/phone_lm.pt" \
     || [ "$model/final.pt" -nt "$model/rnn_decode.yaml" ] || [ "$model/decode.yaml" -nt "$model/rnn_decode.yaml" ]; then
    asr --log-file "$exp/log/decode_rnn_${tune_phones}_$name.log" decode "$model" "$data/$tune_phones" \
      "$model/decode_rnn_$tune_phones" --decoder rnn --phone-lm "$exp/phone_lm" --tune --device "$device"
  else
    log "$name: $tune_phones RNN decode is up to date, skipping"
  fi
  for set in "${scored_sets[@]}"; do
    if [ ! -f "$data/$set/phone_text" ]; then continue; fi
    if [ ! -f "$model/decode_rnn_$set/scores.yaml" ] || [ "$model/rnn_decode.yaml" -nt "$model/decode_rnn_$set/scores.yaml" ]; then
      asr --log-file "$exp/log/decode_rnn_${set}_$name.log" decode "$model" "$data/$set" "$model/decode_rnn_$set" \
        --decoder rnn --device "$device"
    fi
  done
}

if [ "$stage" -le 9 ] && [ "$stop_stage" -ge 9 ] && [ "$rnn_decoder" = true ]; then
  log "Stage 9: the recurrent phone-sequence model; RNN phone-sequence decoding (PER), settings tuned on $tune_phones"
  SECONDS=0
  text_opts=()
  if [ "$phone_lm_text" = true ]; then
    # the first sentences of the word LM's text (the first N of a larger draw are the N-sentence
    # text): the phone LM's epochs stay the size they were chosen at when the word LM grows
    lm_head=$exp/phone_lm_text_${phone_lm_sentences:-20000}.txt
    if [ ! -f "$lm_head" ] || [ "$data/lang_words/lm_text.txt" -nt "$lm_head" ]; then
      head -n "${phone_lm_sentences:-20000}" "$data/lang_words/lm_text.txt" > "$lm_head.tmp" && mv "$lm_head.tmp" "$lm_head"
    fi
    text_opts=(--extra-text "$lm_head" --lexicon "$data/lang_words/lexicon.txt")
  fi
  # shellcheck disable=SC2086  # phone_lm_opts is a list of options
  phone_eval_dirs=()  # the test sets with phone transcripts (the phone LM's perplexity report)
  for dir in "${eval_dirs[@]}"; do if [ -f "$dir/phone_text" ]; then phone_eval_dirs+=("$dir"); fi; done
  asr --log-file "$exp/log/phone_lm.log" train-phone-lm "$data/train" "$data/dev" "$exp/phone_lm" \
    --lang "$data/lang" --conf "$phone_lm_conf" --eval "${phone_eval_dirs[@]}" --device "$device" \
    "${text_opts[@]}" $phone_lm_opts
  for model in "${systems[@]}"; do decode_rnn_system "$model"; done
  record_time "$times" "9 RNN phone decoder" "$SECONDS"
fi

if [ "$stage" -le 10 ] && [ "$stop_stage" -ge 10 ]; then
  log "Stage 10: results"
  asr --log-file "$exp/log/results.log" results "${systems[@]}" --stage-times "$times" --out "$exp/RESULTS.md"
  log "Reports: <system>/decode_test/per_report.txt, <system>/decode_words_test/wer_report.txt; table: $exp/RESULTS.md"
fi
