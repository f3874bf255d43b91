#!/bin/bash
# ctest wrapper for tests/server/api_test.py: every endpoint of `leandiff serve`
# against the tiny KOALA model (exit 77 = skipped: no python3 or no test data).
command -v python3 >/dev/null || { echo "SKIP: python3 not found"; exit 77; }
exec python3 "$LEANDIFF_SOURCE_DIR/tests/server/api_test.py"
