#!/usr/bin/env bash
# End-to-end throughput of one volunteer (4 slots) on UNITS no-op units, for two builds side by
# side (issue 13: work buffer, reports riding on fetches, grouped spool fsyncs).
#
# Each run starts a fresh server and volunteer of one build on a free loopback port, publishes the
# no-op task, submits UNITS units through the API and times submit -> batch finished (the status
# long poll). Builds alternate which goes first; RUNS runs each; medians are printed. Each run
# also counts the server's requests to /work/fetch and /work/report (its debug request log) and
# the fdatasync/fsync calls of the server and of the volunteer (perf stat on syscall
# tracepoints), and the CPU time (user + system, /proc) of the server and the volunteer, per unit.
#
# Usage: scripts/bench-volunteer.sh BEFORE_DIR [RUNS] [UNITS] [SLOTS]
#   e.g. scripts/bench-volunteer.sh ../main/target/release 3 10000 4
# BEFORE_DIR holds the other build's `musketeer` and `musketeer-server`. Needs: curl, jq, perf,
# cargo build --release -p musketeer-client -p musketeer-server --bins, and the task modules
# (cargo build -p musketeer-task-artifacts).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BEFORE_DIR="${1:?usage: $0 BEFORE_DIR [RUNS] [UNITS] [SLOTS]}"
RUNS="${2:-3}"
UNITS="${3:-10000}"
SLOTS="${4:-4}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
AFTER_DIR="${AFTER_DIR:-$TARGET_DIR/release}" # this build (AFTER_DIR=... for another profile)
NOOP="$TARGET_DIR/wasm-tasks/wasm32-wasip2/release/musketeer_task_noop.wasm"
for file in "$BEFORE_DIR/musketeer" "$BEFORE_DIR/musketeer-server" "$AFTER_DIR/musketeer" \
    "$AFTER_DIR/musketeer-server" "$NOOP"; do
    [[ -f "$file" ]] || { echo "missing $file: build it first (see the header)" >&2; exit 2; }
done

# shellcheck source=bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"

python3 -c "import json; print(json.dumps({'app': 'noop', 'inputs': [{'n': i} for i in range($UNITS)]}))" \
    >"$WORK/batch.json"

