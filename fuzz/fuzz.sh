#!/bin/sh
# fuzz.sh — builds and runs the libFuzzer harnesses (what `make fuzz` runs).
#
#   fuzz.sh run   SRCDIR BUILDDIR   build, then run each harness FUZZ_SECONDS
#   fuzz.sh build SRCDIR BUILDDIR   build only (BUILDDIR/fuzz/bin/)
#   fuzz.sh seeds SRCDIR BUILDDIR   rewrite the seed corpora in SRCDIR/fuzz/corpus/
#                                   (saved/: the example programs' exports, from
#                                   BUILDDIR's char-rnn and char-gpt; the other
#                                   saved seeds come from tests/test_saved)
#
# Environment: FUZZ_SECONDS (60), FUZZ_MIN_RUNS ("saved=1000000": a listed
# harness with fewer executions in FUZZ_SECONDS continues from its corpus
# until it has that many, for at most 4 x FUZZ_SECONDS more: the saved-graph
# harness also runs what it loads, about 4,000-4,500 executions per CPU
# second here), FUZZ_CC (clang),
# FUZZ_TARGETS (all five: checkpoint text cli runstate saved), FUZZ_SOURCES (the library's .c files, from
# Makefile.am), XXHASH_* and OPENBLAS_* CFLAGS / LIBS (from configure).
#
# The harnesses and the library are compiled with clang
# -fsanitize=fuzzer,address,undefined (UB is fatal) into BUILDDIR/fuzz/bin/,
# apart from the normal build. Each run starts from
# SRCDIR/fuzz/corpus/NAME and SRCDIR/fuzz/regressions/NAME and keeps what it
# finds in BUILDDIR/fuzz/work/NAME. A crash is saved to
# BUILDDIR/fuzz/crashes/NAME/; copy it into SRCDIR/fuzz/regressions/NAME/ and
# tests/test_fuzz_replay replays it in every `make check`.
#
# Prints one line per harness (executions, crashes, seconds), writes
# BUILDDIR/fuzz/out/fuzz_NAME.{log,trs} (tests/summary.sh counts them) and
# exits 1 if any harness crashed.
set -u
mode=${1:-}
src=${2:-}
build=${3:-}
if [ -z "$mode" ] || [ -z "$src" ] || [ -z "$build" ]; then
    echo "usage: fuzz.sh run|build|seeds SRCDIR BUILDDIR" >&2
    exit 2
fi
src=$(cd "$src" && pwd) || exit 2
build=$(cd "$build" && pwd) || exit 2
cc=${FUZZ_CC:-clang}
seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-checkpoint text cli runstate saved}
min_runs_list=${FUZZ_MIN_RUNS:-saved=1000000}
xxh_cflags=${XXHASH_CFLAGS:-}
xxh_libs=${XXHASH_LIBS:--lxxhash}
blas_cflags=${OPENBLAS_CFLAGS:-$(pkg-config --cflags openblas 2>/dev/null)}
blas_libs=${OPENBLAS_LIBS:-$(pkg-config --libs openblas 2>/dev/null || echo -lopenblas)}
bin="$build/fuzz/bin"
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cflags="-g -O1 -std=gnu11 -Wall -Wno-unused-parameter $san -I$src/src -I$src/examples/charrnn $xxh_cflags $blas_cflags"

case "$seconds" in
    ''|*[!0-9]*) echo "fuzz.sh: FUZZ_SECONDS must be a whole number of seconds, got '$seconds'" >&2; exit 2 ;;
esac

missing_clang() {
    echo "make fuzz: $1" >&2
    echo "make fuzz: the harnesses need clang with libFuzzer and OpenMP; on Debian: apt-get install clang libclang-rt-14-dev libomp-14-dev" >&2
    echo "make fuzz: (or point FUZZ_CC at such a clang: make fuzz FUZZ_CC=clang-14)" >&2
    exit 1
}

