#!/bin/sh
# charrnn_cli.sh — runs examples/char-rnn end to end on a tiny synthetic corpus:
# summary, train (fit and custom loops, resume), sample, graph, the error
# messages and every subcommand's --help. One line per check; exits 1 if any
# check failed.
top=$(cd "${top_builddir:-.}" && pwd) || exit 1
bin="$top/examples/char-rnn"
[ -x "$bin" ] || { echo "FAIL: $bin not built"; exit 1; }
. "$(cd "$(dirname "$0")" && pwd)/lib.sh" || exit 1
enter_scratch charrnn_cli

lines() { [ "$(wc -l < "$1")" -eq "$2" ]; }

# About 8 KB of text over 25 characters (tests/lib.sh).
make_corpus 200 > corpus.txt
flags="--data corpus.txt --hidden 32 --embed 8 --batch 4 --seq 16 --steps-per-epoch 20"

# expect_error DESCRIPTION NEEDLE COMMAND...: the command fails with a one-line
# stderr message containing NEEDLE (and prints nothing on stdout).
expect_error() {
    d=$1 needle=$2
    shift 2
    "$@" > err.out 2> err.txt
    rc=$?
    if [ "$rc" -eq 0 ]; then fail "$d: exit status 0"
    elif ! lines err.txt 1; then fail "$d: stderr is not one line: $(cat err.txt)"
    elif ! has err.txt "$needle"; then fail "$d: '$needle' not in: $(cat err.txt)"
    else pass "$d (exit $rc: $(cat err.txt))"
    fi
}

# ------------------------------------------------------------------ summary
"$bin" summary --vocab 65 > summary.txt 2>&1
check "summary --vocab 65 exits 0" [ $? -eq 0 ]
check "summary prints Total params: 5,330,241" has summary.txt "Total params: 5,330,241"
check "summary lists the layer counts" sh -c 'grep -q "16,640" summary.txt && grep -q "5,246,976" summary.txt && grep -q "66,625" summary.txt'
"$bin" summary --data corpus.txt --embed 4 --hidden 8 > small.txt 2>&1
check "summary sizes the model from --data (V=25: 100 + 416 + 225)" has small.txt "Total params: 741"
"$bin" summary --vocab 65 --cell gru > gru.txt 2>&1
check "summary --cell gru: 3*(256*1024 + 1024*1024 + 2*1024) = 3,938,304" sh -c \
    'grep -q "^ gru (GRU) .*3,938,304" gru.txt && grep -q "Total params: 4,021,569" gru.txt'
"$bin" summary --vocab 65 --cell gru --reset-after false > gru0.txt 2>&1
check "summary --cell gru --reset-after false: one bias row, 3,935,232" grep -q "^ gru (GRU) .*3,935,232" gru0.txt
"$bin" summary --vocab 65 --cell rnn > rnn.txt 2>&1
check "summary --cell rnn: 256*1024 + 1024*1024 + 1024 = 1,311,744" grep -q "^ simple_rnn (SimpleRNN) .*1,311,744" rnn.txt
"$bin" summary --vocab 65 --layers 2 --dropout 0.2 > l2.txt 2>&1
check "summary --layers 2 --dropout 0.2: rows lstm, dropout, lstm_1 (input H: 8,392,704), dropout_1, dense" sh -c \
    '[ "$(grep -o "^ [a-z_0-9]* ([A-Za-z]*)" l2.txt | tr -d "\n")" = " embedding (Embedding) lstm (LSTM) dropout (Dropout) lstm_1 (LSTM) dropout_1 (Dropout) dense (Dense)" ] &&
     grep -q "^ lstm_1 (LSTM) .*8,392,704" l2.txt && grep -q "^ dropout_1 (Dropout) .* 0 *\$" l2.txt &&
     grep -q "Total params: 13,722,945" l2.txt'

# -------------------------------------------------------------------- train
"$bin" train $flags --epochs 2 --checkpoint-dir D > train.out 2> train.err
check "train (fit) exits 0" [ $? -eq 0 ]
check "train writes D/ckpt_1 and D/ckpt_2" sh -c '[ -s D/ckpt_1 ] && [ -s D/ckpt_2 ]'
check "train writes D/losses.csv with a header and 40 steps" sh -c \
    '[ "$(head -n 1 D/losses.csv)" = "epoch,step,loss,val_loss" ] && [ "$(grep -c "^[12],[0-9]*,[0-9.]*,\$" D/losses.csv)" -eq 40 ]'
