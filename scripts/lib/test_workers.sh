# shellcheck shell=bash
# test_workers: pytest-xdist's worker count for the test scripts: $TEST_WORKERS (0: in one
# process), else the cores this shell may run on (nproc: its CPU affinity), at most 4. Most of
# the suite's time is one-thread work, so every core helps (docs/benchmarks.md).
test_workers() {
    if [ -n "${TEST_WORKERS:-}" ]; then
        echo "$TEST_WORKERS"
        return
    fi
    local cores
    cores=$(nproc)
    echo $(( cores < 4 ? cores : 4 ))
}
