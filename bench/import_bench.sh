#!/bin/sh
# Import benchmark: generates N small NDJSON records (default 1,000,000), starts a release
# memdexd on a free loopback port, loads them with `memdex import --key id`, checks that the
# collection holds all N, and prints one machine-readable line:
#
#   import records=1000000 seconds=1.234 records_per_s=810372
#
# seconds is the wall time of the whole `memdex import` process (start-up, reading, JSON
# parsing, pipelined puts, the last reply). Not run by ctest.
#
# Usage: bench/import_bench.sh [RECORDS] [BUILD_DIR]   (after `make release`)
set -eu

N=${1:-1000000}
BUILD=${2:-build/release}
MEMDEX=$BUILD/memdex
MEMDEXD=$BUILD/memdexd
for b in "$MEMDEX" "$MEMDEXD"; do
	if [ ! -x "$b" ]; then
		echo "import_bench: $b not found; run 'make release' first" >&2
		exit 2
	fi
done

TMP=$(mktemp -d)
SRV=""
cleanup() {
	[ -n "$SRV" ] && kill "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# Records shaped like a small user table: 5 fields, about 75 bytes a line.
awk -v n="$N" 'BEGIN {
	for (i = 0; i < n; i++)
		printf "{\"id\":%d,\"name\":\"user%d\",\"age\":%d,\"city\":\"city%d\",\"active\":%s}\n",
			i, i, 18 + i % 60, i % 100, (i % 2 ? "true" : "false")
}' >"$TMP/records.ndjson"

"$MEMDEXD" --listen 127.0.0.1:0 --data-dir "$TMP/data" 2>"$TMP/server.log" &
SRV=$!
# The server prints its port once it listens; give it up to 10 s.
PORT=""
i=0
while [ -z "$PORT" ] && [ $i -lt 200 ]; do
	PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/server.log" | head -n 1)
	[ -n "$PORT" ] || { kill -0 "$SRV" 2>/dev/null || break; sleep 0.05; }
	i=$((i + 1))
done
if [ -z "$PORT" ]; then
	echo "import_bench: memdexd did not start:" >&2
	cat "$TMP/server.log" >&2
	exit 1
fi

t0=$(date +%s%N)
"$MEMDEX" -p "$PORT" import bench "$TMP/records.ndjson" --key id >"$TMP/import.out"
t1=$(date +%s%N)
cat "$TMP/import.out" >&2

# Every record must be there.
got=$("$MEMDEX" -p "$PORT" stats --json | sed -n 's/.*"collections":{"bench":{"records":\([0-9]*\).*/\1/p')
if [ "$got" != "$N" ]; then
	echo "import_bench: the collection holds '$got' records, not $N" >&2
	exit 1
fi

awk -v n="$N" -v ns=$((t1 - t0)) 'BEGIN {
	s = ns / 1e9
	printf "import records=%d seconds=%.3f records_per_s=%.0f\n", n, s, n / s
}'
