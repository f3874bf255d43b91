#!/bin/bash
# ctest wrapper for tests/server/load_test.py against `leandiff serve --redis`
# with one worker: 32 clients for 30 s (exit 77 = skipped: no python3, no
# redis-server, no hiredis or no test data).
command -v python3 >/dev/null || { echo "SKIP: python3 not found"; exit 77; }
export LEANDIFF_LOAD_REDIS=1
export LEANDIFF_LOAD_SECONDS="${LEANDIFF_LOAD_SECONDS:-30}"
exec python3 "$LEANDIFF_SOURCE_DIR/tests/server/load_test.py"
