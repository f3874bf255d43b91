#!/bin/bash
# ctest wrapper for tests/server/worker_test.py: `leandiff worker` on a real
# redis-server (exit 77 = skipped: no python3, no redis-server or no hiredis).
command -v python3 >/dev/null || { echo "SKIP: python3 not found"; exit 77; }
exec python3 "$LEANDIFF_SOURCE_DIR/tests/server/worker_test.py"
