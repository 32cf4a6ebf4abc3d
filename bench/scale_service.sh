#!/usr/bin/env bash
# Open workflows through the whole server: RSS per parked workflow and restart-to-serving.
#
#   bench/scale_service.sh [N]        (default N = 100000)
#
# Starts release `hourglass serve` on a fresh data dir and a free port, parks N
# workflows with `hourglass-bench --scenario park` (each starts a 1 h timer and stays
# open), and reads the server's VmRSS / RssAnon / RssFile from /proc before and after.
# Then it stops the server (SIGTERM), starts it again on the same directory, and times
# how long until a one-workflow probe completes, and reads RSS again.
# Environment: CARGO_TARGET_DIR, SKIP_BUILD=1, CONCURRENCY (200), POLLERS (32).
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-100000}"
TARGET="${CARGO_TARGET_DIR:-$(pwd)/target}"
HG="$TARGET/release/hourglass"
BENCH="$TARGET/release/hourglass-bench"
if [ "${SKIP_BUILD:-0}" != "1" ]; then
    cargo build --release -p hourglass-service --bin hourglass -p hourglass-bench --bin hourglass-bench >&2
fi
WORK="$(mktemp -d -t hourglass-scale-XXXXXX)"
PID=""
cleanup() { [ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
ADDR="127.0.0.1:$PORT"

rss() { # pid -> "VmRSS RssAnon RssFile" in kB
    awk '/^(VmRSS|RssAnon|RssFile):/ {printf "%s ", $2}' "/proc/$1/status"
}
start() {
    "$HG" serve --listen "$ADDR" --data-dir "$WORK/data" --log warn >>"$WORK/server.log" 2>&1 &
    PID=$!
}
probe() { # waits until a noop workflow completes; prints seconds since $1
    local t0="$1"
    for _ in $(seq 1 600); do
        if "$BENCH" --target "$ADDR" --scenario noop --workflows 1 --concurrency 1 --workflow-timeout 10 \
            --progress 0 >/dev/null 2>&1; then
            python3 -c "import time,sys; print(f'{time.time()-float(sys.argv[1]):.2f}')" "$t0"
            return 0
        fi
        sleep 0.1
    done
    echo "server did not answer" >&2; return 1
}

start; probe "$(date +%s.%N)" >/dev/null
read -r before_rss before_anon before_file <<<"$(rss "$PID")"
"$BENCH" --target "$ADDR" --scenario park --workflows "$N" --concurrency "${CONCURRENCY:-200}" \
    --wft-pollers "${POLLERS:-32}" --server-pid "$PID" --progress 10 >"$WORK/park.txt" 2>&1 || { cat "$WORK/park.txt"; exit 1; }
sleep 12 # past one PAGE_RELEASE_INTERVAL (10 s): the steady state of parked workflows
read -r after_rss after_anon after_file <<<"$(rss "$PID")"
parked_rate="$(awk -F'|' '/workflows\/s/ {gsub(/ /,"",$3); print $3}' "$WORK/park.txt")"
kill -TERM "$PID"; wait "$PID" || true; PID=""
t0="$(date +%s.%N)"; start; restart_s="$(probe "$t0")"
sleep 1
read -r re_rss re_anon re_file <<<"$(rss "$PID")"
per() { python3 -c "import sys; print(round((int(sys.argv[2])-int(sys.argv[1]))*1024/int(sys.argv[3])))" "$1" "$2" "$N"; }
cat <<OUT
| metric | value |
| --- | --- |
| parked workflows (each on a 1 h timer) | $N (at $parked_rate wf/s) |
| server VmRSS before → after parking | $((before_rss / 1024)) MiB → $((after_rss / 1024)) MiB |
| **RSS per parked workflow** | **$(per "$before_rss" "$after_rss") B** (heap $(per "$before_anon" "$after_anon") B, mapped files $(per "$before_file" "$after_file") B) |
| restart (SIGTERM, start on the same dir) → first workflow completed | $restart_s s |
| server VmRSS after restart | $((re_rss / 1024)) MiB (heap $((re_anon / 1024)) MiB, mapped files $((re_file / 1024)) MiB) |
OUT
