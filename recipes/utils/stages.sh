#!/usr/bin/env bash
# Shared helpers for recipe stages.

log() {
  # log "message": timestamped, with the calling script's name
  echo "$(date '+%Y-%m-%d %H:%M:%S') ($(basename "$0")) $*" >&2
}

record_time() {
  # record_time <times.tsv> <stage label> <seconds>: replace the stage's line
  local file=$1 label=$2 secs=$3
  mkdir -p "$(dirname "$file")"
  touch "$file"
  { grep -v -F "${label}"$'\t' "$file" || true; printf '%s\t%s\n' "$label" "$secs"; } | sort -V > "$file.tmp"
  mv "$file.tmp" "$file"
}
