#!/usr/bin/env bash
# run.sh — one entry point for a fresh Debian machine.
#   ./run.sh demo    install packages, build, run the quickstart and the char-rnn demo
#   ./run.sh test    install packages, build, run the whole test suite (make check)
#   ./run.sh build   install packages and build only
#   ./run.sh deps    install the Debian packages only
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(build-essential autoconf automake libtool autoconf-archive pkg-config
          libopenblas-openmp-dev libcriterion-dev libxxhash-dev)
JOBS=$(nproc 2>/dev/null || echo 2)

deps() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "run.sh: installing ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

build() {
    deps
    [ -x configure ] || ./autogen.sh >/dev/null 2>&1 || ./autogen.sh
    [ -f Makefile ] || ./configure -q
    make -j"$JOBS" >/dev/null
    echo "run.sh: build ok"
}

run_tests() {
    build
    local status=0
    make -j"$JOBS" check >/dev/null 2>&1 || status=$?
    if [ $status -ne 0 ]; then
        echo "run.sh: make check failed; failing test logs follow" >&2
        for trs in tests/*.trs; do
            grep -q ':test-result: FAIL\|:test-result: ERROR' "$trs" && cat "${trs%.trs}.log" >&2
        done
    fi
    bash tests/summary.sh
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

case "${1:-}" in
    demo) demo ;;
    test) run_tests ;;
    build) build ;;
    deps) deps ;;
    *) echo "usage: ./run.sh demo|test|build|deps" >&2; exit 2 ;;
esac
