#!/usr/bin/env bash
# HTTP load benchmark: starts the benchmark server (crates/server/examples/
# http_bench_server.rs: the real server's router and connection handling,
# plus /bench/open, /bench/stateless and /bench/token) on loopback, once per
# validation mode, and drives it with wrk for a bounded time per route.
# Prints req/s, p50/p99 latency, the ratio to the unauthenticated ceiling,
# and the server's idle and peak RSS.
#
#   bench/http.sh                 # SQLite, 10 s per route
#   DURATION=5 bench/http.sh      # shorter
#   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test bench/http.sh
#   SEED_TOKENS=1000000 bench/http.sh   # SQLite with a million live token records
#                                       # besides the benchmark's (needs sqlite3)
#
# Needs wrk (Debian: apt-get install -y wrk). Loopback only.
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
PORT=${PORT:-8099}
MODES=${MODES:-"strict synced"}
TARGET=${CARGO_TARGET_DIR:-target}
command -v wrk >/dev/null || { echo "wrk not found (apt-get install -y wrk)" >&2; exit 1; }

cargo build --release -q -p fastcore-security-server --example http_bench_server
SERVER="$TARGET/release/examples/http_bench_server"

WORK=$(mktemp -d)
PID=""
cleanup() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

export JWT_SECRET_KEY="http-benchmark-secret-0123456789-abcdefghijklmnop"
# A fixed password (loopback only), so a reused database keeps working.
export BENCH_PASSWORD="bench-password-loopback-only"
export BENCH_REFRESH_FILE="$WORK/refresh"
export BENCH_BIND="127.0.0.1:$PORT"
export FASTCORE_PURGE_INTERVAL_SECONDS=0
# Throttling counts failures only; keep it out of the way of the flood anyway.
export LOGIN_MAX_FAILURES_PER_ACCOUNT=0 LOGIN_MAX_FAILURES_PER_ADDRESS=0
URL="http://127.0.0.1:$PORT"

rss_kib() { awk -v f="$2" '$1 == f":" {print $2}' "/proc/$1/status"; }

# wrk_run NAME ARGS...: runs wrk and prints one table row.
CEILING=""
wrk_run() {
  local name=$1; shift
  local out rps p50 p99 errors ratio
  out=$(wrk --latency -t1 -c"$CONNECTIONS" -d"${DURATION}s" "$@")
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  errors=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")
  if [ -z "$CEILING" ]; then CEILING=$rps; fi
  ratio=$(awk -v a="$rps" -v b="$CEILING" 'BEGIN {printf "%.0f%%", 100 * a / b}')
  printf "%-26s %10s %9s %9s %8s %8s %9s\n" "$name" "$rps" "$p50" "$p99" "$ratio" "${errors:-0}" \
    "$(( $(rss_kib "$PID" VmHWM) / 1024 )) MiB"
}

login() {
  curl -sf -X POST "$URL/auth/login" \
    -H 'Content-Type: application/x-www-form-urlencoded' \
    --data "username=bench&password=$BENCH_PASSWORD"
}

for MODE in $MODES; do
  export JWT_VALIDATION_MODE=$MODE
  export DATABASE_URL=${BENCH_DATABASE_URL:-sqlite://$WORK/bench-$MODE.db}
  "$SERVER" >"$WORK/server-$MODE.log" 2>&1 &
  PID=$!
  for _ in $(seq 100); do curl -sf "$URL/bench/open" >/dev/null 2>&1 && break; sleep 0.1; done
  sleep 1
  IDLE=$(rss_kib "$PID" VmRSS)
  if [ -n "${SEED_TOKENS:-}" ] && [ -z "${BENCH_DATABASE_URL:-}" ]; then
    # Random 128-bit jtis like the uuids the library issues, 10 000 users.
    sqlite3 "$WORK/bench-$MODE.db" ".timeout 10000" \
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $SEED_TOKENS)
       INSERT INTO fastcore_tokens (jti, token_type, user_id, issued_at, expires_at)
       SELECT lower(hex(randomblob(16))), 'access', 'seed-' || (i % 10000),
              unixepoch() - 60, unixepoch() + 86400 FROM n" >/dev/null
    echo "seeded $SEED_TOKENS live token records"
  fi
  ACCESS=$(login | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  : >"$WORK/refresh"
  for _ in $(seq $((CONNECTIONS / 4 + 8))); do
    login | sed -E 's/.*"refresh_token":"([^"]+)".*/\1/' >>"$WORK/refresh"
    echo >>"$WORK/refresh"
  done
  AUTH=(-H "Authorization: Bearer $ACCESS")
  CEILING=""
  echo
  echo "== mode $MODE, $(sed -E 's#(://[^:/@]*)(:[^@]*)?@#\1@#' <<<"$DATABASE_URL" | sed "s#$WORK#\$TMP#"), wrk -t1 -c$CONNECTIONS -d${DURATION}s"
  printf "%-26s %10s %9s %9s %8s %8s %9s\n" route "req/s" p50 p99 ceiling "non-2xx" "peak RSS"
  wrk_run "GET /bench/open" "$URL/bench/open"
  wrk_run "GET /bench/stateless" "${AUTH[@]}" "$URL/bench/stateless"
  wrk_run "GET /bench/token ($MODE)" "${AUTH[@]}" "$URL/bench/token"
  wrk_run "GET /auth/me ($MODE)" "${AUTH[@]}" "$URL/auth/me"
  CONNECTIONS_SAVED=$CONNECTIONS
  CONNECTIONS=$((CONNECTIONS / 4))
  wrk_run "POST /auth/refresh" -s bench/refresh.lua "$URL"
  CONNECTIONS=4
  wrk_run "POST /auth/login" -s bench/login.lua "$URL"
  CONNECTIONS=$CONNECTIONS_SAVED
  echo "server RSS: idle $((IDLE / 1024)) MiB, peak $(( $(rss_kib "$PID" VmHWM) / 1024 )) MiB"
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
done
