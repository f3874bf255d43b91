#!/bin/bash
# ctest wrapper for tests/server/tls_test.py: rediss:// between a worker, a
# batch and a TLS-only redis-server (exit 77 = skipped: no python3, no
# redis-server, no hiredis, no openssl command or no test model).
command -v python3 >/dev/null || { echo "SKIP: python3 not found"; exit 77; }
exec python3 "$LEANDIFF_SOURCE_DIR/tests/server/tls_test.py"
