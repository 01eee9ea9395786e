#!/bin/sh
# chargpt_cli.sh — runs examples/char-gpt end to end on a tiny synthetic
# corpus: summary, train (validation, checkpoints, resume, a refused model
# change), sample (reproducible, checked writes), and the error messages. One
# line per check; exits 1 if any check failed.
top=$(cd "${top_builddir:-.}" && pwd) || exit 1
bin="$top/examples/char-gpt"
[ -x "$bin" ] || { echo "FAIL: $bin not built"; exit 1; }
here=$(cd "$(dirname "$0")" && pwd) || exit 1
. "$here/lib.sh" || exit 1
enter_scratch chargpt_cli


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
check "resume continues from the last checkpoint, applying and reporting the new --iters" \
    has resume.txt "Resumed from run/ckpt_3 (3 epochs done, step 60; now --iters 80 (was 60))"
check "resume runs the remaining epoch" [ -f run/ckpt_4 ] && has resume.txt "80 steps"
resume="--iters 100 --eval-interval 20 --eval-iters 4 --lr 3e-3 --checkpoint-dir run --resume"
expect_error "a resume with another --n-layer is refused naming it" "trained with --n-layer 2, this run has --n-layer 3" \
    "$bin" train --data corpus.txt --n-layer 3 --n-head 2 --n-embd 16 --block 16 --batch 4 $resume
expect_error "a resume with another --n-head is refused naming it" "--n-head 2, this run has --n-head 4" \
    "$bin" train --data corpus.txt --n-layer 2 --n-head 4 --n-embd 16 --block 16 --batch 4 $resume
expect_error "a resume with another --n-embd is refused naming it" "--n-embd 16, this run has --n-embd 32" \
    "$bin" train --data corpus.txt --n-layer 2 --n-head 2 --n-embd 32 --block 16 --batch 4 $resume
expect_error "a resume with another --block is refused naming it" "--block 16, this run has --block 8" \
    "$bin" train --data corpus.txt --n-layer 2 --n-head 2 --n-embd 16 --block 8 --batch 4 $resume
expect_error "a resume with another --batch (data order) is refused naming it" "--batch 4, this run has --batch 5" \
    "$bin" train $model --batch 5 $resume
expect_error "a resume with another --seed (data order) is refused naming it" "--seed 1337, this run has --seed 2" \
    "$bin" train $model --seed 2 $resume
expect_error "a resume with another --dropout is refused naming it" "--dropout 0, this run has --dropout 0.1" \
    "$bin" train $model --dropout 0.1 $resume
expect_error "a resume with another --eval-interval (epoch length) is refused naming it" "--eval-interval 20, this run has --eval-interval 10" \
    "$bin" train $model --iters 100 --eval-interval 10 --eval-iters 4 --checkpoint-dir run --resume
head -c 7000 corpus.txt > other.txt
expect_error "a resume on another corpus is refused naming --data" "trained on another corpus (--data" \
    "$bin" train $model --data other.txt $resume
sed 's/king/gink/' corpus.txt > same_chars_other_text.txt
expect_error "a resume on another text of the same characters is refused too" "another corpus" \
    "$bin" train $model --data same_chars_other_text.txt $resume
check "the refused resumes wrote nothing" sh -c '[ ! -f run/ckpt_5 ] && [ "$(grep -c "^[0-9]*,[0-9]*,[0-9.]*,$" run/losses.csv)" -eq 80 ]'
cp -r run changed
"$bin" train $model --iters 100 --eval-interval 20 --eval-iters 2 --lr 2e-3 --min-lr 1e-4 --weight-decay 0.05 \
    --checkpoint-dir changed --resume > changed.txt 2>&1
check "a resume applies a changed --iters, --eval-iters, --lr and --weight-decay and says so" \
    sh -c 'grep -q "now --iters 100 (was 80), --eval-iters 2 (was 4), --lr 0.002 (was 0.003), --weight-decay 0.05 (was 0.1)" changed.txt && [ -f changed/ckpt_5 ] && grep -q "100 steps" changed.txt'
"$bin" train $model --iters 120 --eval-interval 20 --eval-iters 2 --lr 2e-3 --min-lr 1e-4 --weight-decay 0.05 \
    --checkpoint-dir changed --resume > changed2.txt 2>&1
check "the changed settings are saved: the next resume reports only --iters" \
    sh -c 'grep -q "step 100; now --iters 120 (was 100))" changed2.txt'
fixture="$here/data/chargpt_format1.ckpt"   # written by char-gpt at commit 9b8394a
old="--data corpus.txt --n-layer 1 --n-head 1 --n-embd 4 --block 4 --batch 2 --eval-interval 1 --eval-iters 1"
mkdir old && cp "$fixture" old/ckpt_2
expect_error "a checkpoint of the first format (the model's shape alone) is refused on resume, saying why" \
    "written by an older char-gpt (checkpoint format 1, this one resumes 2)" \
    "$bin" train $old --iters 4 --checkpoint-dir old --resume
check "an old checkpoint still samples" sh -c "'$bin' sample --checkpoint-dir old --length 10 --start 'the ' > old.txt 2>/dev/null && [ \$(wc -c < old.txt) -ge 15 ]"