# Real exports for the saved-graph loader: a tiny char-rnn sampler and a
# tiny char-gpt KV-cache step (about 15 and 25 KB), each trained a few steps
# on the first lines of README.md (UTF-8: a vocabulary past ASCII) and
# written by the CLI's export command.
saved_cli_seeds() {
    for p in char-rnn char-gpt; do
        [ -x "$build/examples/$p" ] || { echo "fuzz.sh: build examples/$p first (make) for the saved seeds" >&2; return 1; }
    done
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/dfseeds.XXXXXX") || return 1
    head -n 60 "$src/README.md" > "$tmp/corpus.txt"
    (cd "$tmp" &&
        "$build/examples/char-rnn" train --data corpus.txt --embed 8 --hidden 16 --batch 8 --seq 16 --epochs 1 \
            --steps-per-epoch 30 --threads 1 --checkpoint-dir rnn > log 2>&1 &&
        "$build/examples/char-rnn" export --checkpoint-dir rnn "$src/fuzz/corpus/saved/charrnn_cli.dfg" >> log 2>&1 &&
        "$build/examples/char-gpt" train --data corpus.txt --block 8 --n-layer 1 --n-head 2 --n-embd 16 --batch 4 \
            --iters 20 --eval-interval 20 --eval-iters 2 --warmup-iters 2 --threads 1 --checkpoint-dir gpt >> log 2>&1 &&
        "$build/examples/char-gpt" export --checkpoint-dir gpt "$src/fuzz/corpus/saved/chargpt_cli.dfg" >> log 2>&1) ||
        { cat "$tmp/log" >&2; rm -rf "$tmp"; echo "fuzz.sh: cannot write the saved seeds" >&2; return 1; }
    rm -rf "$tmp"
}

# ------------------------------------------------------------------- build
mkdir -p "$bin" || exit 1
if [ "$mode" = seeds ]; then
    # Any C compiler will do; no fuzzer runtime needed.
    command -v "$cc" >/dev/null 2>&1 || cc=cc
    "$cc" $cflags "$src/fuzz/make_seeds.c" "$src/src/status.c" "$src/src/arena.c" "$src/src/tensor.c" \
        "$src/src/rng.c" "$src/src/variable.c" "$src/src/checkpoint.c" $xxh_libs -lm -o "$bin/make_seeds" || exit 1
    "$bin/make_seeds" "$src/fuzz/corpus" || exit 1
    saved_cli_seeds || exit 1
    echo "fuzz.sh: wrote the seed corpora in $src/fuzz/corpus/"
    exit 0
fi
command -v "$cc" >/dev/null 2>&1 || missing_clang "'$cc' not found"
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return 0; }\n' \
    > "$bin/probe.c"
printf '#include <omp.h>\n' >> "$bin/probe.c"
"$cc" -fopenmp -fsanitize=fuzzer,address,undefined "$bin/probe.c" -o "$bin/probe" > "$bin/probe.log" 2>&1 ||
    missing_clang "'$cc' cannot link -fopenmp -fsanitize=fuzzer: $(head -n 3 "$bin/probe.log" | tr '\n' ' ')"

