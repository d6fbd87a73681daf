#!/usr/bin/env bash
# Serving benchmark, side by side in one run: `stelselnode serve` and nginx serving the same
# bytes (the static export of the same registry, deploy/nginx/nginx.conf), plain HTTP and
# TLS, for a 200 (identity), a 200 (gzip, precompressed) and a 304, with wrk at 16 and 64
# connections, for the Zorgaanbiederslijst and the Whitelist. wrk, the server and nginx share the machine's cores.
# Usage: bench/serve.sh [N] [SECONDS]   N Zorgaanbieders (0 = the demo registry; default 0),
# SECONDS per wrk run (default 5). Needs a release build (BIN=path to compare another
# binary); installs wrk and nginx-light when missing (root).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-0}
SECS=${2:-5}
BIN=${BIN:-target/release/stelselnode}
source bench/beside-nginx.sh
if [ "$N" = 0 ]; then
  LIST="MedMij_Zorgaanbiederslijst.xml?api=2"
else
  LIST="MedMij_Zorgaanbiederslijst.xml?release=1.1.2"
fi
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost -days 2 -keyout "$W/tls.key" -out "$W/tls.pem" 2>/dev/null

nginx_start() { # name listen-line
  mkdir -p "$W/$1"
  sed -e "s|@EXPORT@|$W/export|g" -e "s|@RUN@|$W/$1|g" -e "s|@USER@|$(id -un)|" \
      -e "s|listen @LISTEN@;|$2|" deploy/nginx/nginx.conf > "$W/$1/nginx.conf"
  nginx -c "$W/$1/nginx.conf" -p "$W/$1" -g 'daemon off;' >/dev/null 2>&1 &
  PIDS+=($!)
}
nginx_start nginx-plain "listen 127.0.0.1:18511;"
nginx_start nginx-tls "listen 127.0.0.1:18512 ssl; ssl_certificate $W/tls.pem; ssl_certificate_key $W/tls.key; ssl_protocols TLSv1.2 TLSv1.3;"

serve_start() { # extra args...
  RUST_LOG=warn $BIN --data "$D" serve "$@" >/dev/null 2>&1 &
  SERVE=$!
  PIDS+=($SERVE)
  sleep 1
}
wrk_line() { # label url conns extra-header...
  local label=$1 url=$2 c=$3; shift 3
  local out
  out=$(wrk -t2 -c"$c" -d"${SECS}s" "$@" "$url" 2>&1)
  printf "%-34s c=%-3s %12s req/s %12s/s\n" "$label" "$c" \
    "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" "$(awk '/Transfer\/sec/ {print $2}' <<<"$out")"
}
run_set() { # name base-url
  for LIST in "$ZAL" "MedMij_Whitelist.xml"; do run_list "$1 ${LIST%%.xml*}" "$2"; done
}
run_list() { # name base-url
  local name=$1 base=$2
  local etag etag_gz
  etag=$(curl -sk -D - -o /dev/null "$base/$LIST" | awk 'tolower($1)=="etag:" {print $2}' | tr -d '\r')
  etag_gz=$(curl -sk -D - -o /dev/null -H 'Accept-Encoding: gzip' "$base/$LIST" | awk 'tolower($1)=="etag:" {print $2}' | tr -d '\r')
  for c in 16 64; do
    wrk_line "$name 200 identity" "$base/$LIST" "$c"
    wrk_line "$name 200 gzip" "$base/$LIST" "$c" -H 'Accept-Encoding: gzip'
    wrk_line "$name 304" "$base/$LIST" "$c" -H 'Accept-Encoding: gzip' -H "If-None-Match: $etag_gz"
  done
  [ -n "$etag" ] || echo "warning: no ETag from $base"
}
ZAL=$LIST
for LIST in "$ZAL" "MedMij_Whitelist.xml"; do
  echo "document: $LIST ($(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:18511/$LIST") bytes identity, $(curl -s -o /dev/null -w '%{size_download}' -H 'Accept-Encoding: gzip' "http://127.0.0.1:18511/$LIST") gzip)"
done
serve_start --listen 127.0.0.1:18501 --insecure-http
run_set "stelselnode http" "http://127.0.0.1:18501"
run_set "nginx http" "http://127.0.0.1:18511"
kill "$SERVE"; wait "$SERVE" 2>/dev/null || true
serve_start --listen 127.0.0.1:18502 --tls-cert "$W/tls.pem" --tls-key "$W/tls.key"
run_set "stelselnode https" "https://127.0.0.1:18502"
run_set "nginx https" "https://127.0.0.1:18512"
