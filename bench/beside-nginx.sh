# Sourced by bench/serve.sh and bench/revalidate.sh (not run on its own): with N and BIN
# set, installs wrk and nginx-light when missing (root), makes a temporary directory W
# (removed on exit, with the processes in PIDS), a data directory D holding the demo
# registry (N=0) or a generated one of N Zorgaanbieders, published, and its static export
# in W/export for nginx.
[ -x "$BIN" ] || cargo build --release
for p in wrk nginx; do
  command -v "$p" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${p/nginx/nginx-light}" >/dev/null; }
done
W=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.5; rm -rf "$W"; }
trap cleanup EXIT
D="$W/data"
if [ "$N" = 0 ]; then
  $BIN --data "$D" init --demo >/dev/null
else
  python3 bench/gen_registry.py "$N" "$W/in" >/dev/null
  $BIN --data "$D" init >/dev/null
  $BIN --data "$D" import "$W/in/gnl.xml" "$W/in/zal.xml" "$W/in/whitelist.xml" "$W/in/ocl.xml" >/dev/null
  $BIN --data "$D" publish -m bench >/dev/null
fi
$BIN --data "$D" export-static "$W/export" >/dev/null
