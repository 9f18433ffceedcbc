#!/bin/sh
# bench/compare.sh: memdex against Redis and Tarantool, side by side, on this machine.
#
# Installs redis-server and tarantool from Debian's packages when missing, starts each server
# on loopback with persistence off (memdexd: snapshot rules off; Redis: no save, appendonly no,
# io-threads 1; Tarantool: memtx, wal_mode none, no checkpoints), loads the same records into
# each with memdex-bench net, then runs every case against the three in interleaved rounds
# (memdex, redis, tarantool, memdex, redis, ...) and prints the median ops/s and p99 of each
# with the ratios memdex/Redis and memdex/Tarantool. With 2 or more cores the servers run
# pinned to core 0 and the load generator to core 1 (taskset), so that they do not take turns
# on one core. It stops the servers it started, and writes the results, the machine, the commit
# and the command into docs/benchmarks-net.md (between the results markers; the text around
# them is kept).
#
# Usage: bench/compare.sh [--duration S] [--warmup S] [--rounds N] [--records N]
#                         [--connections N] [--cases LIST] [--no-doc] [--keep DIR]
# Defaults: 8 s measured + 2 s warm-up per run, 3 rounds, 1,000,000 records, 50 connections:
# about 18 minutes in all. Build first (make release; `make bench-compare` does both).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/build/release}
DURATION=8
WARMUP=2
ROUNDS=3
RECORDS=1000000
CONNS=50
CASES="get-p1 get-p16 put-p1 put-p16 range10 ycsb-a ycsb-b ycsb-c ycsb-d ycsb-e ycsb-f"
WRITE_DOC=1
KEEP=""
CMDLINE="bench/compare.sh $*"

while [ $# -gt 0 ]; do
	case "$1" in
	--duration) DURATION=$2; shift 2 ;;
	--warmup) WARMUP=$2; shift 2 ;;
	--rounds) ROUNDS=$2; shift 2 ;;
	--records) RECORDS=$2; shift 2 ;;
	--connections) CONNS=$2; shift 2 ;;
	--cases) CASES=$2; shift 2 ;;
	--no-doc) WRITE_DOC=0; shift ;;
	--keep) KEEP=$2; shift 2 ;;
	-h|--help) sed -n '2,22p' "$0"; exit 0 ;;
	*) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
	esac
done

"$ROOT/scripts/deps.sh" redis-server tarantool libhiredis-dev python3
for b in memdexd memdex-bench; do
	[ -x "$BIN/$b" ] || { echo "compare.sh: $BIN/$b missing: run make release" >&2; exit 1; }
done

WORK=${KEEP:-$(mktemp -d /tmp/memdex-compare.XXXXXX)}
mkdir -p "$WORK/bin"
# Private copies: a rebuild of the tree during the run must not swap binaries under it.
cp "$BIN/memdexd" "$BIN/memdex-bench" "$WORK/bin/"
BIN=$WORK/bin
PIDS=""
cleanup() {
	for p in $PIDS; do
		kill "$p" 2>/dev/null || true
	done
	for p in $PIDS; do
		wait "$p" 2>/dev/null || true
	done
	[ -n "$KEEP" ] || rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

if [ "$(nproc)" -ge 2 ]; then
	SRV="taskset -c 0"
	CLI="taskset -c 1"
	PINNING="servers pinned to core 0, memdex-bench to core 1 (taskset)"
else
	SRV=""
	CLI=""
	PINNING="no pinning (one core)"
fi

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
	python3 - "$1" <<'PY'
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
}

MPORT=$(free_port)
RPORT=$(free_port)
TPORT=$(free_port)

# memdexd: snapshots off when this build has the options.
MD_OPTS=""
if "$BIN/memdexd" --help 2>&1 | grep -q snapshot_rules; then
	MD_OPTS="--snapshot-rules off"
fi
if "$BIN/memdexd" --help 2>&1 | grep -q snapshot_on_shutdown; then
	MD_OPTS="$MD_OPTS --snapshot-on-shutdown no"
fi
mkdir -p "$WORK/memdex" "$WORK/redis" "$WORK/tarantool"
# shellcheck disable=SC2086
$SRV "$BIN/memdexd" --listen "127.0.0.1:$MPORT" --data-dir "$WORK/memdex" --log-level warn \
	$MD_OPTS >"$WORK/memdexd.log" 2>&1 &
PIDS="$PIDS $!"

# shellcheck disable=SC2086
$SRV redis-server --bind 127.0.0.1 --port "$RPORT" --dir "$WORK/redis" --save '' \
	--appendonly no --io-threads 1 --protected-mode no --daemonize no --loglevel warning \
	>"$WORK/redis.log" 2>&1 &
