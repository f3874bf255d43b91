# The one way the shell tests find the shared test data (README "Testing"):
# $LEANDIFF_TESTDATA when it is set (it must then be a folder: a set but
# missing folder is an error, never a silent fallback), else
# $LEANDIFF_SOURCE_DIR/../shared/testdata. Sourced, not run (ctest runs
# tests/*.sh only):
#
#     . "${LEANDIFF_SOURCE_DIR:?}/tests/lib/testdata.bash"    # sets $td
#     need_testdata models/sdxl-teacher-tiny                    # exit 77 (skip) when absent
#     make_tiny_model "$dir/m"       # a model for tests that need no reference numbers
if [ -n "${LEANDIFF_TESTDATA+set}" ]; then
    if [ ! -d "$LEANDIFF_TESTDATA" ]; then
        echo "FAIL: LEANDIFF_TESTDATA='$LEANDIFF_TESTDATA' is not a folder (unset it to use ../shared/testdata)" >&2
        exit 1
    fi
    td=$LEANDIFF_TESTDATA
else
    td="${LEANDIFF_SOURCE_DIR:?}/../shared/testdata"
fi

need_testdata() {
    [ -e "$td/$1" ] || { echo "SKIP: $td/$1 not found (the shared test data: README, Testing)"; exit 77; }
}

# make_taesd DIR: the tiny AutoencoderTiny of tests/data/taesd (its config, the reference's random weights)
make_taesd() {
    rm -rf "$1"
    "${LEANDIFF_BIN:?}" init-random --config "${LEANDIFF_SOURCE_DIR:?}/tests/data/taesd/config.json" --out "$1" \
        --dtype f32 --seed 20261204 >/dev/null || { echo "FAIL: leandiff init-random of the tiny TAESD into $1"; exit 1; }
}

# make_tiny_model DIR: a random-weight tiny KOALA pipeline (init-random --pipeline tiny)
make_tiny_model() {
    rm -rf "$1"
    "${LEANDIFF_BIN:?}" init-random --pipeline tiny --out "$1" >/dev/null ||
        { echo "FAIL: leandiff init-random --pipeline tiny --out $1"; exit 1; }
}