"$bin" sample --checkpoint-dir run --length 50 --seed 5 > s1.txt 2> /dev/null
"$bin" sample --checkpoint-dir run --length 50 --seed 5 > s2.txt 2> /dev/null
check "sample prints the start and 50 characters" [ "$(tr -d '\n' < s1.txt | wc -c)" -ge 50 ]
check "sample is reproducible with a seed" cmp -s s1.txt s2.txt
"$bin" sample --checkpoint-dir run --length 50 --seed 6 > s3.txt 2> /dev/null
check "another seed gives other text" sh -c '! cmp -s s1.txt s3.txt'
"$bin" sample --checkpoint-dir run --length 50 --temperature 0 > greedy.txt 2> /dev/null
"$bin" sample --checkpoint-dir run --length 50 --top-k 1 --seed 9 > top1.txt 2> /dev/null
check "--top-k 1 draws the likeliest, as --temperature 0" cmp -s greedy.txt top1.txt
"$bin" sample --checkpoint-dir run --length 50 --top-k 3 --seed 5 > top3.txt 2> /dev/null
check "--top-k 3 changes the text" sh -c '! cmp -s s1.txt top3.txt'
"$bin" sample --checkpoint-dir run --length 60 --seed 5 --keep 15 > crop1.txt 2> /dev/null
"$bin" sample --checkpoint-dir run --length 60 --seed 5 --keep 15 > crop2.txt 2> /dev/null
check "sampling past the block with nanoGPT's crop (--keep 15) is reproducible" \
    sh -c '[ "$(tr -d "\n" < crop1.txt | wc -c)" -ge 60 ] && cmp -s crop1.txt crop2.txt'
"$bin" sample --checkpoint-dir run --length 30 --seed 5 --start "the " > start.txt 2> /dev/null
check "--start is printed first" sh -c 'head -c 4 start.txt | grep -q "^the "'
expect_error "--keep must be below the block" "--keep must be in [0, --block)" \
    "$bin" sample --checkpoint-dir run --keep 16
if [ -w /dev/full ]; then
    if "$bin" sample --checkpoint-dir run --length 20 > /dev/full 2> err.txt; then
        fail "a failed write of the sample is an error (exit 0)"
    elif has err.txt "cannot write"; then
        pass "a failed write of the sample is an error"
    else
        fail "a failed write of the sample is an error: $(cat err.txt)"
    fi
fi

# export: the KV-cache step as a saved graph that dagflow-run samples as char-gpt does
run_tool="$top/tools/dagflow-run"
"$bin" export --checkpoint-dir run --keep 5 step.dfg > export.txt 2>&1
check "export writes the file" sh -c '[ -s step.dfg ] && grep -q "wrote step.dfg" export.txt'
"$run_tool" step.dfg > sig.txt 2>&1
check "dagflow-run shows the (id, position) step and that it samples" \
    sh -c 'grep -q "input 1 .*: i32 (1)" sig.txt && grep -q "a char model (vocabulary 25)" sig.txt'
for k in 0 3; do
    "$bin" sample --checkpoint-dir run --keep 5 --rebuild replay --length 100 --seed 4 --top-k $k --start "the " > live$k.txt 2> live$k.err
    "$run_tool" step.dfg --sample --length 100 --seed 4 --top-k $k --start "the " > saved$k.txt 2> saved$k.err
    check "dagflow-run --sample (top-k $k) writes char-gpt sample's text, 100 chars past a 16 block" \
        sh -c "[ \$(wc -c < live$k.txt) -ge 104 ] && cmp -s live$k.txt saved$k.txt"
done
check "sample --rebuild replay replays (the text alone cannot tell: prefill agrees up to rounding)" \
    has live0.err "keep 5, the cache refilled by replaying the kept characters"
"$run_tool" step.dfg --sample --length 100 --seed 5 --start "the " > saved5.txt 2>&1
check "dagflow-run --sample: another seed, other text" sh -c '! cmp -s saved0.txt saved5.txt'
"$bin" export --checkpoint-dir old old.dfg > /dev/null 2>&1
"$bin" sample --checkpoint-dir old --rebuild replay --length 20 --seed 4 --start "the " > oldlive.txt 2> /dev/null
"$run_tool" old.dfg --sample --length 20 --seed 4 --start "the " > oldsaved.txt 2>&1
check "an old-format checkpoint exports too and samples alike (block 4, keep 2: a crop every 2 chars)" cmp -s oldlive.txt oldsaved.txt
expect_error "export without OUT says so" "output file is required" "$bin" export --checkpoint-dir run
expect_error "export --keep must be below the block" "--keep must be in [0, --block)" "$bin" export --checkpoint-dir run --keep 16 x.dfg
expect_error "export without a checkpoint says to train" "train first" "$bin" export --checkpoint-dir empty x.dfg
check "export --help lists its flags" sh -c "'$bin' export --help | grep -q -- '--keep'"

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
check "--help says attention-matrix dropout is not applied" sh -c "'$bin' train --help | grep -q 'not on the attention'"

"$bin" train $model --iters 20 --eval-interval 20 --eval-iters 2 --dropout 0.2 --checkpoint-dir drop > drop.txt 2>&1
check "train with --dropout runs" has drop.txt "20 steps"
expect_error "--dropout 1 is refused" "--dropout" "$bin" train $model --dropout 1 --checkpoint-dir drop2

"$bin" bench $model --iters 3 --warmup 1 --length 20 > bench.json 2> bench.err
check "bench prints one JSON line of timings" sh -c 'grep -q "\"ms_per_iter\": [0-9]" bench.json && grep -q "\"ms_per_char\": [0-9]" bench.json && grep -q "\"peak_rss_mb\"" bench.json'
mkdir gr
"$bin" grads $model --out gr > /dev/null 2>&1
check "grads writes the manifest and one file per tensor" \
    sh -c '[ "$(wc -l < gr/manifest.txt)" -eq $(ls gr/*.bin | wc -l) ] && grep -q "^grad:h_1/mlp/c_proj/kernel" gr/manifest.txt'
expect_error "grads into a missing directory is an error" "does --out exist" "$bin" grads $model --out nowhere

echo "chargpt_cli: $checks checks, $failed failed"
[ $failed -eq 0 ]