check "train writes D/loss.svg" sh -c 'grep -q "<svg" D/loss.svg && grep -q "</svg>" D/loss.svg'
check "train prints Keras-style epochs" sh -c 'grep -q "^Epoch 2/2" train.out && grep -q "^20/20 " train.out'
check "train reports the corpus" has train.out "Corpus: "
check "the training loss falls" awk -F, 'NR > 1 && $3 != "" { n++; l[n] = $3 }
    END { for (i = 1; i <= 5; i++) { a += l[i]; b += l[n - 5 + i] }
          exit !(n == 40 && b / 5 < a / 5 - 0.05) }' D/losses.csv

"$bin" train $flags --epochs 2 --checkpoint-dir C --loop custom --csv custom.csv --plot custom.svg > custom.out 2>&1
check "train --loop custom exits 0" [ $? -eq 0 ]
check "train --loop custom prints train_step traces: 1" has custom.out "train_step traces: 1"
check "train --loop custom checkpoints the last epoch" [ -s C/ckpt_2 ]
check "train --loop custom prints the tutorial's lines (Batch 0 of each epoch, then its loss and time), no bar" sh -c \
    'grep -q "^Epoch 1 Batch 0 Loss [0-9.]*\$" custom.out && grep -q "^Epoch 2 Batch 0 Loss " custom.out &&
     [ "$(grep -c "^Epoch [12] Loss [0-9.]*\$" custom.out)" -eq 2 ] &&
     [ "$(grep -c "^Time taken for 1 epoch [0-9.]* sec\$" custom.out)" -eq 2 ] && ! grep -q "^Epoch 1/2" custom.out &&
     ! grep -q "^20/20" custom.out'
check "train --loop custom writes --csv and --plot" sh -c '[ -s custom.csv ] && [ -s custom.svg ]'

"$bin" train $flags --epochs 1 --checkpoint-dir R --csv resumed.csv --plot resumed.svg > r1.out 2>&1 &&
    "$bin" train $flags --epochs 2 --checkpoint-dir R --csv resumed.csv --plot resumed.svg --resume > r2.out 2>&1
check "train --resume exits 0" [ $? -eq 0 ]
check "train --resume says where it resumed" has r2.out "Resumed from R/ckpt_1 (1 epochs done, step 20,"
check "1 epoch + resume gives the same ckpt_2 bytes as 2 epochs" cmp -s R/ckpt_2 D/ckpt_2
check "the resumed CSV holds both runs" sh -c '[ "$(grep -c "^[12],[0-9]*,[0-9.]*,\$" resumed.csv)" -eq 40 ]'

# A GRU stack with every training option: trains, resumes exactly, samples
# (the checkpoint's config rebuilds the model), refuses a mismatch.
opts="--cell gru --layers 2 --dropout 0.1 --optimizer rmsprop --clip 1 --lr-schedule cosine --warmup-steps 5 --decay-steps 40"
"$bin" train $flags $opts --epochs 2 --checkpoint-dir G > g.out 2>&1
check "train $opts exits 0" [ $? -eq 0 ]
check "train prints the model and schedule" has g.out "Model: 2 x GRU(32, reset_after), dropout 0.1; rmsprop, clip 1; learning rate 0.001, cosine decay over 40 steps after 5 warm-up steps"
"$bin" train $flags $opts --epochs 1 --checkpoint-dir G1 > g1.out 2>&1 &&
    "$bin" train $flags $opts --epochs 2 --checkpoint-dir G1 --resume > g2.out 2>&1
check "GRU stack: 1 epoch + resume gives the same ckpt_2 bytes as 2 epochs" cmp -s G/ckpt_2 G1/ckpt_2
"$bin" sample --checkpoint-dir G --length 30 --seed 3 --start "the " > gs.txt 2>&1
check "sample rebuilds the GRU stack from its checkpoint" sh -c '[ "$(wc -c < gs.txt)" -eq 35 ]'
expect_error "train --resume with another --cell names it" "--cell gru, this run has --cell lstm" \
    "$bin" train $flags --epochs 3 --layers 2 --dropout 0.1 --optimizer rmsprop --clip 1 --lr-schedule cosine \
    --warmup-steps 5 --decay-steps 40 --checkpoint-dir G --resume --csv x.csv --plot x.svg
expect_error "train --resume with another --layers names it" "--layers" \
    "$bin" train $flags $opts --layers 3 --epochs 3 --checkpoint-dir G --resume --csv x.csv --plot x.svg
