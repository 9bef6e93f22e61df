# Shared by the bench scripts (sourced): a work directory removed on exit with the processes
# started into PIDS, and waiting for a line in a log.

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# Waits up to 60 s for a pattern in a file.
wait_for_line() {
    local pattern="$1" file="$2"
    for _ in $(seq 600); do
        grep -q "$pattern" "$file" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "timed out waiting for '$pattern' in $file" >&2
    cat "$file" >&2
    exit 1
}
