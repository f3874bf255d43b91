#!/bin/bash
# ctest wrapper for tests/server/cancel_test.py: DELETE and interrupt stop a
# running job inside its step (exit 77 = skipped: no python3).
command -v python3 >/dev/null || { echo "SKIP: python3 not found"; exit 77; }
exec python3 "$LEANDIFF_SOURCE_DIR/tests/server/cancel_test.py"
