#!/usr/bin/env bash
# What issue 9 compares a publication with: `xmllint --stream` validating every document
# of a published set (DATA/documents/*.xml) one after another, each against the XSD its
# root's namespace names. Prints how many documents it validated; fails on an invalid one
# or one without an XSD.
# Usage: bench/xmllint-all.sh DATA
set -euo pipefail
D=$(cd "$1" && pwd)
cd "$(dirname "$0")/.."
DOCS=()
for doc in "$D"/documents/*.xml; do
  xsd=$(head -c 2000 "$doc" | grep -o -m1 'xmlns="xmlns://afsprakenstelsel.medmij.nl/[a-z]*/release[0-9]*/"' \
    | sed -E 's|.*medmij.nl/([a-z]+)/(release[0-9]+)/"|schemas/\1-\2.xsd|')
  [ -f "$xsd" ] || { echo "no XSD for $doc" >&2; exit 1; }
  DOCS+=("$xsd" "$doc")
done
for ((i = 0; i < ${#DOCS[@]}; i += 2)); do
  xmllint --noout --stream --schema "${DOCS[i]}" "${DOCS[i+1]}" 2>/dev/null
done
echo $(( ${#DOCS[@]} / 2 ))
