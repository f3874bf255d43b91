#!/bin/bash
# ctest wrapper for tests/server/edit_test.py: img2img resizing and mask blur,
# OpenAI image edits (multipart, sent by curl -F) and preview events of
# `leandiff serve` (exit 77 = skipped: no python3, no curl or no test data).
command -v python3 >/dev/null || { echo "SKIP: python3 not found"; exit 77; }
command -v curl >/dev/null || { echo "SKIP: curl not found"; exit 77; }
exec python3 "$LEANDIFF_SOURCE_DIR/tests/server/edit_test.py"
