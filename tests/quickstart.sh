#!/bin/sh
# Runs examples/quickstart and checks that it fits y = 3x + 2.
out=$("${top_builddir:-.}/examples/quickstart") || { echo "quickstart failed"; exit 1; }
echo "$out"
echo "$out" | awk '/^w = / {
    w = $3; b = $8; traces = $NF
    ok = (w > 2.95 && w < 3.05 && b > 1.95 && b < 2.05 && traces == 1)
    print ok ? "quickstart: fit ok" : "quickstart: fit NOT ok"
    exit ok ? 0 : 1 }
    END { if (NR == 0) exit 1 }'
