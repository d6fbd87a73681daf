#!/usr/bin/env bash
# Memory per input byte: peak RSS of `import` (a generated Zorgaanbiederslijst of N
# Zorgaanbieders, and a Whitelist of W nodes) and of `verify` on the release3 ZAL that the
# publication of that registry produces.
# Usage: bench/memory.sh [N] [W]   (defaults 20000 and 1000000; release build)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}
W=${2:-1000000}
BIN=target/release/stelselnode
[ -x "$BIN" ] || cargo build --release
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)"; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
python3 bench/gen_registry.py "$N" "$T/in" >/dev/null
python3 - "$W" "$T/wl.xml" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    f.write('<?xml version="1.0" encoding="UTF-8"?>\n<Whitelist xmlns="xmlns://afsprakenstelsel.medmij.nl/whitelist/release2/"><Tijdstempel>2026-01-01T00:00:00Z</Tijdstempel><Volgnummer>1</Volgnummer><MedMijNodes>')
    for i in range(n):
        f.write(f"<MedMijNode><Hostname>node{i}.voorbeeld.nl</Hostname></MedMijNode>")
    f.write("</MedMijNodes></Whitelist>\n")
PY
peak() { /usr/bin/time -f "%M" "$@" 2>&1 >/dev/null | tail -1; }
ratio() { python3 -c "print(f'{$1 * 1024 / $2:.1f}')"; }
D="$T/data"
$BIN --data "$D" init >/dev/null
zal=$(stat -c %s "$T/in/zal.xml")
wl=$(stat -c %s "$T/wl.xml")
m_wl=$(peak $BIN --data "$D" import "$T/wl.xml" --dry-run)
m_zal=$(peak $BIN --data "$D" import "$T/in/gnl.xml" "$T/in/zal.xml" "$T/in/whitelist.xml" "$T/in/ocl.xml")
$BIN --data "$D" publish -m memory >/dev/null
$BIN --data "$D" export --release 2.0.0 --out "$T/r3" >/dev/null
z3=$(stat -c %s "$T/r3/MedMij_Zorgaanbiederslijst.xml")
m_v=$(peak $BIN verify "$T/r3/MedMij_Zorgaanbiederslijst.xml" --cert "$T/r3/signing-certificate.pem")
printf "%-44s %12s %10s %8s\n" "what" "input bytes" "peak KB" "RSS/byte"
printf "%-44s %12s %10s %8s\n" "import --dry-run Whitelist ($W nodes)" "$wl" "$m_wl" "$(ratio "$m_wl" "$wl")"
printf "%-44s %12s %10s %8s\n" "import ZAL release3 ($N) + GNL, WL, OCL" "$zal" "$m_zal" "$(ratio "$m_zal" "$zal")"
printf "%-44s %12s %10s %8s\n" "verify signed ZAL release3 ($N)" "$z3" "$m_v" "$(ratio "$m_v" "$z3")"
