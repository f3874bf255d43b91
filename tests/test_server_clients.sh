#!/bin/bash
# ctest wrapper for tests/server/clients_test.py: the A1111 routes clients
# post to, CORS, the access log, a 64 MiB body reading its 413, and 300 idle
# sockets beside a normal request (exit 77 = skipped: no python3 or test data).
command -v python3 >/dev/null || { echo "SKIP: python3 not found"; exit 77; }
exec python3 "$LEANDIFF_SOURCE_DIR/tests/server/clients_test.py"