# The library and the char-rnn code (FUZZ_SOURCES: the lists make passes from
# Makefile.am), instrumented for coverage, in one archive: each harness links
# only what it calls. An object is rebuilt when its source, any header or this
# script is newer.
sources=${FUZZ_SOURCES:-}
if [ -z "$sources" ]; then
    sources=$(cd "$src" && ls src/*.c graph/*.c ops/*.c examples/charrnn/*.c | grep -v 'examples/charrnn/main\.c$')
fi
header=$(ls -t "$src"/src/*.h "$src"/graph/*.h "$src"/ops/*.h "$src"/examples/charrnn/*.h 2>/dev/null | head -n 1)
objs=""
todo=""
for f in $sources; do
    case $f in *.c) ;; *) continue ;; esac
    o="$bin/obj/$(echo "$f" | tr / _ | sed 's/\.c$/.o/')"
    objs="$objs $o"
    if [ ! -f "$o" ] || [ "$src/$f" -nt "$o" ] || [ "$0" -nt "$o" ] || [ "$header" -nt "$o" ]; then
        todo="$todo $f"
    fi
done
mkdir -p "$bin/obj" || exit 1
if [ -n "$todo" ]; then
    echo "fuzz.sh: compiling $(echo $todo | wc -w) sources with $cc for fuzzing"
    export cc cflags src bin
    echo $todo | tr ' ' '\n' | xargs -P "$(nproc 2>/dev/null || echo 2)" -I{} sh -c \
        'f={}; o="$bin/obj/$(echo "$f" | tr / _ | sed "s/\.c\$/.o/")";
         $cc $cflags -w -fopenmp -fsanitize=fuzzer-no-link -c "$src/$f" -o "$o" || { rm -f "$o"; exit 1; }' ||
        { echo "fuzz.sh: compiling the sources with $cc failed" >&2; exit 1; }
fi
rm -f "$bin/libfuzzdf.a"
ar rcs "$bin/libfuzzdf.a" $objs || exit 1
for t in $targets; do
    [ -f "$src/fuzz/fuzz_$t.c" ] || { echo "fuzz.sh: no harness fuzz/fuzz_$t.c" >&2; exit 2; }
    "$cc" $cflags -fopenmp -fsanitize=fuzzer "$src/fuzz/fuzz_$t.c" "$bin/libfuzzdf.a" $blas_libs $xxh_libs -lm \
        -o "$bin/fuzz_$t" || { echo "fuzz.sh: cannot build fuzz_$t" >&2; exit 1; }
done

[ "$mode" = build ] && { echo "fuzz.sh: harnesses built in $bin"; exit 0; }
[ "$mode" = run ] || { echo "fuzz.sh: unknown mode '$mode'" >&2; exit 2; }

# --------------------------------------------------------------------- run
out="$build/fuzz/out"
rm -rf "$out"
mkdir -p "$out" || exit 1
failed=0
# The executions libFuzzer reports in its log (0 when it printed none).
executions() {
    n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$1" | tail -n 1)
    [ -n "$n" ] || n=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$1" | tail -n 1)
    echo "${n:-0}"
}
for t in $targets; do
    work="$build/fuzz/work/$t" crashes="$build/fuzz/crashes/$t"
    mkdir -p "$work" "$crashes" || exit 1
    before=$(ls "$crashes" | wc -l)
    dirs="$work $src/fuzz/corpus/$t"
    [ -d "$src/fuzz/regressions/$t" ] && dirs="$dirs $src/fuzz/regressions/$t"
    log="$out/fuzz_$t.log"
    start=$(date +%s)
    # -timeout: one input taking 10 s is a hang; -rss_limit_mb: a loader that
    # allocates gigabytes for a small input is a bug too.
    "$bin/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$crashes/" $dirs > "$log" 2>&1
    rc=$?
    execs=$(executions "$log")
    min_runs=0
    for m in $min_runs_list; do [ "${m%%=*}" = "$t" ] && min_runs=${m#*=}; done
    if [ $rc -eq 0 ] && [ "$execs" -lt "$min_runs" ]; then
        "$bin/fuzz_$t" -runs=$((min_runs - execs)) -max_total_time=$((4 * seconds)) -timeout=10 \
            -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$crashes/" $dirs > "$log.more" 2>&1
        rc=$?
        execs=$((execs + $(executions "$log.more")))
        cat "$log.more" >> "$log" && rm -f "$log.more"
    fi
    elapsed=$(($(date +%s) - start))
    after=$(ls "$crashes" | wc -l)
    new=$((after - before))
    [ $rc -ne 0 ] && [ $new -eq 0 ] && new=1          # died without an artifact: still a failure
    inputs=$(ls "$work" | wc -l)
    if [ $new -eq 0 ]; then
        result=PASS
    else
        result=FAIL
        failed=1
    fi
    echo "fuzz_$t: ${execs:-0} executions in ${elapsed} s, $new crashes ($inputs inputs in fuzz/work/$t)" | tee -a "$log"
    if [ "$result" = FAIL ]; then
        ls -t "$crashes" | head -n "$new" | sed "s|^|fuzz_$t:   crash input $crashes/|"
        grep -m 1 -E "ERROR: |runtime error|deadly signal" "$log" | sed "s|^|fuzz_$t:   |"
        echo "fuzz_$t:   full report: $log; replay: $bin/fuzz_$t INPUT"
    fi
    printf ':test-result: %s\n' "$result" > "$out/fuzz_$t.trs"
done
exit $failed