expect_error "train --resume with another --dropout names it" "--dropout" \
    "$bin" train $flags $opts --dropout 0.2 --epochs 3 --checkpoint-dir G --resume --csv x.csv --plot x.svg
expect_error "train --resume with another --optimizer names it" "--optimizer" \
    "$bin" train $flags $opts --optimizer adam --epochs 3 --checkpoint-dir G --resume --csv x.csv --plot x.svg

# ------------------------------------------------------------------- sample
"$bin" sample --checkpoint-dir D --length 50 --seed 3 --start "the " > s1.txt 2>&1
r1=$?
"$bin" sample --checkpoint-dir D --length 50 --seed 3 --start "the " > s2.txt 2>&1
r2=$?
"$bin" sample --checkpoint-dir D --length 50 --seed 4 --start "the " > s3.txt 2>&1
check "sample exits 0" [ "$r1$r2" = 00 ]
check "sample with one seed repeats exactly" cmp -s s1.txt s2.txt
check "sample with another seed differs" sh -c '! cmp -s s1.txt s3.txt'
check "sample starts with the start text" [ "$(head -n 1 s1.txt | cut -c 1-4)" = "the " ]
if [ -w /dev/full ]; then      # a write error is an error, not exit 0 with nothing written
    "$bin" sample --checkpoint-dir D --length 50 --seed 3 > /dev/full 2> full.err
    rc=$?
    check "sample into a full device fails (exit $rc: $(cat full.err))" sh -c '[ "$1" -ne 0 ] && grep -q "cannot write the sample" full.err' sh "$rc"
fi
check "sample prints start + 50 chars + newline" [ "$(wc -c < s1.txt)" -eq 55 ]
"$bin" sample --checkpoint-dir D --length 30 --seed 1 --start "ROMEO:" --temperature 0 > t1.txt 2>&1
"$bin" sample --checkpoint D/ckpt_2 --length 30 --seed 2 --start "ROMEO:" --temperature 0 > t2.txt 2>&1
check "sample --temperature 0 ignores the seed; --checkpoint FILE works" cmp -s t1.txt t2.txt

# -------------------------------------------------------------------- graph
"$bin" graph --vocab 10 --embed 4 --hidden 8 --batch 2 --seq 3 --dot g.dot > graph.out 2>&1
check "graph --dot writes a DOT file" sh -c 'grep -q digraph g.dot'

# ------------------------------------------------------------------- errors
expect_error "unknown command" "'frob'" "$bin" frob
"$bin" > err.out 2> err.txt
rc=$?
check "no command: exit 2 with the usage on stderr" sh -c '[ "$1" -eq 2 ] && grep -q "^usage: char-rnn COMMAND" err.txt' sh "$rc"
expect_error "unknown flag" "--nope" "$bin" train --nope
expect_error "--epochs abc" "--epochs" "$bin" train --epochs abc
expect_error "--epochs 0 (out of range)" "--epochs" "$bin" train --epochs 0
expect_error "--batching foo" "--batching" "$bin" train --batching foo
expect_error "--seq without a value" "--seq" "$bin" train --seq
expect_error "missing corpus" "--data" "$bin" train --data missing.txt --checkpoint-dir M
check "a missing corpus creates no checkpoint dir" [ ! -e M ]
expect_error "summary without a corpus" "--data" "$bin" summary --data missing.txt
expect_error "graph without --dot" "--dot" "$bin" graph --vocab 10
expect_error "--cell foo" "--cell" "$bin" train --cell foo
expect_error "--layers 0 (out of range)" "--layers" "$bin" train --layers 0
expect_error "--dropout 1 (out of range)" "--dropout" "$bin" train --dropout 1
expect_error "--lr-schedule linear" "--lr-schedule" "$bin" train --lr-schedule linear
expect_error "--momentum without --optimizer sgd" "--momentum" "$bin" train $flags --momentum 0.9 --checkpoint-dir MM
check "a refused --momentum creates no checkpoint dir" [ ! -e MM ]
mkdir Empty
expect_error "sample from an empty checkpoint dir" "train first" "$bin" sample --checkpoint-dir Empty
expect_error "sample from a missing checkpoint dir" "train first" "$bin" sample --checkpoint-dir Nowhere
expect_error "sample --start with a char outside the vocabulary" "'Z'" "$bin" sample --checkpoint-dir D --start "Zed"
check "a bad --start prints nothing on stdout" [ ! -s err.out ]
expect_error "train --resume with another --hidden" "hidden" "$bin" train $flags --epochs 3 --hidden 16 --checkpoint-dir R --resume --csv x.csv --plot x.svg

