#!/usr/bin/env bash
# What an auditor and a participant do with a large history, time and peak RSS each:
# a registry of N Zorgaanbieders is published, then PUBS more publications each change one
# Zorgaanbieder; `history export` writes the audit archive, `history verify` checks it
# offline, and `verify` checks the published release3 Zorgaanbiederslijst (enveloped and
# detached signature, XSD) as exported by `export`. Last, 16 clients at 20 MB/s each fetch
# historic Zorgaanbiederslijsten without gzip from the running server: its peak RSS.
# Usage: [SHAPE=issue9] bench/audit.sh [N] [PUBS]   (default 100000 3; release build)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
PUBS=${2:-3}
BIN=${BIN:-target/release/stelselnode}
[ -x "$BIN" ] || cargo build --release
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)"; exit 1; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
python3 bench/gen_registry.py "$N" "$W/in" >/dev/null
D="$W/data"
$BIN --data "$D" init >/dev/null
$BIN --data "$D" import "$W/in/gnl.xml" "$W/in/zal.xml" "$W/in/whitelist.xml" "$W/in/ocl.xml" >/dev/null
$BIN --data "$D" publish -m "audit bench" >/dev/null
if [ "${SHAPE:-two-versions}" = issue9 ]; then
  ONE=(--interfaceversie 1.1.0 --gegevensdienst 1 --systeemrol MM-1.0.0-BZB-FHIR=https://medmij.baaa.nl/fhir/v1/gd1)
else
  ONE=(--interfaceversie 2.0.0 --gegevensdienst 1 --systeemrol MM-2.1-BZB-FHIR=https://medmij.baaa.nl/fhir/v2/gd1)
fi
for i in $(seq 1 "$PUBS"); do
  $BIN --data "$D" zorgaanbieder update baaa@medmij "${ONE[@]}" \
    --authorization-endpoint https://medmij.baaa.nl/oauth/authorize --token-endpoint "https://medmij.baaa.nl/oauth/token-$i" >/dev/null
  $BIN --data "$D" publish -m "one Zorgaanbieder changed ($i)" >/dev/null
done
timed() { # label, command...
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$W/t" "$@" >"$W/out" 2>&1 || { cat "$W/out"; exit 1; }
  read -r s kb <"$W/t"
  printf '%-44s %7.2f s  peak RSS %5d MB\n' "$label" "$s" $((kb / 1024))
}
echo "$N Zorgaanbieders, $((PUBS + 1)) publications"
timed "history export" $BIN --data "$D" history export --out "$W/audit.tar"
echo "  archive: $(($(stat -c %s "$W/audit.tar") / 1000000)) MB"
timed "history verify --cert" $BIN history verify "$W/audit.tar" --cert "$D/signing-cert.pem"
$BIN --data "$D" export --release 2.0.0 --out "$W/release" >/dev/null
ZAL="$W/release/MedMij_Zorgaanbiederslijst.xml"
echo "  release 2.0.0 ZAL (release3): $(($(stat -c %s "$ZAL") / 1000000)) MB"
timed "verify ZAL release3 --cert" $BIN verify "$ZAL" --cert "$D/signing-cert.pem"

PORT=${PORT:-18480}
$BIN --data "$D" serve --listen "127.0.0.1:$PORT" --insecure-http >"$W/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$W"' EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
URL="http://127.0.0.1:$PORT/MedMij_Zorgaanbiederslijst.xml?release=2.0.0"
t0=$(date +%s.%N)
curl -sf -o "$W/hist.xml" "$URL&volgnummer=2"
t1=$(date +%s.%N)
printf '%-44s %7.2f s  (%d MB)\n' "one historic release3 ZAL, identity" "$(python3 -c "print($t1 - $t0)")" $(($(stat -c %s "$W/hist.xml") / 1000000))
before=$(awk '/VmRSS/ {print int($2/1024)}' /proc/$SERVER/status)
pids=()
for i in $(seq 1 16); do
  curl -sf -o /dev/null --limit-rate 20M "$URL&volgnummer=$((2 + i % PUBS))" & pids+=($!)
done
wait "${pids[@]}"
peak=$(awk '/VmHWM/ {print int($2/1024)}' /proc/$SERVER/status)
echo "16 slow clients, historic ZALs without gzip:  server RSS $before MB before, peak $peak MB"
