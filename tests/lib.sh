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