mkdir X
cp D/ckpt_2 X/ckpt_2
size=$(wc -c < X/ckpt_2)
off=$((size / 2))
byte=$(od -An -tu1 -j "$off" -N1 X/ckpt_2 | tr -d ' \n')
printf "\\$(printf '%03o' $(((byte + 1) % 256)))" | dd of=X/ckpt_2 bs=1 seek="$off" conv=notrunc 2>/dev/null
check "the byte at $off was flipped" sh -c '! cmp -s D/ckpt_2 X/ckpt_2'
expect_error "sample from a corrupted checkpoint" "checksum" "$bin" sample --checkpoint-dir X
expect_error "train --resume from a corrupted checkpoint" "checksum" "$bin" train $flags --epochs 3 --checkpoint-dir X --resume --csv x.csv --plot x.svg

# --------------------------------------------------------------------- help
"$bin" --help > help.txt 2>&1
check "--help exits 0" [ $? -eq 0 ]
check "--help lists the commands" sh -c 'grep -q "^  train" help.txt && grep -q "^  sample" help.txt && grep -q "^  summary" help.txt && grep -q "^  graph" help.txt'

# help_lists COMMAND FLAG...: --help exits 0 and lists at least these flags;
# every flag it lists (but --help) shows "(default: ...)".
help_lists() {
    cmd=$1
    shift
    "$bin" "$cmd" --help > help.txt 2> help.err
    rc=$?
    problems=""
    [ "$rc" -eq 0 ] || problems="$problems exit $rc;"
    [ -s help.err ] && problems="$problems stderr not empty;"
    for f in "$@"; do
        grep -E -e "^  --$f( [A-Z])? .*\(default: [^)]*\)\$" help.txt >/dev/null || problems="$problems --$f;"
    done
    bare=$(grep '^  --' help.txt | grep -v '^  --help ' | grep -v '(default: [^)]*)$' | sed 's/^  \(--[^ ]*\).*/\1/')
    [ -z "$bare" ] && [ "$(grep -c '^  --' help.txt)" -gt "$#" ] || problems="$problems no default: $bare;"
    grep -q '^  --help ' help.txt || problems="$problems no --help;"
    if [ -z "$problems" ]; then pass "$cmd --help lists its flags with defaults ($(($(grep -c '^  --' help.txt) - 1)) flags)"
    else fail "$cmd --help:$problems"
    fi
}
help_lists train data epochs batch seq embed hidden cell layers dropout reset-after optimizer learning-rate \
    momentum clip lr-schedule warmup-steps decay-steps decay-rate seed batching shuffle-buffer val \
    steps-per-epoch checkpoint-dir checkpoint-every resume loop csv plot threads
help_lists sample checkpoint-dir checkpoint length start temperature seed state threads
help_lists evaluate checkpoint-dir checkpoint data warm threads precision
help_lists summary data vocab embed hidden cell layers dropout reset-after batch
help_lists graph dot what data vocab embed hidden cell layers dropout reset-after batch seq
"$bin" train --help > help.txt 2>&1
check "train --help shows the tutorial's defaults" sh -c 'grep -q "(default: 10)\$" help.txt && grep -q "(default: 1024)\$" help.txt && grep -q "(default: shuffle)\$" help.txt && grep -q "(default: fit)\$" help.txt'
check "train --help shows the defaults of the new options" sh -c 'grep -q "^  --cell C .*(default: lstm)\$" help.txt &&
    grep -q "^  --layers N .*(default: 1)\$" help.txt && grep -q "^  --optimizer C .*(default: adam)\$" help.txt &&
    grep -q "^  --lr-schedule C .*(default: constant)\$" help.txt && grep -q "^  --decay-steps N .*(default: 1000)\$" help.txt &&
    grep -q "^  --decay-rate X .*(default: 0.5)\$" help.txt && grep -q "^  --clip X .*(default: 0)\$" help.txt'

# ----------------------------------------------------------------- evaluate
"$bin" train $flags --epochs 2 --val 0.1 --checkpoint-dir V > v.out 2>&1
# the val_loss column of epoch E's row in V/losses.csv, rounded as evaluate prints it
logged_val() { awk -F, -v e="$1" '$1 == e && $4 != "" { v = $4 } END { printf "%.4f", v }' V/losses.csv; }
"$bin" evaluate --checkpoint-dir V --data corpus.txt > ev.out 2>&1
check "evaluate prints the val_loss training logged after the last epoch ($(logged_val 2))" sh -c \
    "[ \$? -eq 0 ] && grep -q '^val_loss: $(logged_val 2) (11 batches of 4 x 16, the corpus.s last 10%, from a zero state)\$' ev.out"
