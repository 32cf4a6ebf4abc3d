#!/usr/bin/env bash
# A three-node Hourglass cluster on this machine (loopback), for trying failover.
#
#   scripts/cluster.sh start          start nodes 1-3 (data and logs in $CLUSTER_DIR, default ./hourglass-cluster)
#   scripts/cluster.sh status [NODE]  one node's view of every shard (default node 1)
#   scripts/cluster.sh kill NODE      kill -9 one node
#   scripts/cluster.sh restart NODE   start one node again on its data directory
#   scripts/cluster.sh stop           SIGTERM every node (each hands its shards off first)
#
# Node N serves the Temporal API on 127.0.0.1:723N and its peers on 127.0.0.1:730N:
# point SDK workers and clients at any of 127.0.0.1:7231, :7232, :7233.
# Environment: HOURGLASS (the binary; default target/release/hourglass, built if missing),
# HOURGLASS_LOG (log filter, default info), CLUSTER_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${CLUSTER_DIR:-./hourglass-cluster}"
HG="${HOURGLASS:-target/release/hourglass}"

peers_of() { # node -> the other nodes as ID=ADDR
    local me="$1" out="" j
    for j in 1 2 3; do
        [ "$j" = "$me" ] && continue
        out="$out${out:+,}$j=127.0.0.1:730$j"
    done
    echo "$out"
}

start_node() { # node
    local i="$1"
    mkdir -p "$DIR"
    "$HG" serve --node-id "$i" --listen "127.0.0.1:723$i" --peer-listen "127.0.0.1:730$i" \
        --peers "$(peers_of "$i")" --data-dir "$DIR/node-$i" --log "${HOURGLASS_LOG:-info}" \
        >>"$DIR/node-$i.log" 2>&1 &
    echo $! >"$DIR/node-$i.pid"
    echo "node $i: pid $!, Temporal API 127.0.0.1:723$i, peers 127.0.0.1:730$i, log $DIR/node-$i.log"
}

case "${1:-}" in
    start)
        [ -x "$HG" ] || cargo build --release -p hourglass-service --bin hourglass
        for i in 1 2 3; do start_node "$i"; done ;;
    restart)
        start_node "${2:?node}" ;;
    kill)
        kill -9 "$(cat "$DIR/node-${2:?node}.pid")" && echo "node $2 killed" ;;
    status)
        "$HG" cluster status --peer "127.0.0.1:730${2:-1}" ;;
    stop)
        for i in 1 2 3; do
            [ -f "$DIR/node-$i.pid" ] && kill -TERM "$(cat "$DIR/node-$i.pid")" 2>/dev/null || true
        done ;;
    *)
        sed -n '2,14p' "$0"; exit 2 ;;
esac