# CPU time (user + system, all threads) of process $1 so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# One run of one build: prints "units_per_s requests_per_unit server_syncs_per_unit
# client_syncs_per_unit cpu_ms_per_unit".
run_once() {
    local dir="$1" run="$WORK/run" client="$1/musketeer" server="$1/musketeer-server"
    rm -rf "$run" && mkdir -p "$run"
    "$client" keys generate --out "$run/keys" >/dev/null
    "$server" init --data-dir "$run/server" --project-name bench \
        --trust-key "$run/keys/musketeer.pub" >/dev/null
    local researcher publisher
    researcher="$("$server" token create --data-dir "$run/server" --role researcher 2>/dev/null | tail -n 1)"
    publisher="$("$server" token create --data-dir "$run/server" --role publisher 2>/dev/null | tail -n 1)"
    MUSKETEER_LOG="warn,musketeer_server::api=debug" "$server" serve --data-dir "$run/server" \
        --listen 127.0.0.1:0 >"$run/server.log" 2>&1 &
    local server_pid=$!
    PIDS+=("$server_pid")
    wait_for_line "listening on" "$run/server.log"
    local url
    url="$(grep -o 'http://127.0.0.1:[0-9]*' "$run/server.log" | head -n 1)"
    "$client" sign --key "$run/keys/musketeer.key" --module "$NOOP" --app noop --version 1.0.0 \
        --out "$run/noop.manifest.json" >/dev/null 2>&1
    MUSKETEER_TOKEN="$publisher" "$client" publish --server "$url" \
        --manifest "$run/noop.manifest.json" --module "$NOOP" >/dev/null
    MUSKETEER_LOG=warn "$client" join "$url" --name bench --slots "$SLOTS" \
        --data-dir "$run/volunteer" --log-format json >"$run/volunteer.log" 2>&1 &
    local client_pid=$!
    PIDS+=("$client_pid")
    wait_for_line '"idle"' "$run/volunteer.log"
    perf stat -x, -e syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync -p "$server_pid" \
        -o "$run/server.perf" &
    local perf_server=$!
    perf stat -x, -e syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync -p "$client_pid" \
        -o "$run/client.perf" &
    local perf_client=$!
    sleep 0.5 # perf attaches
    local before_requests start end
    before_requests=$(grep -cE 'path=/api/v1/work/(fetch|report)' "$run/server.log" || true)
    local cpu_before cpu_after
    cpu_before=$(($(cpu_ticks "$server_pid") + $(cpu_ticks "$client_pid")))
    start=$(date +%s%N)
    local batch
    batch=$(curl -sf -H "Authorization: Bearer $researcher" -H 'Content-Type: application/json' \
        --data-binary "@$WORK/batch.json" "$url/api/v1/batches" | jq .batch_id)
    while :; do
        curl -sf -o "$run/status.json" -H "Authorization: Bearer $researcher" \
            "$url/api/v1/batches/$batch?wait_ms=30000"
        [[ "$(jq -r .state "$run/status.json")" == finished ]] && break
    done
    end=$(date +%s%N)
    cpu_after=$(($(cpu_ticks "$server_pid") + $(cpu_ticks "$client_pid")))
    kill -INT "$perf_server" "$perf_client"
    wait "$perf_server" "$perf_client" 2>/dev/null || true
    local requests syncs_server syncs_client
    requests=$(($(grep -cE 'path=/api/v1/work/(fetch|report)' "$run/server.log") - before_requests))
    syncs_server=$(awk -F, '/syscalls/ {s += $1} END {print s}' "$run/server.perf")
    syncs_client=$(awk -F, '/syscalls/ {s += $1} END {print s}' "$run/client.perf")
    kill "$client_pid" "$server_pid"
    wait "$client_pid" "$server_pid" 2>/dev/null || true
    awk -v n="$UNITS" -v ns="$((end - start))" -v r="$requests" -v ss="$syncs_server" \
        -v sc="$syncs_client" -v cpu="$((cpu_after - cpu_before))" -v hz="$(getconf CLK_TCK)" \
        'BEGIN {printf "%.0f %.3f %.3f %.3f %.4f\n", n / (ns / 1e9), r / n, ss / n, sc / n, cpu * 1000 / hz / n}'
}

: >"$WORK/before.txt"
: >"$WORK/after.txt"
for run in $(seq "$RUNS"); do
    if ((run % 2)); then order=(before after); else order=(after before); fi
    for which in "${order[@]}"; do
        if [[ $which == before ]]; then dir="$BEFORE_DIR"; else dir="$AFTER_DIR"; fi
        line="$(run_once "$dir")"
        echo "run $run $which: $line (units/s, requests/unit, server syncs/unit, client syncs/unit, CPU ms/unit)"
        echo "$line" >>"$WORK/$which.txt"
    done
done

median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
summary() {
    local file="$1"
    printf '%-7s units/s %6s  requests/unit %6s  server syncs/unit %6s  client syncs/unit %6s  CPU ms/unit %7s\n' \
        "$2" "$(cut -d' ' -f1 "$file" | median)" "$(cut -d' ' -f2 "$file" | median)" \
        "$(cut -d' ' -f3 "$file" | median)" "$(cut -d' ' -f4 "$file" | median)" \
        "$(cut -d' ' -f5 "$file" | median)"
}
echo "medians of $RUNS runs, $UNITS no-op units, 1 volunteer with $SLOTS slots:"
summary "$WORK/before.txt" before
summary "$WORK/after.txt" after
awk -v b="$(cut -d' ' -f1 "$WORK/before.txt" | median)" -v a="$(cut -d' ' -f1 "$WORK/after.txt" | median)" \
    'BEGIN {printf "units/s after/before: %.2fx\n", (b > 0 ? a / b : 0)}'