"$bin" evaluate --checkpoint V/ckpt_1 --data corpus.txt > ev1.out 2>&1
check "evaluate --checkpoint V/ckpt_1 prints epoch 1's val_loss ($(logged_val 1))" grep -q "^val_loss: $(logged_val 1) " ev1.out
"$bin" evaluate --checkpoint-dir V --data corpus.txt --warm > evw.out 2>&1
check "evaluate --warm scores a second pass from the carried state (another loss)" sh -c \
    "grep -q '^val_loss: [0-9.]* .*second pass' evw.out && ! grep -q '^val_loss: $(logged_val 2) ' evw.out"
make_corpus 150 > other.txt
expect_error "evaluate on another corpus" "is not the corpus this checkpoint was trained on" \
    "$bin" evaluate --checkpoint-dir V --data other.txt
expect_error "evaluate of a run trained without --val" "trained without --val" \
    "$bin" evaluate --checkpoint D/ckpt_1 --data corpus.txt
expect_error "evaluate without a checkpoint" "no checkpoint" "$bin" evaluate --checkpoint-dir nowhere --data corpus.txt
expect_error "train with a validation split shorter than one batch" "validation split of 7 chars is too small for one 4 x 16 batch" \
    "$bin" train $flags --val 0.001 --checkpoint-dir VS

# ---------------------------------------------------------------- precision
"$bin" train $flags --epochs 1 --checkpoint-dir P32 > p32.out 2>&1
"$bin" train $flags --epochs 1 --checkpoint-dir P16 --precision bf16 > p16.out 2>&1
p16_rc=$?
if [ $p16_rc -eq 0 ]; then
    check "train --precision bf16: a loss near fp32's, not the same bits" awk -F, '
        FNR == 1 { f++; next } $3 != "" { l[f] = $3 }
        END { d = l[1] - l[2]; if (d < 0) d = -d; exit !(d > 0 && d < 0.05) }' P32/losses.csv P16/losses.csv
else
    check "train --precision bf16 on a CPU without AVX512_BF16 names the missing feature" has p16.out "bf16 precision needs a CPU with"
fi
"$bin" train $flags --epochs 1 --checkpoint-dir PX --precision fp16 > px.out 2>&1
check "train --precision fp16 is refused naming the choices" sh -c "[ $? -eq 2 ] && grep -q fp32 px.out && grep -q bf16 px.out"

# ------------------------------------------------------------------- export
"$bin" export --checkpoint-dir D sampler.dfg > export.out 2>&1
check "export writes the sampling step as a saved graph" sh -c '[ -s sampler.dfg ] && grep -q "wrote sampler.dfg" export.out'
"$top/tools/dagflow-run" sampler.dfg --sample --start "the k" --length 80 --seed 5 > run_sample.txt 2> run_sample.err
"$bin" sample --checkpoint-dir D --start "the k" --length 80 --seed 5 > live_sample.txt 2> live_sample.err
check "dagflow-run samples the exported graph as char-rnn sample does (same seed, same text)" \
    sh -c '[ -s run_sample.txt ] && cmp -s run_sample.txt live_sample.txt'
"$bin" export --checkpoint-dir D --state zero sampler0.dfg > export0.out 2>&1
"$top/tools/dagflow-run" sampler0.dfg --sample --start "the k" --length 80 --seed 5 > run_sample0.txt 2> run_sample0.err
"$bin" sample --checkpoint-dir D --state zero --start "the k" --length 80 --seed 5 > live_sample0.txt 2> live_sample0.err
check "sample --state zero and its export start from a zero state, not the trained one (other text)" \
    sh -c '[ -s run_sample0.txt ] && cmp -s run_sample0.txt live_sample0.txt && ! cmp -s live_sample0.txt live_sample.txt'
expect_error "sample --state with an unknown choice" "trained" "$bin" sample --checkpoint-dir D --state warm
"$bin" export --checkpoint-dir no_such_dir out.dfg > export_bad.out 2>&1
export_rc=$?
check "export without a checkpoint fails with a message" sh -c "[ $export_rc -ne 0 ] && ! [ -e out.dfg ] && [ -s export_bad.out ]"

echo "$((checks - failed)) of $checks checks passed"
[ "$failed" -eq 0 ]
