#!/usr/bin/env bash
# The operator's side at scale, through a running server on a generated registry of N
# Zorgaanbieders: start-up until /health is 200 and the idle server's RSS, the latency of
# single edits (each a CLI process talking to the server over its admin socket, including
# the edit's integrity check and commit), and how much a publication in which one
# Zorgaanbieder changed adds to the data directory.
# Usage: bench/operate.sh [N] [EDITS]   (defaults 10000 and 20; release build)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
K=${2:-20}
BIN=$PWD/target/release/stelselnode
[ -x "$BIN" ] || cargo build --release
W=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
python3 bench/gen_registry.py "$N" "$W/in" >/dev/null
D="$W/data"
$BIN --data "$D" init >/dev/null
$BIN --data "$D" import "$W/in/gnl.xml" "$W/in/zal.xml" "$W/in/whitelist.xml" "$W/in/ocl.xml" >/dev/null
$BIN --data "$D" publish -m bench >/dev/null

start() {
  t0=$(date +%s.%N)
  RUST_LOG=warn $BIN --data "$D" serve --insecure-http --listen 127.0.0.1:0 >"$W/out" 2>&1 &
  PID=$!
  until grep -q "listening on" "$W/out" 2>/dev/null; do sleep 0.005; done
  URL=$(grep -o 'http://[0-9.:]*' "$W/out" | head -1)
  until curl -sf -o /dev/null "$URL/health"; do sleep 0.005; done
  t1=$(date +%s.%N)
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=; }
rss_mb() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$PID/status"; }
docs_mb() { du -sm "$D" | cut -f1; }

start
startup=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
# The idle server after every list was fetched once (identity and gzip).
for f in MedMij_Zorgaanbiederslijst.xml MedMij_OAuthclientlist.xml MedMij_Whitelist.xml MedMij_Gegevensdienstnamenlijst.xml; do
  for q in "release=1.1.2" "release=2.0.0"; do
    curl -s -o /dev/null "$URL/$f?$q"
    curl -s -o /dev/null -H 'Accept-Encoding: gzip' "$URL/$f?$q"
  done
done
sleep 1
idle=$(rss_mb)
served=$(python3 - "$URL" <<'PY'
import sys, urllib.request
total = 0
for f in ["MedMij_Zorgaanbiederslijst.xml", "MedMij_OAuthclientlist.xml", "MedMij_Whitelist.xml", "MedMij_Gegevensdienstnamenlijst.xml"]:
    for q in ["release=1.1.2", "release=2.0.0"]:
        for enc in ["identity", "gzip"]:
            r = urllib.request.urlopen(urllib.request.Request(f"{sys.argv[1]}/{f}?{q}", headers={"Accept-Encoding": enc}))
            total += len(r.read())
print(round(total / 1e6))
PY
)

edits=$(python3 - "$BIN" "$D" "$K" <<'PY'
import statistics, subprocess, sys, time
bin, d, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
def timed(args):
    t = time.perf_counter()
    subprocess.run([bin, "--data", d, *args], check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - t) * 1000
def row(what, runs):
    ms = [timed(a) for a in runs]
    print(f"  {what:<44} median {statistics.median(ms):6.1f} ms   max {max(ms):6.1f} ms   ({len(ms)} edits)")
row("whitelist add HOST", [["whitelist", "add", f"bench{i}.voorbeeld.nl"] for i in range(k)])
row("zorgaanbieder update (token endpoint)", [["zorgaanbieder", "update", "baaa@medmij", "--interfaceversie", "2.0.0",
     "--gegevensdienst", "1", "--authorization-endpoint", "https://medmij.baaa.nl/oauth/v2/authorize",
     "--token-endpoint", f"https://medmij.baaa.nl/oauth/v2/token{i}", "--systeemrol", "MM-2.1-BZB-FHIR=https://medmij.baaa.nl/fhir/v2/gd1"] for i in range(k)])
row("oauthclient update --organisatienaam", [["oauthclient", "update", "pgo0.voorbeeld.nl", "--organisatienaam", f"PGO {i}"] for i in range(k)])
row("zorgaanbieder show", [["zorgaanbieder", "show", "baaa@medmij"] for i in range(k)])
PY
)
$BIN --data "$D" publish -m "bench edits" >/dev/null
size() { du -sb "$1" 2>/dev/null | cut -f1 || echo 0; }
b_docs=$(size "$D/documents"); b_redb=$(size "$D/registry.redb")
P=3
for i in $(seq 1 $P); do
  $BIN --data "$D" zorgaanbieder update baaa@medmij --interfaceversie 2.0.0 --gegevensdienst 1 \
    --authorization-endpoint https://medmij.baaa.nl/oauth/v2/authorize --token-endpoint "https://medmij.baaa.nl/oauth/v2/token-p$i" \
    --systeemrol MM-2.1-BZB-FHIR=https://medmij.baaa.nl/fhir/v2/gd1 >/dev/null
  $BIN --data "$D" publish -m "one Zorgaanbieder changed ($i)" >/dev/null
done
a_docs=$(size "$D/documents"); a_redb=$(size "$D/registry.redb")
zal=$(curl -s "$URL/MedMij_Zorgaanbiederslijst.xml?release=1.1.2" | wc -c)
zal3=$(curl -s "$URL/MedMij_Zorgaanbiederslijst.xml?release=2.0.0" | wc -c)
stop

echo "Zorgaanbieders:                               $N"
echo "start-up until /health is 200:                $startup s"
echo "idle RSS after fetching every list once:      $idle MB   (documents served: $served MB, identity + gzip)"
echo "edits through the running server (CLI process included):"
echo "$edits"
echo "data directory growth per publication in which one Zorgaanbieder changed (mean of $P):"
echo "  documents/ $(( (a_docs - b_docs) / P / 1000 )) kB, registry.redb $(( (a_redb - b_redb) / P / 1000 )) kB"
echo "  (the two ZALs each such publication re-publishes: $(( (zal + zal3) / 1000 )) kB uncompressed)"
echo "data directory: $(( $(size "$D") / 1000000 )) MB (documents/ $(( a_docs / 1000000 )) MB, registry.redb $(( a_redb / 1000000 )) MB)"
