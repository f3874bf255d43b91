#!/bin/bash
# ctest wrapper for tests/server/serve_redis_test.py: `leandiff serve --redis`
# with three workers, a SIGKILLed worker and a Redis restart (exit 77 =
# skipped: no python3, no redis-server, no hiredis or no test model).
command -v python3 >/dev/null || { echo "SKIP: python3 not found"; exit 77; }
exec python3 "$LEANDIFF_SOURCE_DIR/tests/server/serve_redis_test.py"
