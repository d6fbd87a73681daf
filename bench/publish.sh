#!/usr/bin/env bash
# Publish benchmark: import a generated registry of N Zorgaanbieders, then time a full
# publish (render every rendition, XSD-validate, sign, self-verify, commit), a publish in
# which only the GNL changed, one in which one Zorgaanbieder changed (incremental
# validation) and, for comparison, `xmllint --stream --schema` on every document of the
# published set, one after another.
# Usage: [SHAPE=issue9] [KEEP=DIR] bench/publish.sh [N]   (default 10000; release build;
# shapes in bench/gen_registry.py; KEEP=DIR keeps the publications' debug logs there)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
BIN=target/release/stelselnode
[ -x "$BIN" ] || cargo build --release
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)"; exit 1; }
W=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] && cp "$W"/phases* "$KEEP"/ ; rm -rf "$W"' EXIT
python3 bench/gen_registry.py "$N" "$W/in"
D="$W/data"
$BIN --data "$D" init >/dev/null
t0=$(date +%s.%N)
$BIN --data "$D" import "$W/in/gnl.xml" "$W/in/zal.xml" "$W/in/whitelist.xml" "$W/in/ocl.xml" >/dev/null
t1=$(date +%s.%N)
RUST_LOG=stelselnode=debug /usr/bin/time -f "%M" -o "$W/rss" $BIN --data "$D" publish -m bench >/dev/null 2>"$W/phases"
t2=$(date +%s.%N)
$BIN --data "$D" gegevensdienst update 7 --weergavenaam "Afspraken (bench)" >/dev/null
t3=$(date +%s.%N)
$BIN --data "$D" publish -m "bench: only the GNL changes" >/dev/null
t4=$(date +%s.%N)
# One Zorgaanbieder changes (a new token endpoint in its first offering), as in day-to-day
# operation: the ZALs are made again, validating only that Zorgaanbieder's elements.
if [ "${SHAPE:-two-versions}" = issue9 ]; then
  ONE=(--interfaceversie 1.1.0 --gegevensdienst 1 --systeemrol MM-1.0.0-BZB-FHIR=https://medmij.baaa.nl/fhir/v1/gd1)
else
  ONE=(--interfaceversie 2.0.0 --gegevensdienst 1 --systeemrol MM-2.1-BZB-FHIR=https://medmij.baaa.nl/fhir/v2/gd1)
fi
$BIN --data "$D" zorgaanbieder update baaa@medmij "${ONE[@]}" \
  --authorization-endpoint https://medmij.baaa.nl/oauth/authorize --token-endpoint https://medmij.baaa.nl/oauth/token-bench >/dev/null
t7=$(date +%s.%N)
RUST_LOG=stelselnode=debug /usr/bin/time -f "%M" -o "$W/rss1" $BIN --data "$D" publish -m "bench: one Zorgaanbieder changed" >/dev/null 2>"$W/phases1"
t8=$(date +%s.%N)
$BIN --data "$D" export --release 1.1.2 --out "$W/r2" >/dev/null
$BIN --data "$D" export --release 2.0.0 --out "$W/r3" >/dev/null
z2=$(stat -c %s "$W/r2/MedMij_Zorgaanbiederslijst.xml")
z3=$(stat -c %s "$W/r3/MedMij_Zorgaanbiederslijst.xml")
# Every document of the published set, each against its XSD: what a publication validates.
t5=$(date +%s.%N)
ndocs=$(bench/xmllint-all.sh "$D")
t6=$(date +%s.%N)
f() { python3 -c "print(f'{$2 - $1:.2f}')"; }
echo "Zorgaanbieders:                 $N (shape ${SHAPE:-two-versions}, bench/gen_registry.py)"
echo "ZAL release2 / release3 bytes:  $z2 / $z3"
echo "import (4 lists):               $(f "$t0" "$t1") s"
echo "first publish (6 renditions):   $(f "$t1" "$t2") s"
echo "first publish peak RSS:         $(( $(cat "$W/rss") / 1024 )) MB"
echo "edit GNL entry:                 $(f "$t2" "$t3") s"
echo "publish (only GNL changed):     $(f "$t3" "$t4") s"
echo "publish (one Zorgaanbieder):    $(f "$t7" "$t8") s"
echo "  its peak RSS:                 $(( $(cat "$W/rss1") / 1024 )) MB"
echo "xmllint --stream, all $ndocs documents: $(f "$t5" "$t6") s"
phases() { sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^.*DEBUG [a-z:_]*: /  /' "$1" | grep -E "^  (snapshot|rules|hashes|commit|prune|deltas|Zorgaanbiederslijst|Whitelist)"; }
echo "phases of the first publish (RUST_LOG=stelselnode=debug):"
phases "$W/phases"
echo "phases of the publish with one Zorgaanbieder changed:"
phases "$W/phases1"
