#!/usr/bin/env bash
# Round trip of one no-op unit through `musketeer submit --wait` on an idle local cluster, for
# two client binaries side by side (issue 13: "one unit's round trip through the CLI").
#
# Starts this tree's release `musketeer-server` on a free loopback port and one volunteer
# (`musketeer join`, 1 slot) that has already run the no-op task once (module cached), then
# times `submit --wait` of a one-unit batch RUNS times per client, alternating which goes
# first, and prints each client's p50/p90/min in milliseconds and the ratio of the p50s.
# Wall time from process start to exit: submit, wait for the result, download it. Then the same
# round trip through the API alone (one curl process: submit, then the status long poll until
# the batch is finished), the shape of Celery's `apply_async().get()`. `process` is the
# after-client's `--version` alone: the cost of starting and ending the process.
#
# Usage: scripts/bench-submit-wait.sh BEFORE_MUSKETEER [RUNS]   (RUNS defaults to 21)
#   e.g. scripts/bench-submit-wait.sh ../main/target/release/musketeer 21
# Needs: curl, jq, cargo build --release -p musketeer-client -p musketeer-server --bins, and the task
# modules (cargo build -p musketeer-task-artifacts).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BEFORE="${1:?usage: $0 BEFORE_MUSKETEER [RUNS]}"
RUNS="${2:-21}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
AFTER="$TARGET_DIR/release/musketeer"
SERVER="$TARGET_DIR/release/musketeer-server"
NOOP="$TARGET_DIR/wasm-tasks/wasm32-wasip2/release/musketeer_task_noop.wasm"
for file in "$BEFORE" "$AFTER" "$SERVER" "$NOOP"; do
    [[ -x "$file" || -f "$file" ]] || { echo "missing $file: build it first (see the header)" >&2; exit 2; }
done

# shellcheck source=bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"

"$AFTER" keys generate --out "$WORK/keys" >/dev/null
"$SERVER" init --data-dir "$WORK/server" --project-name bench \
    --trust-key "$WORK/keys/musketeer.pub" >"$WORK/init.txt"
token() { "$SERVER" token create --data-dir "$WORK/server" --role "$1" 2>/dev/null | tail -n 1; }
RESEARCHER="$(token researcher)"
PUBLISHER="$(token publisher)"
MUSKETEER_LOG=warn "$SERVER" serve --data-dir "$WORK/server" --listen 127.0.0.1:0 \
    >"$WORK/server.log" 2>&1 &
PIDS+=($!)
wait_for_line "listening on" "$WORK/server.log"
URL="$(grep -o 'http://127.0.0.1:[0-9]*' "$WORK/server.log" | head -n 1)"

"$AFTER" sign --key "$WORK/keys/musketeer.key" --module "$NOOP" --app noop --version 1.0.0 \
    --out "$WORK/noop.manifest.json" >/dev/null 2>&1
MUSKETEER_TOKEN="$PUBLISHER" "$AFTER" publish --server "$URL" \
    --manifest "$WORK/noop.manifest.json" --module "$NOOP" >/dev/null
MUSKETEER_LOG=warn "$AFTER" join "$URL" --name bench --slots 1 --data-dir "$WORK/volunteer" \
    --log-format json >"$WORK/volunteer.log" 2>&1 &
PIDS+=($!)
wait_for_line '"idle"' "$WORK/volunteer.log"

echo '{"n":1}' >"$WORK/one.jsonl"
# One round trip in microseconds.
round_trip() {
    local client="$1" start end
    start=$(date +%s%N)
    MUSKETEER_TOKEN="$RESEARCHER" "$client" submit --server "$URL" --app noop \
        --inputs "$WORK/one.jsonl" --wait >/dev/null 2>"$WORK/submit.err" \
        || { cat "$WORK/submit.err" >&2; exit 1; }
    end=$(date +%s%N)
    echo $(((end - start) / 1000))
}
# The process alone: start, parse the command line, print, exit (no request).
process_only() {
    local start end
    start=$(date +%s%N)
    "$AFTER" --version >/dev/null
    end=$(date +%s%N)
    echo $(((end - start) / 1000))
}
# Warm-up: the volunteer downloads and compiles the module once.
round_trip "$AFTER" >/dev/null

: >"$WORK/before.us"
: >"$WORK/after.us"
: >"$WORK/process.us"
for run in $(seq "$RUNS"); do
    process_only >>"$WORK/process.us"
    if ((run % 2)); then
        round_trip "$BEFORE" >>"$WORK/before.us"
        round_trip "$AFTER" >>"$WORK/after.us"
    else
        round_trip "$AFTER" >>"$WORK/after.us"
        round_trip "$BEFORE" >>"$WORK/before.us"
    fi
done

# The API round trip: batch ids are consecutive on this private server.
: >"$WORK/api.us"
next_id=$(($(curl -sf -H "Authorization: Bearer $RESEARCHER" "$URL/api/v1/batches" \
    | jq '[.batches[].id] | max') + 1))
for _ in $(seq "$RUNS"); do
    start=$(date +%s%N)
    curl -sf -o /dev/null -H "Authorization: Bearer $RESEARCHER" -H 'Content-Type: application/json' \
        -d '{"app":"noop","inputs":[{"n":1}]}' "$URL/api/v1/batches" \
        --next -sf -o "$WORK/status.json" -H "Authorization: Bearer $RESEARCHER" \
        "$URL/api/v1/batches/$next_id?wait_ms=30000"
    end=$(date +%s%N)
    [[ "$(jq -r .state "$WORK/status.json")" == finished ]] \
        || { echo "batch $next_id did not finish: $(cat "$WORK/status.json")" >&2; exit 1; }
    echo $(((end - start) / 1000)) >>"$WORK/api.us"
    next_id=$((next_id + 1))
done

# p-th percentile (nearest rank) of a file of microseconds, in milliseconds.
percentile() {
    sort -n "$2" | awk -v p="$1" '{v[NR]=$1} END {i=int((NR*p+99)/100); if (i<1) i=1; printf "%.1f", v[i]/1000}'
}
report() {
    printf '%-7s p50 %6s ms  p90 %6s ms  min %6s ms  (%s runs)\n' "$1" \
        "$(percentile 50 "$2")" "$(percentile 90 "$2")" "$(percentile 1 "$2")" "$(wc -l <"$2")"
}
report before "$WORK/before.us"
report after "$WORK/after.us"
report api "$WORK/api.us"
report process "$WORK/process.us"
awk -v b="$(percentile 50 "$WORK/before.us")" -v a="$(percentile 50 "$WORK/after.us")" \
    'BEGIN {printf "p50 before/after: %.1fx\n", (a > 0 ? b / a : 0)}'