PIDS="$PIDS $!"

cat >"$WORK/tarantool/init.lua" <<LUA
-- memtx only, no write-ahead log, no snapshots: an in-memory server like the other two.
box.cfg{
    listen = '127.0.0.1:$TPORT',
    work_dir = '$WORK/tarantool',
    memtx_memory = 4 * 1024 * 1024 * 1024,
    wal_mode = 'none',
    checkpoint_interval = 0,
    checkpoint_count = 1,
    net_msg_max = 4096,
    readahead = 1024 * 1024,
    log_level = 4,
}
box.schema.user.grant('guest', 'read,write,execute,create,drop', 'universe', nil,
                      {if_not_exists = true})
local s = box.schema.space.create('bench', {id = 512, engine = 'memtx', if_not_exists = true})
s:format({{name = 'key', type = 'string'}, {name = 'score', type = 'unsigned'},
          {name = 'value', type = 'string'}})
s:create_index('primary', {type = 'hash', parts = {'key'}, if_not_exists = true})
s:create_index('by_score', {type = 'tree', unique = false, parts = {'score'},
                            if_not_exists = true})
LUA
# shellcheck disable=SC2086
(cd "$WORK/tarantool" && exec $SRV tarantool init.lua) >"$WORK/tarantool.log" 2>&1 &
PIDS="$PIDS $!"

for p in $MPORT $RPORT $TPORT; do
	wait_port "$p" || { echo "compare.sh: no server on port $p; logs in $WORK" >&2; KEEP=$WORK; exit 1; }
done

SYSTEMS="memdex redis tarantool"
addr() {
	case "$1" in
	memdex) echo "127.0.0.1:$MPORT" ;;
	redis) echo "127.0.0.1:$RPORT" ;;
	tarantool) echo "127.0.0.1:$TPORT" ;;
	esac
}

case_args() {
	case "$1" in
	get-p1) echo "--workload get --pipeline 1" ;;
	get-p16) echo "--workload get --pipeline 16" ;;
	put-p1) echo "--workload put --pipeline 1" ;;
	put-p16) echo "--workload put --pipeline 16" ;;
	range10) echo "--workload range --scan-length 10 --pipeline 1" ;;
	ycsb-*) echo "--workload $1 --pipeline 1" ;;
	*) echo "compare.sh: unknown case $1" >&2; exit 2 ;;
	esac
}

RES="$WORK/results"
mkdir -p "$RES"
echo "compare: $RECORDS records, $CONNS connections, ${DURATION}s (+${WARMUP}s warm-up) x $ROUNDS rounds; $PINNING" >&2
for s in $SYSTEMS; do
	echo "compare: loading $s" >&2
	$CLI "$BIN/memdex-bench" net --server "$s" --addr "$(addr "$s")" --workload load \
		--records "$RECORDS" --connections "$CONNS" --pipeline 16 --json >"$RES/load.$s.1.json"
done
r=1
while [ "$r" -le "$ROUNDS" ]; do
	for c in $CASES; do
		for s in $SYSTEMS; do
			echo "compare: round $r/$ROUNDS $c $s" >&2
			# shellcheck disable=SC2046
			$CLI "$BIN/memdex-bench" net --server "$s" --addr "$(addr "$s")" $(case_args "$c") \
				--connections "$CONNS" --duration "$DURATION" --warmup "$WARMUP" --seed "$r" \
				--json >"$RES/$c.$s.$r.json" || echo "compare: $c $s round $r failed" >&2
		done
	done
	r=$((r + 1))
done

COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	COMMIT="$COMMIT (with uncommitted changes)"
fi
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
CORES=$(nproc)
REDIS_V=$(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')
TNT_V=$(tarantool --version | head -1)
DOC=""
[ "$WRITE_DOC" = 1 ] && DOC="$ROOT/docs/benchmarks-net.md"
python3 "$ROOT/bench/compare_report.py" --results "$RES" --cases "$CASES" --rounds "$ROUNDS" \
	--meta "command=$CMDLINE" --meta "commit=$COMMIT" \
	--meta "cpu=$CPU" --meta "cores=$CORES" --meta "date=$(date -u +%Y-%m-%dT%H:%MZ)" \
	--meta "redis=$REDIS_V" --meta "tarantool=$TNT_V" --meta "pinning=$PINNING" \
	--meta "memdexd_opts=${MD_OPTS:-none}" \
	--meta "setup=$RECORDS records, 100-byte values, $CONNS connections, ${DURATION} s measured after ${WARMUP} s warm-up per run, $ROUNDS rounds" \
	${DOC:+--doc "$DOC"}
