#!/usr/bin/env bash
# Cross-architecture determinism check (issue 6 groundwork).
#
# Runs the same signed task modules with the amd64 client (Cranelift, and forced Pulley), the
# ARMv7 client under qemu-arm (Pulley, pulley32) and the arm64 client under qemu-aarch64
# (Cranelift), and fails unless every architecture gives the same output bytes and the same fuel.
# A stack overflow must be a `stack-overflow` error everywhere (its depth may differ between
# backends, so it is never compared as an output), and a task may use more memory than a 32-bit
# host's initial reservation, up to the default 256 MiB limit.
#
# Builds whatever is stale or missing (cargo is a no-op when up to date); installs nothing.
# Must run on an x86_64 Linux host. Not part of `cargo xtask test` or CI (yet).
#
# Usage: scripts/cross-check.sh            (exit 0: all equal; 1: a mismatch; 2: missing tools)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

ARMV7=armv7-unknown-linux-gnueabihf
ARM64=aarch64-unknown-linux-gnu
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
MODULES="$TARGET_DIR/wasm-tasks/wasm32-wasip2/release"

# --- tools -------------------------------------------------------------------------------------
missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$1 (apt-get install $2)"); }
need cargo "rustup: https://rustup.rs"
need rustup "rustup: https://rustup.rs"
need jq jq
need sha256sum coreutils
need arm-linux-gnueabihf-gcc "gcc-arm-linux-gnueabihf libc6-dev-armhf-cross"
need aarch64-linux-gnu-gcc "gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
QEMU_ARM="$(command -v qemu-arm || command -v qemu-arm-static || true)"
QEMU_ARM64="$(command -v qemu-aarch64 || command -v qemu-aarch64-static || true)"
[[ -n "$QEMU_ARM" ]] || missing+=("qemu-arm (apt-get install qemu-user, or qemu-user-static)")
[[ -n "$QEMU_ARM64" ]] || missing+=("qemu-aarch64 (apt-get install qemu-user, or qemu-user-static)")
for sysroot in /usr/arm-linux-gnueabihf /usr/aarch64-linux-gnu; do
    [[ -d "$sysroot/lib" ]] || missing+=("$sysroot/lib (apt-get install libc6-dev-armhf-cross libc6-dev-arm64-cross)")
done
if [[ "$(uname -m)" != x86_64 ]]; then
    echo "cross-check: this script compares against an x86_64 host; this host is $(uname -m)" >&2
    exit 2
fi
if command -v rustup >/dev/null 2>&1; then
    installed="$(rustup target list --installed)"
    for t in "$ARMV7" "$ARM64" wasm32-wasip2; do
        grep -qx "$t" <<<"$installed" || missing+=("Rust target $t (run \`rustup toolchain install\` in $ROOT)")
    done
