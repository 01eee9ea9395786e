#!/usr/bin/env bash
# installed.sh — the library as a third party uses it: `make install` into a
# scratch DESTDIR, the compiler and linker flags from `pkg-config dagflow`
# (PKG_CONFIG_SYSROOT_DIR points them into the scratch tree), then
# tests/installed/toy_lstm.c (layers + df_fit, the public header only) is
# built with them and must train (it exits non-zero if its loss stays high).
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
# shellcheck disable=SC2086
${cc:-cc} -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Werror $sanitize $cflags "$src/tests/installed/toy_lstm.c" \
    $libs -o "$work/toy_lstm" || fail "tests/installed/toy_lstm.c does not build against the installed library"
libdir=$(pkg-config --variable=libdir dagflow)
case $libdir in "$work/root"*) ;; *) libdir="$work/root$libdir" ;; esac
LD_LIBRARY_PATH="$libdir" "$work/toy_lstm" || fail "toy_lstm failed"
# It must have run the installed copy, not the build tree's.
LD_LIBRARY_PATH="$libdir" ldd "$work/toy_lstm" | grep -q "$work/root" || fail "toy_lstm did not load the installed libdagflow"
echo "installed.sh: toy_lstm built with pkg-config against the installed library and trained"
