#!/usr/bin/env bash
# Smoke test of the embedded default: `npm start` with no DATABASE_URL prints a bootstrap token,
# health answers SERVING over gRPC reflection, and SIGTERM stops latchkey and its Postgres
# within 10 s.
set -euo pipefail
set -m   # background jobs get their own process group (pgid = pid), for the cleanup
cd "$(dirname "$0")/.."

data=$(mktemp -d)
log="$data/latchkey.log"
grpc_port=${SMOKE_GRPC_PORT:-55051}
http_port=${SMOKE_HTTP_PORT:-58080}
cleanup() {
  if [ -n "${pid:-}" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
  pkill -KILL -f "$data/pg" 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT

env -u DATABASE_URL -u REDIS_URL LATCHKEY_DATA_DIR="$data" \
  LATCHKEY_GRPC_LISTEN="127.0.0.1:$grpc_port" LATCHKEY_HTTP_LISTEN="127.0.0.1:$http_port" \
  npm start >"$log" 2>&1 &
pid=$!

ok=""
for _ in $(seq 1 120); do
  if out=$(node_modules/.bin/buf curl --protocol grpc --http2-prior-knowledge --reflect \
    "http://127.0.0.1:$grpc_port/grpc.health.v1.Health/Check" 2>/dev/null) && grep -q SERVING <<<"$out"; then
    ok=1
    break
  fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.5
done
if [ -z "$ok" ]; then
  echo "smoke: latchkey did not answer SERVING; its log:" >&2
  cat "$log" >&2
  exit 1
fi
echo "smoke: health answers $out"
grep -q "lk_" "$log" || { echo "smoke: no bootstrap token printed" >&2; cat "$log" >&2; exit 1; }
echo "smoke: bootstrap token printed"
curl -fsS "http://127.0.0.1:$http_port/readyz" && echo

pgpids=$(pgrep -f "$data/pg" || true)
[ -n "$pgpids" ] || { echo "smoke: no embedded postgres process found" >&2; exit 1; }
start=$(date +%s)
kill -TERM "$pid"   # the main pid only, as a process manager would
for _ in $(seq 1 100); do
  if ! kill -0 "$pid" 2>/dev/null && ! pgrep -f "$data/pg" >/dev/null; then break; fi
  sleep 0.1
done
elapsed=$(( $(date +%s) - start ))
if kill -0 "$pid" 2>/dev/null || pgrep -f "$data/pg" >/dev/null; then
  echo "smoke: latchkey or its Postgres still running 10 s after SIGTERM" >&2
  cat "$log" >&2
  exit 1
fi
echo "smoke: stopped latchkey and its Postgres in ${elapsed}s after SIGTERM"
