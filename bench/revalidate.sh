#!/usr/bin/env bash
# The requests participants really make, as an operator runs both servers: access logs on.
# `stelselnode serve` (RUST_LOG=info, its access log to a file) beside nginx serving the
# static export of the same registry (deploy/nginx/nginx.conf with a buffered access log,
# `access_log FILE combined buffer=64k flush=1s`), plain HTTP, wrk -t2 -c64, alternating
# A B A B A B per row. Rows: the Whitelist (kilobytes) 200 identity, 200 gzip and 304
# (If-None-Match), the OCL and GNL 304, and the ZAL of N Zorgaanbieders 304.
# Usage: bench/revalidate.sh [N] [SECONDS] [ROUNDS]   (defaults 10000, 5, 3; N=0: the demo
# registry, whose lists are all a few kB, as the real Whitelist, OCL and GNL are). Needs a release
# build (BIN=path for another binary); installs wrk and nginx-light when missing (root).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
SECS=${2:-5}
ROUNDS=${3:-3}
BIN=${BIN:-target/release/stelselnode}
source bench/beside-nginx.sh

mkdir -p "$W/nginx"
sed -e "s|@EXPORT@|$W/export|g" -e "s|@RUN@|$W/nginx|g" -e "s|@USER@|$(id -un)|" \
    -e "s|listen @LISTEN@;|listen 127.0.0.1:18611;|" \
    -e "s|access_log off;|access_log $W/nginx/access.log combined buffer=64k flush=1s;|" \
    deploy/nginx/nginx.conf > "$W/nginx/nginx.conf"
nginx -c "$W/nginx/nginx.conf" -p "$W/nginx" -g 'daemon off;' >/dev/null 2>&1 &
PIDS+=($!)
RUST_LOG=info $BIN --data "$D" serve --listen 127.0.0.1:18601 --insecure-http \
  >/dev/null 2>"$W/serve.log" &
PIDS+=($!)
sleep 1.5

rate() { # url extra-header...
  local url=$1; shift
  wrk -t2 -c64 -d"${SECS}s" "$@" "$url" 2>&1 | awk '/Requests\/sec/ {print $2}'
}
etag() { # url extra-header...
  local url=$1; shift
  curl -s -D - -o /dev/null "$@" "$url" | awk 'tolower($1)=="etag:" {print $2}' | tr -d '\r'
}
row() { # label path kind
  local label=$1 path=$2 kind=$3 a b
  local ea eb
  local -a ha=() hb=()
  case $kind in
    gzip) ha=(-H 'Accept-Encoding: gzip'); hb=("${ha[@]}") ;;
    304)
      ea=$(etag "http://127.0.0.1:18601/$path" -H 'Accept-Encoding: gzip')
      eb=$(etag "http://127.0.0.1:18611/$path" -H 'Accept-Encoding: gzip')
      ha=(-H 'Accept-Encoding: gzip' -H "If-None-Match: $ea")
      hb=(-H 'Accept-Encoding: gzip' -H "If-None-Match: $eb") ;;
  esac
  local ratios=() sa=() sb=()
  for _ in $(seq "$ROUNDS"); do
    a=$(rate "http://127.0.0.1:18601/$path" "${ha[@]}")
    b=$(rate "http://127.0.0.1:18611/$path" "${hb[@]}")
    sa+=("$a"); sb+=("$b")
    ratios+=("$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", a/b}')")
  done
  printf "| %-26s | %s | %s | %s |\n" "$label" "${sa[*]}" "${sb[*]}" "${ratios[*]}"
}
echo "Whitelist $(curl -s -o /dev/null -w '%{size_download}' http://127.0.0.1:18611/MedMij_Whitelist.xml) B, ZAL $(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:18611/MedMij_Zorgaanbiederslijst.xml?release=1.1.2") B; req/s, stelselnode vs nginx, c=64, ${SECS}s runs"
echo "| request | stelselnode req/s | nginx req/s | ratio per round |"
echo "|---|---|---|---|"
row "Whitelist 200 identity" "MedMij_Whitelist.xml" identity
row "Whitelist 200 gzip" "MedMij_Whitelist.xml" gzip
row "Whitelist 304" "MedMij_Whitelist.xml" 304
row "OAuthclientlist 304" "MedMij_OAuthclientlist.xml" 304
row "Gegevensdienstnamenlijst 304" "MedMij_Gegevensdienstnamenlijst.xml" 304
row "ZAL 304" "MedMij_Zorgaanbiederslijst.xml?release=1.1.2" 304
sleep 1.5
echo "access-log lines: stelselnode $(grep -c 'stelselnode::access' "$W/serve.log"), nginx $(wc -l < "$W/nginx/access.log")"
