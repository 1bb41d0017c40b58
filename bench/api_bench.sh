#!/usr/bin/env bash
# Decision-API throughput with wrk on loopback: /v1/auth (allow and deny)
# and /v1/decisions?ip= against an index of DECISIONS decisions.
#
#   bench/api_bench.sh [DECISIONS=10000] [DURATION=10s] [CONNECTIONS=50] [THREADS=2] [SERVER_WORKERS=2]
#
# Builds crates/api/examples/api_bench_server.rs (release), starts it on
# 127.0.0.1:<free port>, runs wrk --latency for each endpoint and prints
# req/s and p99. Needs wrk. Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
DUR=${2:-10s}
CONN=${3:-50}
THREADS=${4:-2}
WORKERS=${5:-2}
TARGET=${CARGO_TARGET_DIR:-target}
command -v wrk >/dev/null || { echo "wrk not found" >&2; exit 1; }

cargo build --release -q -p stadtwache-api --example api_bench_server
BIN="$TARGET/release/examples/api_bench_server"

OUT=$(mktemp -d)
trap 'exec 3>&- 2>/dev/null || true; [ -n "${SRV:-}" ] && kill "$SRV" 2>/dev/null; rm -rf "$OUT"' EXIT
mkfifo "$OUT/in"
"$BIN" "$N" 127.0.0.1:0 "$WORKERS" <"$OUT/in" >"$OUT/server.out" &
SRV=$!
exec 3>"$OUT/in"   # keeps the server's stdin open; closing it stops the server
for _ in $(seq 1 600); do grep -q READY "$OUT/server.out" 2>/dev/null && break; sleep 0.1; done
grep -q READY "$OUT/server.out" || { echo "server did not start" >&2; cat "$OUT/server.out" >&2; exit 1; }
ADDR=$(awk '/^LISTEN/{print $2}' "$OUT/server.out")
KEY=$(awk '/^KEY/{print $2}' "$OUT/server.out")
BANNED=$(awk '/^BANNED/{print $2}' "$OUT/server.out")
ALLOWED=$(awk '/^ALLOWED/{print $2}' "$OUT/server.out")
echo "server $ADDR, $(awk '/^INDEXED/{print $2}' "$OUT/server.out") targets indexed, $WORKERS server workers; load $(cut -d' ' -f1-3 /proc/loadavg); wrk -t$THREADS -c$CONN -d$DUR --latency"

run() {
    local name=$1; shift
    # Check the answer first: a benchmark of error pages would be worthless.
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' "$@")
    wrk -t"$THREADS" -c"$CONN" -d"$DUR" --latency "$@" >"$OUT/wrk.txt"
    local rps p99 p50 non2xx
    rps=$(awk '/^Requests\/sec/{print $2}' "$OUT/wrk.txt")
    p50=$(awk '$1=="50%"{print $2}' "$OUT/wrk.txt")
    p99=$(awk '$1=="99%"{print $2}' "$OUT/wrk.txt")
    non2xx=$(awk '/Non-2xx/{print $NF}' "$OUT/wrk.txt")
    printf '%-34s status %s  %10s req/s  p50 %-8s p99 %-8s %s\n' "$name" "$code" "$rps" "$p50" "$p99" \
        "${non2xx:+(non-2xx: $non2xx)}"
}

run "GET /v1/auth (allow, peer)"          "http://$ADDR/v1/auth"
run "GET /v1/auth (deny, X-Real-IP)"      -H "X-Real-IP: $BANNED" "http://$ADDR/v1/auth"
run "GET /v1/auth (allow, X-Real-IP)"     -H "X-Real-IP: $ALLOWED" "http://$ADDR/v1/auth"
run "GET /v1/decisions?ip= (hit)"         -H "X-Api-Key: $KEY" "http://$ADDR/v1/decisions?ip=$BANNED"
run "GET /v1/decisions?ip= (miss, null)"  -H "X-Api-Key: $KEY" "http://$ADDR/v1/decisions?ip=$ALLOWED"
