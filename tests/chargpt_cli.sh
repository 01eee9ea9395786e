#!/bin/sh
# chargpt_cli.sh — runs examples/char-gpt end to end on a tiny synthetic
# corpus: summary, train (validation, checkpoints, resume, a refused model
# change), sample (reproducible, checked writes), and the error messages. One
# line per check; exits 1 if any check failed.
top=$(cd "${top_builddir:-.}" && pwd) || exit 1
bin="$top/examples/char-gpt"
[ -x "$bin" ] || { echo "FAIL: $bin not built"; exit 1; }
. "$(cd "$(dirname "$0")" && pwd)/lib.sh" || exit 1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/chargpt_cli.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM
cd "$tmp" || exit 1


# About 8 KB of text over 25 characters (tests/lib.sh).
make_corpus 200 > corpus.txt
model="--data corpus.txt --n-layer 2 --n-head 2 --n-embd 16 --block 16 --batch 4"

# expect_error DESCRIPTION NEEDLE COMMAND...: fails with a stderr line holding NEEDLE.
expect_error() {
    d=$1 needle=$2
    shift 2
    if "$@" > out.txt 2> err.txt; then fail "$d (exit 0)"; return; fi
    if has err.txt "$needle"; then pass "$d"; else fail "$d: $(cat err.txt)"; fi
}

# summary: wte 25*16, wpe 16*16, 2 blocks of 12*16^2 + 13*16, ln_f 2*16, tied head 0
"$bin" summary $model > summary.txt 2>&1
check "summary counts the tied matrix once" has summary.txt "Total params: 7,248"
check "summary lists the blocks" has summary.txt "h_1 (Block)"

"$bin" train $model --iters 60 --eval-interval 20 --eval-iters 4 --lr 3e-3 --checkpoint-dir run > train.txt 2>&1
rc=$?
check "train exits 0" [ $rc -eq 0 ]
check "train writes a checkpoint per epoch" [ -f run/ckpt_1 ] && [ -f run/ckpt_3 ]
check "train logs the steps" [ "$(grep -c '^[0-9]*,[0-9]*,[0-9.]*,$' run/losses.csv)" -eq 60 ]
first=$(sed -n 's/^1,1,\([0-9.]*\),$/\1/p' run/losses.csv)
last=$(sed -n 's/^3,60,\([0-9.]*\),$/\1/p' run/losses.csv)
check "the loss falls (step 1: $first, step 60: $last)" awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.3) }'
check "validation runs after each epoch" [ "$(grep -c '^val_loss' train.txt)" -eq 3 ]
check "one trace each for training and evaluation" has train.txt "traces: train 1, eval 1"

"$bin" train $model --iters 80 --eval-interval 20 --eval-iters 4 --lr 3e-3 --checkpoint-dir run --resume > resume.txt 2>&1
check "resume continues from the last checkpoint" has resume.txt "Resumed from run/ckpt_3 (3 epochs done, step 60)"
check "resume runs the remaining epoch" [ -f run/ckpt_4 ] && has resume.txt "80 steps"
expect_error "a resume with another model is refused" "differs from this run's" \
    "$bin" train --data corpus.txt --n-layer 3 --n-head 2 --n-embd 16 --block 16 --batch 4 --iters 100 --eval-interval 20 \
    --checkpoint-dir run --resume

"$bin" sample --checkpoint-dir run --length 50 --seed 5 > s1.txt 2> /dev/null
"$bin" sample --checkpoint-dir run --length 50 --seed 5 > s2.txt 2> /dev/null
check "sample prints the start and 50 characters" [ "$(tr -d '\n' < s1.txt | wc -c)" -ge 50 ]
check "sample is reproducible with a seed" cmp -s s1.txt s2.txt
"$bin" sample --checkpoint-dir run --length 50 --seed 6 > s3.txt 2> /dev/null
check "another seed gives other text" sh -c '! cmp -s s1.txt s3.txt'
if [ -w /dev/full ]; then
    if "$bin" sample --checkpoint-dir run --length 20 > /dev/full 2> err.txt; then
        fail "a failed write of the sample is an error (exit 0)"
    elif has err.txt "cannot write"; then
        pass "a failed write of the sample is an error"
    else
        fail "a failed write of the sample is an error: $(cat err.txt)"
    fi
fi

expect_error "--n-embd must be a multiple of --n-head" "multiple of --n-head" "$bin" summary --data corpus.txt --n-embd 10 --n-head 4
expect_error "--iters must be a multiple of --eval-interval" "multiple of --eval-interval" "$bin" train $model --iters 30 --eval-interval 20
expect_error "a missing corpus says where to get it" "--data PATH" "$bin" summary --data nowhere.txt
expect_error "sampling without a checkpoint says to train" "train first" "$bin" sample --checkpoint-dir empty
expect_error "an unknown flag is named" "unknown flag '--bogus'" "$bin" train --bogus
expect_error "a new run into a directory of another run is refused" "already holds a run" \
    "$bin" train $model --iters 20 --eval-interval 20 --checkpoint-dir run
"$bin" train $model --iters 20 --eval-interval 20 --eval-iters 2 --checkpoint-dir run --overwrite > over.txt 2>&1
check "--overwrite replaces it" sh -c '[ -f run/ckpt_1 ] && [ ! -f run/ckpt_4 ]'
check "--help lists the flags" sh -c "'$bin' train --help | grep -q -- '--eval-interval'"

echo "chargpt_cli: $checks checks, $failed failed"
[ $failed -eq 0 ]
