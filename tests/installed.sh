#!/usr/bin/env bash
# installed.sh — the library as a third party uses it: `make install` into a
# scratch DESTDIR, the compiler and linker flags from `pkg-config dagflow`
# (PKG_CONFIG_SYSROOT_DIR points them into the scratch tree), then
# tests/installed/toy_lstm.c (layers + df_fit, the public header only) is
# built with them and must train (it exits non-zero if its loss stays high),
# and tests/installed/sample_saved.c (dagflow.h only) must load a char-rnn
# sampler that the installed char-rnn trained and exported, and write the
# text the installed dagflow-run samples from it for the same seed.
set -u
top_builddir=${top_builddir:-.}
srcdir=${srcdir:-.}
build=$(cd "$top_builddir" && pwd) || exit 1
src=$(cd "$srcdir" && pwd) || exit 1
work=$(mktemp -d "${TMPDIR:-/tmp}/dfinstall.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

fail() {
    echo "installed.sh: $*"
    exit 1
}

command -v pkg-config >/dev/null || fail "pkg-config is missing (apt-get install pkg-config)"
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$build" install DESTDIR="$work/root" > "$work/install.log" 2>&1 ||
    { cat "$work/install.log"; fail "make install DESTDIR=... failed"; }
pc=$(find "$work/root" -name dagflow.pc | head -n 1)
[ -n "$pc" ] || fail "make install put no dagflow.pc under $work/root"
[ -f "$(dirname "$pc")/../../include/dagflow.h" ] || fail "dagflow.h was not installed beside $pc"
export PKG_CONFIG_PATH="$(dirname "$pc")" PKG_CONFIG_SYSROOT_DIR="$work/root"
cflags=$(pkg-config --cflags dagflow) || fail "pkg-config --cflags dagflow failed"
libs=$(pkg-config --libs dagflow) || fail "pkg-config --libs dagflow failed"
case " $cflags $libs " in *" -I$work/root/"*" -L$work/root/"*) ;; *) fail "flags do not point into the install: $cflags $libs" ;; esac
# A sanitizer build's library needs the sanitizer runtime first in the program.
sanitize=$(sed -n 's/^SANITIZER_CFLAGS = //p' "$build/Makefile")
cc=$(sed -n 's/^CC = //p' "$build/Makefile")
build_program() {
    # shellcheck disable=SC2086
    ${cc:-cc} -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Werror $sanitize $cflags "$src/tests/installed/$1.c" \
        $libs -lm -o "$work/$1" || fail "tests/installed/$1.c does not build against the installed library"
}
build_program toy_lstm
libdir=$(pkg-config --variable=libdir dagflow)
case $libdir in "$work/root"*) ;; *) libdir="$work/root$libdir" ;; esac
LD_LIBRARY_PATH="$libdir" "$work/toy_lstm" || fail "toy_lstm failed"
# It must have run the installed copy, not the build tree's.
LD_LIBRARY_PATH="$libdir" ldd "$work/toy_lstm" | grep -q "$work/root" || fail "toy_lstm did not load the installed libdagflow"
echo "installed.sh: toy_lstm built with pkg-config against the installed library and trained"

# A saved graph, loaded by a program that has only dagflow.h.
build_program sample_saved
bindir=$(dirname "$(find "$work/root" -name dagflow-run -type f | head -n 1)")
[ -x "$bindir/char-rnn" ] || fail "make install put no char-rnn beside dagflow-run"
# Trained until its logits are peaked: a near-uniform model draws the same
# text at any temperature, so the comparison would miss a sampler's bug.
for i in 1 2 3 4 5 6 7 8; do echo "the cat sat on the mat; the dog ran to the hat. so it goes, and so on."; done \
    > "$work/corpus.txt"
(cd "$work" && LD_LIBRARY_PATH="$libdir" "$bindir/char-rnn" train --data corpus.txt --embed 8 --hidden 16 --batch 4 \
    --seq 16 --epochs 1 --steps-per-epoch 300 --learning-rate 0.01 --threads 1 --checkpoint-dir ck > train.log 2>&1 &&
    LD_LIBRARY_PATH="$libdir" "$bindir/char-rnn" export --checkpoint-dir ck out.dfg > export.log 2>&1) ||
    { cat "$work/train.log" "$work/export.log" 2>/dev/null; fail "the installed char-rnn did not train and export"; }
LD_LIBRARY_PATH="$libdir" "$work/sample_saved" "$work/out.dfg" "the " 120 7 0.8 > "$work/program.txt" ||
    fail "sample_saved did not sample from out.dfg"
LD_LIBRARY_PATH="$libdir" "$bindir/dagflow-run" "$work/out.dfg" --sample --start "the " --length 120 --seed 7 \
    --temperature 0.8 > "$work/tool.txt" || fail "the installed dagflow-run did not sample from out.dfg"
[ "$(wc -c < "$work/program.txt")" -ge 124 ] || fail "sample_saved wrote $(wc -c < "$work/program.txt") bytes, not 124+"
cmp -s "$work/program.txt" "$work/tool.txt" ||
    fail "sample_saved and dagflow-run wrote different text for seed 7: $(head -c 80 "$work/program.txt") / $(head -c 80 "$work/tool.txt")"
LD_LIBRARY_PATH="$libdir" ldd "$work/sample_saved" | grep -q "$work/root" || fail "sample_saved did not load the installed libdagflow"
echo "installed.sh: sample_saved built with pkg-config loaded the installed char-rnn's export and sampled dagflow-run's text"
