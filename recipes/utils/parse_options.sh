#!/usr/bin/env bash
# Parse --option value / --option=value pairs into shell variables that the
# calling script declared beforehand (dashes become underscores). An unknown
# option is an error; --help prints the script's usage (its $usage variable).
# When the script sets $option_names, only those variables are options.
# Source it after the defaults:  . "$root/recipes/utils/parse_options.sh"

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      echo "${usage:-$0: no usage text}"
      echo "Options (current values):"
      for v in ${option_names:-}; do echo "  --${v//_/-} ${!v}"; done
      exit 0 ;;
    --*=*)
      name="${1%%=*}"; value="${1#*=}"; shift ;;
    --*)
      name="$1"
      if [ $# -lt 2 ]; then echo "$0: option $name needs a value" >&2; exit 1; fi
      value="$2"; shift 2 ;;
    *)
      break ;;
  esac
  var="${name#--}"; var="${var//-/_}"
  # only the declared options (not any shell variable, like root or PATH)
  if ! [[ "$var" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || [ -z "${!var+set}" ] \
     || { [ -n "${option_names+set}" ] && [[ " $option_names " != *" $var "* ]]; }; then
    echo "$0: unknown option $name" >&2
    exit 1
  fi
  case "${!var}" in
    true|false)
      if [ "$value" != true ] && [ "$value" != false ]; then
        echo "$0: option $name must be true or false, got '$value'" >&2; exit 1
      fi ;;
  esac
  case "$var" in
    stage|stop_stage)
      if ! [[ "$value" =~ ^[0-9]+$ ]]; then echo "$0: option $name must be a number, got '$value'" >&2; exit 1; fi ;;
  esac
  printf -v "$var" '%s' "$value"
done
unset name value var