fi
if ((${#missing[@]})); then
    echo "cross-check: missing tools:" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    exit 2
fi

# --- builds ------------------------------------------------------------------------------------
echo "== building (no-op when up to date)"
cargo build --quiet -p musketeer-task-artifacts
cargo build --quiet --release -p musketeer-client
cargo build --quiet --release -p musketeer-client --target "$ARMV7"
cargo build --quiet --release -p musketeer-client --target "$ARM64"

# name, command prefix, expected backend. amd64-pulley is Pulley (pulley64) on the same host.
ARCHES=(amd64 amd64-pulley armv7 arm64)
declare -A CMD=(
    [amd64]="$TARGET_DIR/release/musketeer"
    [amd64-pulley]="$TARGET_DIR/release/musketeer"
    [armv7]="$QEMU_ARM -L /usr/arm-linux-gnueabihf $TARGET_DIR/$ARMV7/release/musketeer"
    [arm64]="$QEMU_ARM64 -L /usr/aarch64-linux-gnu $TARGET_DIR/$ARM64/release/musketeer"
)
declare -A EXTRA=([amd64]="" [amd64-pulley]="--backend pulley" [armv7]="" [arm64]="")
declare -A BACKEND=([amd64]=cranelift [amd64-pulley]=pulley [armv7]=pulley [arm64]=cranelift)

WORK="$(mktemp -d "${TMPDIR:-/tmp}/musketeer-cross-check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# --- signing (a throwaway key; the hostile module is test-only and signed only here) -----------
NATIVE="${CMD[amd64]}"
"$NATIVE" keys generate --out "$WORK/keys" >/dev/null
for task in float_corners word_count primes hostile; do
    "$NATIVE" sign --key "$WORK/keys/musketeer.key" --module "$MODULES/musketeer_task_$task.wasm" \
        --app "${task//_/-}" --version 1.0.0 --out "$WORK/$task.manifest.json" >"$WORK/sign.log" 2>&1 ||
        { cat "$WORK/sign.log" >&2; exit 1; }
done

# A fixed text with punctuation, apostrophes, case and non-ASCII scripts.
for i in $(seq 1 200); do
    printf 'Line %d: The quick brown fox; don'"'"'t jump. The END, the end! Ünïcode café CAFÉ 日本語 Ελληνικά\n' "$i"
done >"$WORK/text.txt"

# case name, task, input
CASES=(
    "float-corners|float_corners|{}"
    "word-count|word_count|@$WORK/text.txt"
    "primes|primes|{\"from\":1,\"to\":10000000}"
)

failures=0
fail() {
    echo "MISMATCH: $*" >&2
    failures=$((failures + 1))
}

# run ARCH TASK INPUT [--json]: the client's stdout; the exit status is the client's.
run() {
    local arch="$1" task="$2" input="$3"
    shift 3
    # shellcheck disable=SC2086 # CMD and EXTRA are word lists on purpose
    ${CMD[$arch]} run --manifest "$WORK/$task.manifest.json" --module "$MODULES/musketeer_task_$task.wasm" \
        --trust "$WORK/keys/musketeer.pub" --input "$input" --cache-dir "$WORK/cache-$arch" \
        ${EXTRA[$arch]} "$@"
}

printf '%-14s %-13s %-10s %14s %10s  %s\n' case arch backend fuel wall_ms "output sha256"
for case in "${CASES[@]}"; do
    IFS='|' read -r name task input <<<"$case"
    ref_sha="" ref_fuel=""
    for arch in "${ARCHES[@]}"; do
        # Raw bytes (the --json report re-serialises JSON outputs) and the JSON report's fuel.
        run "$arch" "$task" "$input" >"$WORK/$name.$arch.out"
        run "$arch" "$task" "$input" --json >"$WORK/$name.$arch.json"
        sha="$(sha256sum <"$WORK/$name.$arch.out" | cut -d' ' -f1)"
        fuel="$(jq -r .fuel_consumed "$WORK/$name.$arch.json")"
        backend="$(jq -r .backend "$WORK/$name.$arch.json")"
        wall="$(jq -r '.wall_time_ms | floor' "$WORK/$name.$arch.json")"
        printf '%-14s %-13s %-10s %14s %10s  %s\n' "$name" "$arch" "$backend" "$fuel" "$wall" "$sha"
        [[ "$backend" == "${BACKEND[$arch]}" ]] || fail "$name on $arch ran on $backend, expected ${BACKEND[$arch]}"
        if [[ -z "$ref_sha" ]]; then
            ref_sha="$sha" ref_fuel="$fuel"
        else
            [[ "$sha" == "$ref_sha" ]] || fail "$name output on $arch differs from amd64 (diff $WORK/$name.amd64.out $WORK/$name.$arch.out)"
            [[ "$fuel" == "$ref_fuel" ]] || fail "$name fuel on $arch is $fuel, amd64 $ref_fuel"
        fi
    done
done

echo "== hostile: unbounded recursion must be a stack-overflow error on every architecture"
for arch in "${ARCHES[@]}"; do
    status=0
    run "$arch" hostile '{"mode":"stack"}' --json >"$WORK/stack.$arch.out" 2>"$WORK/stack.$arch.err" || status=$?
    message="$(tr '\n' ' ' <"$WORK/stack.$arch.err")"
    printf '%-13s exit %d: %s\n' "$arch" "$status" "$message"
    [[ $status -eq 3 && "$message" == *stack-overflow* ]] || fail "stack mode on $arch: exit $status, $message"
done

echo "== hostile: 240 MiB (over a 32-bit host's 64 MiB reservation, under the 256 MiB limit)"
for arch in "${ARCHES[@]}"; do
    status=0
    out="$(run "$arch" hostile '{"mode":"memory","mib":240}' 2>&1)" || status=$?
    printf '%-13s exit %d: %s\n' "$arch" "$status" "$out"
    [[ $status -eq 0 && "$out" == "allocated 240 MiB" ]] || fail "240 MiB on $arch: exit $status, $out"
done

if ((failures)); then
    echo "cross-check: $failures mismatch(es)" >&2
    trap - EXIT
    echo "cross-check: outputs kept in $WORK" >&2
    exit 1
fi
echo "cross-check: all architectures agree"
