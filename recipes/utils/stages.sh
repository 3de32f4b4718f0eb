#!/usr/bin/env bash
# Shared helpers for recipe stages.

log() {
  # log "message": timestamped, with the calling script's name
  echo "$(date '+%Y-%m-%d %H:%M:%S') ($(basename "$0")) $*" >&2
}

abspath() {
  # abspath <path>: the path made absolute against the current directory. The
  # path need not exist (an --out not made yet); symlinks are kept as given.
  # Call it on user-given paths before the recipe cd's to the repository root.
  local p=$1
  case "$p" in
    /*) ;;
    ""|.) p=$PWD ;;
    *) while [[ "$p" == ./* ]]; do p=${p#./}; done
       p="$PWD/$p" ;;
  esac
  while [[ "$p" == */. ]]; do p=${p%/.}; done
  while [[ "$p" == ?*/ ]]; do p=${p%/}; done
  printf '%s\n' "$p"
}

record_time() {
  # record_time <times.tsv> <stage label> <seconds>: replace the stage's line.
  # A rerun that found the stage's outputs (under 2 s) keeps the time of the
  # run that did the work.
  local file=$1 label=$2 secs=$3
  mkdir -p "$(dirname "$file")"
  touch "$file"
  if [ "$secs" -lt 2 ] && grep -q -F "${label}"$'\t' "$file"; then return 0; fi
  { grep -v -F "${label}"$'\t' "$file" || true; printf '%s\t%s\n' "$label" "$secs"; } | sort -V > "$file.tmp"
  mv "$file.tmp" "$file"
}

lfr_suffix() {
  # lfr_suffix <frame_subsampling> [<lfr_topology>]: "" for 1, _lfrK for K > 1 with 1-state HMMs,
  # _lfrK_chain with Kaldi's chain topology (the exp and lang dirs' suffix); exits with a message
  # unless K is a whole number >= 1 and the topology 1state or chain
  case $1 in
    '' | *[!0-9]* | 0*) log "--frame-subsampling must be a whole number >= 1, not '$1'"; exit 1 ;;
  esac
  case ${2:-1state} in
    1state) [ "$1" = 1 ] || printf '_lfr%s\n' "$1" ;;
    chain) [ "$1" = 1 ] || printf '_lfr%s_chain\n' "$1" ;;
    *) log "--lfr-topology must be 1state or chain, not '$2'"; exit 1 ;;
  esac
}
