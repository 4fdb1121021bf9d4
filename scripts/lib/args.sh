# Flag parsing shared by the perf scripts (scripts/perf-compare.sh,
# perf-memory.sh, perf-store.sh, perf-tls.sh). Source it.

# parse_flags HELP_LINES FLAG=VAR... -- "$@": sets the shell variable VAR from
# `--FLAG VALUE` for each FLAG=VAR pair (later flags win, so a VAR that the
# environment set is only a default). -h/--help prints lines HELP_LINES (a sed
# range such as 2,12) of the calling script without their "# " and exits 0;
# an unknown flag or a flag without its value exits 2 with a message.
parse_flags() {
  local help_lines="$1" pair
  shift
  local -A var_of=()
  while [[ $# -gt 0 && "$1" != "--" ]]; do
    pair="$1"
    var_of["--${pair%%=*}"]="${pair#*=}"
    shift
  done
  [[ $# -gt 0 ]] && shift
  while [[ $# -gt 0 ]]; do
    case "$1" in
      -h|--help) sed -n "${help_lines}p" "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    esac
    if [[ -z "${var_of[$1]:-}" ]]; then
      echo "$(basename "$0"): unknown argument '$1' (see --help)" >&2
      exit 2
    fi
    if [[ $# -lt 2 ]]; then
      echo "$(basename "$0"): $1 needs a value (see --help)" >&2
      exit 2
    fi
    printf -v "${var_of[$1]}" '%s' "$2"
    shift 2
  done
}
