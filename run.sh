#!/usr/bin/env bash
# run.sh — one entry point for a fresh Debian machine.
#   ./run.sh demo    install packages, build, run the quickstart, the char-rnn and char-gpt demos
#   ./run.sh test    install packages, build, run the whole test suite (make check),
#                    again in a sanitizer build (build-sanitize/) with dagflow's
#                    AVX2 GEMM forced (DF_GEMM_ISA=avx2, the path of CPUs without
#                    AVX-512), then fuzz each loader for FUZZ_SECONDS (60); ends
#                    with "N passed, N failed"
#   ./run.sh build   install packages and build only
#   ./run.sh bench   build, run `make bench`, then bench/compare (dagflow vs
#                    PyTorch, side by side; extra args go to bench/compare)
#   ./run.sh deps    install the Debian packages only
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(build-essential autoconf automake libtool autoconf-archive pkg-config
          libopenblas-openmp-dev libcriterion-dev libxxhash-dev)
# `./run.sh test` also fuzzes (clang with libFuzzer and OpenMP) and tests
# data-parallel training over MPI (Open MPI).
TEST_PACKAGES=(clang libclang-rt-14-dev libomp-14-dev libopenmpi-dev openmpi-bin)
JOBS=$(nproc 2>/dev/null || echo 2)

# deps [EXTRA_PACKAGE...]: installs what is missing of PACKAGES and the extras.
deps() {
    local missing=()
    for p in "${PACKAGES[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "run.sh: installing ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# configured_with FLAGS: whether the tree is configured with each of FLAGS
# (a tree configured by `demo` without --with-mpi is reconfigured by `test`).
configured_with() {
    [ -f Makefile ] && [ -x config.status ] || return 1
    local used flag
    used=" $(./config.status --config | tr -d "'") "
    for flag in "$@"; do
        case $used in *" $flag "*) ;; *) return 1 ;; esac
    done
}

build() {
    deps
    [ -x configure ] || ./autogen.sh >/dev/null 2>&1 || ./autogen.sh
    # shellcheck disable=SC2086
    configured_with ${CONFIGURE_FLAGS:-} || ./configure -q ${CONFIGURE_FLAGS:-}
    make -j"$JOBS" >/dev/null
    echo "run.sh: build ok"
}

# make check in build dir $1 (quiet); on failure prints the failing logs.
check_in() {
    local status=0
    make -C "$1" -j"$JOBS" check >/dev/null 2>&1 || status=$?
    if [ $status -ne 0 ]; then
        echo "run.sh: make check failed in $1; failing test logs follow" >&2
        for trs in "$1"/tests/*.trs; do
            grep -q ':test-result: FAIL\|:test-result: ERROR' "$trs" && cat "${trs%.trs}.log" >&2
        done
    fi
    return $status
}

# The whole suite again with --enable-sanitizers (ASan + UBSan, leaks checked)
# in build-sanitize/dagflow/: a copy of the sources (tracked and untracked
# files, not ignored ones), since this tree is configured in-tree and automake
# refuses a VPATH build from it. tar keeps the timestamps, so a second run
# rebuilds only what changed. build-sanitize/shared points at the ../shared
# beside this tree, so the copy finds the corpus at ../shared as this tree does.
SANITIZE_DIR=build-sanitize/dagflow
sanitize_check() {
    local start=$SECONDS
    mkdir -p "$SANITIZE_DIR"
    [ -e build-sanitize/shared ] || [ ! -d ../shared ] || ln -s ../../shared build-sanitize/shared
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$SANITIZE_DIR"
    else
        make distdir distdir="$SANITIZE_DIR" >/dev/null
    fi
    (
        cd "$SANITIZE_DIR"
        [ -x configure ] || ./autogen.sh >/dev/null 2>&1 || ./autogen.sh
        [ -f Makefile ] || ./configure -q --enable-sanitizers
        make -j"$JOBS" >/dev/null
    ) || { echo "run.sh: the sanitizer build failed" >&2; return 1; }
    local built=$SECONDS status=0
    DF_GEMM_ISA=${SANITIZE_GEMM_ISA:-avx2} check_in "$SANITIZE_DIR" || status=$?
    echo "run.sh: sanitizer build $((built - start)) s, its make check $((SECONDS - built)) s"
    return $status
}

# Each fuzz harness for FUZZ_SECONDS (default 60) with clang's libFuzzer.
fuzz() {
    local start=$SECONDS status=0
    make fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-60}" || status=$?
    echo "run.sh: fuzzing $((SECONDS - start)) s"
    return $status
}

run_tests() {
    deps "${TEST_PACKAGES[@]}"
    CONFIGURE_FLAGS=--with-mpi build        # MPI here; the sanitizer build runs without it
    local status=0 start=$SECONDS
    check_in . || status=1
    echo "run.sh: make check $((SECONDS - start)) s"
    sanitize_check || status=1
    fuzz || status=1
    echo "run.sh: all tests $((SECONDS - start)) s; results of both builds and the fuzzers:"
    bash tests/summary.sh . "$SANITIZE_DIR" --fuzz . || status=1
    return $status
}

demo() {
    build
    echo "== quickstart: fit y = 3x + 2"
    ./examples/quickstart
    if [ -x examples/char-rnn ]; then
        bash examples/demo.sh
    fi
}

bench() {
    build
    make -j"$JOBS" bench
    bash bench/compare "$@"
}

case "${1:-}" in
    bench) shift; bench "$@" ;;
    demo) demo ;;
    test) run_tests ;;
    build) build ;;
    deps) deps ;;
    *) echo "usage: ./run.sh demo|test|build|deps|bench" >&2; exit 2 ;;
esac
