#!/usr/bin/env bash
# The growth curve: bench/publish.sh at several registry sizes, one table.
# Usage: [SHAPE=issue9] bench/curve.sh [SIZES...]   (default 1000 10000 30000 100000;
# ~8 minutes, ~2 GB RAM; shapes in bench/gen_registry.py)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1000 10000 30000 100000)
[ -x target/release/stelselnode ] || cargo build --release
echo "shape: ${SHAPE:-two-versions}"
printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n" "N" "ZAL r2 + r3 MB" "import s" "first publish s" "peak RSS MB" "only GNL s" "one Zorgaanbieder s" "xmllint --stream, all documents s" "first / xmllint" "one ZA / xmllint"
printf "|---|---|---|---|---|---|---|---|---|---|\n"
for n in "${SIZES[@]}"; do
  out=$(bench/publish.sh "$n")
  v() { echo "$out" | grep "^$1" | head -1 | sed 's/.*: *//; s/ s$//; s/ MB$//'; }
  bytes=$(v "ZAL release2 / release3 bytes")
  mb=$(python3 -c "a,b='$bytes'.split(' / '); print(round((int(a)+int(b))/1e6))")
  first=$(v "first publish (") one=$(v "publish (one Zorgaanbieder") x=$(v "xmllint")
  r() { python3 -c "print(f'{$1 / $2:.2f}')"; }
  printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n" "$n" "$mb" "$(v "import")" "$first" \
    "$(v "first publish peak RSS")" "$(v "publish (only GNL")" "$one" "$x" "$(r "$first" "$x")" "$(r "$one" "$x")"
done
