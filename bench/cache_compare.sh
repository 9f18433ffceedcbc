#!/bin/sh
# bench/cache_compare.sh: hit ratios of memdex's eviction policies and Redis's, side by side.
#
# Installs redis-server from Debian's packages when missing, starts it on loopback with
# persistence off (no save, appendonly no, io-threads 1; maxmemory and maxmemory-policy are
# set by memdex-bench cache for each run), runs `memdex-bench cache --redis` with the options
# given (see memdex-bench cache --help; defaults: 1,000,000 keys, capacity 100,000, 1,000,000
# warm-up + 10,000,000 measured requests in batches of 64, both key distributions), prints the
# table, and stops Redis. With --json the table is replaced by one JSON object.
#
# Usage: bench/cache_compare.sh [memdex-bench cache options]
# Build first (make release; `make bench-cache` does both).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/build/release}
case "${1:-}" in
-h|--help) sed -n '2,13p' "$0"; exit 0 ;;
esac

"$ROOT/scripts/deps.sh" redis-server libhiredis-dev python3
[ -x "$BIN/memdex-bench" ] || { echo "cache_compare.sh: $BIN/memdex-bench missing: run make release" >&2; exit 1; }

WORK=$(mktemp -d /tmp/memdex-cache.XXXXXX)
cp "$BIN/memdex-bench" "$WORK/"
RPID=""
cleanup() {
	if [ -n "$RPID" ]; then
		kill "$RPID" 2>/dev/null || true
		wait "$RPID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --bind 127.0.0.1 --port "$PORT" --dir "$WORK" --save '' --appendonly no \
	--io-threads 1 --protected-mode no --daemonize no --loglevel warning >"$WORK/redis.log" 2>&1 &
RPID=$!
python3 - "$PORT" <<'PY' || { echo "cache_compare.sh: redis did not start:" >&2; cat "$WORK/redis.log" >&2; exit 1; }
import socket, sys, time
end = time.time() + 60
while time.time() < end:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
PY

echo "cache: commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)," \
	"$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(nproc) cores," \
	"load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$WORK/memdex-bench" cache --redis "127.0.0.1:$PORT" "$@"
