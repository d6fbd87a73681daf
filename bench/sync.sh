#!/usr/bin/env bash
# Consumer benchmark: a registry of N Zorgaanbieders, published and served; a consumer
# (`stelselnode sync`) takes its first copy, then one Zorgaanbieder changes and is
# published, and the consumer, one Volgnummer behind, syncs again by deltas. Beside it,
# in the same run, the path it replaces: download the whole release3 ZAL and
# `xmllint --stream --schema` it. Also what the deltas cost the publication (the server's
# debug log: the publication runs in the server, through its admin socket).
# Usage: bench/sync.sh [N]   (default 10000; release build; needs curl and xmllint)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
BIN=$PWD/target/release/stelselnode
[ -x "$BIN" ] || cargo build --release
W=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$W"' EXIT
python3 bench/gen_registry.py "$N" "$W/in"
D="$W/data"
$BIN --data "$D" init >/dev/null
$BIN --data "$D" import "$W/in/gnl.xml" "$W/in/zal.xml" "$W/in/whitelist.xml" "$W/in/ocl.xml" >/dev/null
t0=$(date +%s.%N)
$BIN --data "$D" publish -m bench >/dev/null
t1=$(date +%s.%N)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RUST_LOG=stelselnode=debug,stelselnode::access=off $BIN --data "$D" serve --insecure-http --listen "127.0.0.1:$PORT" >"$W/serve.out" 2>"$W/serve.err" &
SERVER=$!
until curl -sf "http://127.0.0.1:$PORT/health" >/dev/null; do sleep 0.2; done
BASE="http://127.0.0.1:$PORT/"
CERT="$D/signing-cert.pem"
t2=$(date +%s.%N)
$BIN sync "$BASE" --api 2 --out "$W/lists" --cert "$CERT" --once >"$W/first"
t3=$(date +%s.%N)
$BIN --data "$D" zorgaanbieder update baaa@medmij --interfaceversie 2.0.0 --gegevensdienst 1 \
  --systeemrol MM-2.1-BZB-FHIR=https://medmij.baaa.nl/fhir/v2/gd1 \
  --authorization-endpoint https://medmij.baaa.nl/oauth/authorize \
  --token-endpoint https://medmij.baaa.nl/oauth/token-bench >/dev/null
t4=$(date +%s.%N)
$BIN --data "$D" publish -m "bench: one Zorgaanbieder changed" >/dev/null
t5=$(date +%s.%N)
# A consumer runs on a machine of its own. Here it shares the disk with the server, which
# removes the replaced documents' files (480 MB at 100k) right after a publication: the
# sync starts once that is done, so it is not timed with the server's housekeeping.
for _ in $(seq 100); do grep -q "prune " "$W/serve.err" && break; sleep 0.1; done
sync
t5b=$(date +%s.%N)
RUST_LOG=stelselnode=debug $BIN sync "$BASE" --api 2 --out "$W/lists" --cert "$CERT" --once >"$W/second" 2>"$W/sync.log"
t6=$(date +%s.%N)
# The path it replaces: the whole ZAL downloaded and validated as a stream.
curl -s -o "$W/zal.xml" "${BASE}MedMij_Zorgaanbiederslijst.xml?api=2"
t7=$(date +%s.%N)
xmllint --noout --stream --schema schemas/zorgaanbiederslijst-release3.xsd "$W/zal.xml" 2>/dev/null
t8=$(date +%s.%N)
f() { python3 -c "print(f'{$2 - $1:.2f}')"; }
zal=$(stat -c %s "$W/zal.xml")
fetched=$(sed -n 's/.*(\([0-9]*\) bytes fetched).*/\1/p' "$W/second")
echo "Zorgaanbieders:                       $N"
echo "ZAL release3 (snapshot) bytes:        $zal"
echo "first publish:                        $(f "$t0" "$t1") s"
echo "publish, one Zorgaanbieder changed:   $(f "$t4" "$t5") s"
echo "sync, first copy:                     $(f "$t2" "$t3") s  ($(cat "$W/first"))"
echo "sync, one Volgnummer behind:          $(f "$t5b" "$t6") s  ($(cat "$W/second"))"
echo "  bytes fetched / ZAL snapshot:       $(python3 -c "print(f'{$fetched / $zal * 100:.4f} %')")"
echo "download whole ZAL (curl):            $(f "$t6" "$t7") s"
echo "xmllint --stream --schema on it:      $(f "$t7" "$t8") s"
echo "publication phases (one changed):"
sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^.*DEBUG [a-z:_]*: /  /' "$W/serve.err" | grep -E "^  (snapshot|rules|hashes|deltas|commit|swap|prune)"
echo "sync phases (one Volgnummer behind):"
sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^.*DEBUG [a-z:_]*: /  /' "$W/sync.log"
