#!/bin/bash
# ctest wrapper for tests/server/load_test.py: 32 clients for 60 s against
# `leandiff serve` on loopback (exit 77 = skipped: no python3 or no test data).
command -v python3 >/dev/null || { echo "SKIP: python3 not found"; exit 77; }
exec python3 "$LEANDIFF_SOURCE_DIR/tests/server/load_test.py"
