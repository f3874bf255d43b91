#!/bin/bash
# ctest wrapper for tests/server/families_test.py: the server with the
# Wuerstchen v2 and Stable Cascade tiny models (exit 77 = skipped).
command -v python3 >/dev/null || { echo "SKIP: python3 not found"; exit 77; }
exec python3 "$LEANDIFF_SOURCE_DIR/tests/server/families_test.py"
