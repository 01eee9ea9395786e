# lib.sh — what the script tests share (sourced, not run): one line per
# check, counted, and a reproducible synthetic corpus.
failed=0
checks=0
pass() { checks=$((checks + 1)); echo "ok   $1"; }
fail() { checks=$((checks + 1)); failed=$((failed + 1)); echo "FAIL $1"; }
# check DESCRIPTION COMMAND...: passes when the command succeeds.
check() { d=$1; shift; if "$@"; then pass "$d"; else fail "$d"; fi; }
# has FILE TEXT: FILE contains TEXT.
has() { grep -F -e "$2" "$1" >/dev/null 2>&1; }

# enter_scratch NAME: make a temporary directory, cd into it and remove it on
# exit; a background process whose id is in $pid is killed first, and INT or
# TERM end the script (so the EXIT trap runs). Sets $tmp.
enter_scratch() {
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX") || exit 1
    pid=""
    trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
    trap 'exit 1' INT TERM
    cd "$tmp" || exit 1
}

# make_corpus LINES: lines of eight words (25 distinct chars, about 40 bytes a
# line) drawn by a small LCG, the same on every awk (no rand()).
make_corpus() {
    awk -v lines="$1" 'BEGIN {
        split("the king shall speak to ROMEO: and my lord, we", w, " ")
        s = 7
        for (l = 0; l < lines; l++) {
            line = ""
            for (k = 0; k < 8; k++) { s = (s * 75 + 74) % 65537; line = line (k ? " " : "") w[1 + s % 10] }
            print line
        }
    }'
}

# wait_for_text FILE OFFSET TEXT PID: wait until FILE holds TEXT after its first
# OFFSET bytes (at most 120 s), so that a signal meant for a running step is not
# sent to a process still starting up on a loaded machine; fails when PID ends.
wait_for_text() {
    _i=0
    while [ $_i -lt 1200 ]; do
        tail -c +"$(($2 + 1))" "$1" 2>/dev/null | grep -q -F -e "$3" && return 0
        kill -0 "$4" 2>/dev/null || return 1
        sleep 0.1
        _i=$((_i + 1))
    done
    return 1
}

# kill_delays ROUNDS SEED SALT LOW SPAN: ROUNDS delays in seconds, LOW..LOW+SPAN.
kill_delays() {
    awk -v n="$1" -v s="$2" -v salt="$3" -v lo="$4" -v span="$5" \
        'BEGIN { srand(s + salt); for (i = 0; i < n; i++) printf "%.3f\n", lo + span * rand() }'
}
