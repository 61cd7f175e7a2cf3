#!/usr/bin/env bash
# Load test of mien serve: CLIENTS concurrent connections for SECONDS seconds of
# POST /v1/identify with a real photo (two faces) on loopback, with wrk. Starts its own
# server on a free port with a temporary gallery (the five people of
# $MIEN_DATA/people/examples/knn_examples/train) and keys, prints wrk's report and one summary
#   load_test: requests N errors E rps R p50_ms P p99_ms Q
# and exits 1 when any request failed (socket error, timeout or a non-2xx status).
#
#   bench/load_test.sh [CLIENTS [SECONDS [WORKERS]]]     default 16 30 2
# Environment: MIEN_BIN (default build/mien), MIEN_DATA (../shared/data), MIEN_MODELS (models),
# PHOTO (default people/examples/two_people.jpg).
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${1:-16}; SECONDS_=${2:-30}; WORKERS=${3:-2}
BIN=${MIEN_BIN:-build/mien}
DATA=${MIEN_DATA:-../shared/data}
PHOTO=${PHOTO:-$DATA/people/examples/two_people.jpg}
command -v wrk >/dev/null || { echo "load_test: wrk is missing (apt-get install wrk; make setup)" >&2; exit 2; }
[ -x "$BIN" ] || { echo "load_test: $BIN missing (make)" >&2; exit 2; }
tmp=$(mktemp -d); pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

key=$("$BIN" keys add --role admin --name load --keys "$tmp/keys.db" 2>/dev/null)
"$BIN" enroll --gallery "$tmp/gallery.db" ${MIEN_MODELS:+--models "$MIEN_MODELS"} \
  --from-dir "$DATA/people/examples/knn_examples/train" >/dev/null 2>&1
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" serve --port "$port" --workers "$WORKERS" --gallery "$tmp/gallery.db" --keys "$tmp/keys.db" \
  ${MIEN_MODELS:+--models "$MIEN_MODELS"} 2>"$tmp/server.log" &
pid=$!
for _ in $(seq 600); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/server.log" >&2; exit 1; }
  sleep 0.1
done
# Check one request by hand: the right answer, not only a 200.
out=$(curl -s -H "X-API-Key: $key" -H 'Content-Type: image/jpeg' --data-binary "@$PHOTO" \
      "http://127.0.0.1:$port/v1/identify")
case $out in *obama*biden*|*biden*obama*) ;; *) echo "load_test: unexpected identify answer: $out" >&2; exit 1 ;; esac

cat >"$tmp/identify.lua" <<LUA
local f = assert(io.open("$PHOTO", "rb"))
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
wrk.headers["Content-Type"] = "image/jpeg"
wrk.headers["X-API-Key"] = "$key"
LUA
wrk -t "$((CLIENTS < 4 ? CLIENTS : 4))" -c "$CLIENTS" -d "${SECONDS_}s" --timeout 30s --latency \
    -s "$tmp/identify.lua" "http://127.0.0.1:$port/v1/identify" | tee "$tmp/wrk.txt"
kill -0 "$pid" || { echo "load_test: the server died" >&2; cat "$tmp/server.log" >&2; exit 1; }

# wrk's report: "N requests in", "Non-2xx or 3xx responses: N", "Socket errors: connect A,
# read B, write C, timeout D", the latency distribution (50%, 99%) and "Requests/sec: R".
/usr/bin/python3 - "$tmp/wrk.txt" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def ms(v, unit):
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]
n = int(re.search(r"(\d+) requests in", t).group(1))
non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", t)) else 0
sock = sum(map(int, m.groups())) if (m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)) else 0
p50 = ms(*re.search(r"\s50%\s+([\d.]+)(us|ms|s|m)\b", t).groups())
p99 = ms(*re.search(r"\s99%\s+([\d.]+)(us|ms|s|m)\b", t).groups())
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
err = non2xx + sock
print("load_test: requests %d errors %d rps %.1f p50_ms %.1f p99_ms %.1f" % (n, err, rps, p50, p99))
sys.exit(1 if err or n == 0 else 0)
PY
