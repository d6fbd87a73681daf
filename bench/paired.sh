#!/usr/bin/env bash
# The first publication against xmllint, side by side: ROUNDS times, a fresh copy of the
# same imported registry is published, then xmllint --stream validates every document that
# publication made (each against the XSD its namespace names), one after another. Pairs
# taken moments apart cancel most of this machine's drift; the median ratio is the figure.
# Usage: [SHAPE=issue9] bench/paired.sh [N] [ROUNDS]   (default 100000 5; release build)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
ROUNDS=${2:-5}
BIN=target/release/stelselnode
[ -x "$BIN" ] || cargo build --release
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
python3 bench/gen_registry.py "$N" "$W/in" >/dev/null
$BIN --data "$W/imported" init >/dev/null
$BIN --data "$W/imported" import "$W/in/gnl.xml" "$W/in/zal.xml" "$W/in/whitelist.xml" "$W/in/ocl.xml" >/dev/null
now() { date +%s.%N; }
ratios=()
echo "shape ${SHAPE:-two-versions}, $N Zorgaanbieders"
for ((r = 1; r <= ROUNDS; r++)); do
  rm -rf "$W/data" && cp -r "$W/imported" "$W/data" && sync
  t0=$(now)
  $BIN --data "$W/data" publish -m paired >/dev/null
  t1=$(now)
  bench/xmllint-all.sh "$W/data" >/dev/null
  t2=$(now)
  read -r p x q < <(python3 -c "p=$t1-$t0; x=$t2-$t1; print(f'{p:.2f} {x:.2f} {p/x:.2f}')")
  ratios+=("$q")
  echo "round $r: first publish $p s, xmllint (all documents) $x s, ratio $q"
done
echo "median ratio: $(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')"
