#!/bin/bash
# ctest wrapper for tests/server/page_test.py: the web page of `leandiff serve`
# in headless Chromium (exit 77 = skipped: no python3, no /usr/bin/chromium or no test data).
command -v python3 >/dev/null || { echo "SKIP: python3 not found"; exit 77; }
exec python3 "$LEANDIFF_SOURCE_DIR/tests/server/page_test.py"
