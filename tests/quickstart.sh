#!/bin/sh
# Runs examples/quickstart and checks that it fits y = 3x + 2 with one trace
# serving both batch sizes (24 and 16: two plans).
out=$("${top_builddir:-.}/examples/quickstart") || { echo "quickstart failed"; exit 1; }
echo "$out"
echo "$out" | grep -q '^batch sizes 24 and 16: 2 plans$' || { echo "quickstart: expected 2 plans"; exit 1; }
echo "$out" | awk '/^w = / {
    w = $3; b = $8; traces = $NF
    ok = (w > 2.95 && w < 3.05 && b > 1.95 && b < 2.05 && traces == 1)
    print ok ? "quickstart: fit ok" : "quickstart: fit NOT ok"
    exit ok ? 0 : 1 }
    END { if (NR == 0) exit 1 }'
