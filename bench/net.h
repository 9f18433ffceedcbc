/*
 * memdex-bench net: the network load generator. One thread, one epoll loop, many
 * non-blocking connections, each keeping up to `pipeline` operations in flight. The same
 * engine drives every server; a driver only encodes requests and decodes replies in its
 * server's own protocol (memdex frames, RESP through hiredis's reader, Tarantool IPROTO through
 * msgpack-c). Replies arrive in request order on a connection, so the engine keeps, per
 * connection, a queue with one entry per reply still expected, pointing at its operation.
 *
 * An operation may take several requests: Redis's range is ZRANGEBYSCORE then MGET (the second
 * depends on the first), a read-modify-write is a get then a put. A driver's reply function
 * appends the follow-up request itself and says how many more replies the operation awaits.
 * Latency runs from the operation's start (closed loop: when it was sent; open loop: when it
 * was due by the schedule, so a server that falls behind is charged for the wait) to its last
 * reply.
 */
#ifndef MDX_BENCH_NET_H
#define MDX_BENCH_NET_H

#include <stddef.h>
#include <stdint.h>

#include "bench/hist.h"
#include "bench/ycsb.h"
#include "common/mp.h"

#define NET_COLL       "bench"    /* memdex collection, Tarantool space, Redis key prefix-free */
#define NET_INDEX      "by_score" /* the secondary ordered index (memdex, Tarantool) */
#define NET_REDIS_ZSET "bench:by_score"
#define NET_TNT_SPACE  512u /* the Tarantool space id the init file and the driver agree on */
#define NET_MAX_SCAN   1000u

/** One operation in flight. */
typedef struct net_op {
    bench_opdesc_t d;
    uint8_t step;   /* RMW: 0 the read, 1 the put; Redis SCAN: 0 ZRANGEBYSCORE, 1 MGET */
    uint8_t failed; /* set by the driver: a wrong or error reply */
    uint16_t left;  /* replies still expected for the current step */
    uint32_t got;   /* SCAN: records returned */
    uint64_t id;    /* memdex id / Tarantool sync of the request awaiting its reply */
    uint64_t t0;    /* start (intended start in open loop), ns */
    struct net_op *next_free;
} net_op_t;

struct net_conn;

typedef struct {
    const char *name; /* "memdex", "redis", "tarantool" */
    int default_port;
    /** Per-connection state (Redis: the hiredis reader). Returns 0 or -1. */
    int (*conn_init)(struct net_conn *c);
    void (*conn_fini)(struct net_conn *c);
    /** Blocking handshake on a fresh connection (Tarantool: read the greeting). 0 or -1. */
    int (*handshake)(struct net_conn *c, char *err, size_t errlen);
    /** Appends the request(s) of op's first step to out; sets op->left. */
    void (*encode)(struct net_conn *c, net_op_t *op, mdx_buf_t *out);
    /** Takes one reply from c's input and applies it to op (the head of the reply queue):
     *  decrements op->left, sets op->failed on a wrong reply, and may append a follow-up request
     *  to out and raise op->left. Returns 1 when a reply was taken, 0 when more bytes are needed,
     *  -1 when the stream is broken (err says why). */
    int (*reply)(struct net_conn *c, net_op_t *op, mdx_buf_t *out, char *err, size_t errlen);
    /** On a blocking socket: creates the schema when missing (reset: empties it first) and
     *  returns the number of records in *records. 0 or -1 (err says why). */
    int (*prepare)(int fd, int reset, int64_t *records, char *err, size_t errlen);
} net_driver_t;

extern const net_driver_t net_drv_memdex;
extern const net_driver_t net_drv_redis;
extern const net_driver_t net_drv_tarantool;

/** What a driver needs to build records. */
typedef struct {
    uint32_t value_size;
    const uint8_t *value; /* value_size bytes */
} net_data_t;

typedef struct net_conn {
    int fd;
    const net_driver_t *drv;
    const net_data_t *data;
    void *dstate;     /* the driver's */
    uint64_t next_id; /* request ids / syncs */
    uint8_t *in;      /* received bytes [in_off, in_len) not yet taken */
    size_t in_off, in_len, in_cap;
    mdx_buf_t out; /* to send, from out_off */
    size_t out_off;
    net_op_t **q; /* expected replies, ring */
    uint32_t q_cap, q_head, q_len;
    net_op_t *ops; /* pipeline slots */
    net_op_t *free_ops;
    uint32_t inflight;
    int epoll_out; /* EPOLLOUT registered */
} net_conn_t;

/** Appends one expected reply for op to c's queue (drivers call it for follow-ups). */
void net_conn_expect(net_conn_t *c, net_op_t *op);

typedef struct {
    const net_driver_t *drv;
    const char *host;
    int port;
    uint32_t conns, pipeline;
    double duration_s; /* used when ops == 0 */
    double warmup_s;
    uint64_t ops; /* stop after this many operations (0: run for duration_s) */
    double rate;  /* open loop at this many operations/s; 0: closed loop */
    const bench_workload_def_t *workload;
    bench_dist_t dist;
    int64_t records; /* load: how many to insert */
    uint32_t value_size;
    uint32_t scan_len, scan_max;
    uint64_t expected_ops; /* sizes the scrambled zipfian (see bench_workload_init) */
    uint64_t seed;
    int reset; /* empty the data set before starting (always for load) */
} net_cfg_t;

typedef struct {
    uint64_t issued[BENCH_OP__COUNT];
    uint64_t ok[BENCH_OP__COUNT];
    uint64_t failed[BENCH_OP__COUNT];
    uint64_t measured[BENCH_OP__COUNT]; /* completed inside the measured window */
    bench_hist_t hist[BENCH_OP__COUNT];
    bench_hist_t all;
    double elapsed_s;       /* the measured window */
    int64_t records_before; /* records on the server when the run started */
    int64_t records_after;  /* keys the workload knows to exist at the end */
    uint64_t late;          /* open loop: operations sent after their due time */
} net_result_t;

int net_result_init(net_result_t *r);
void net_result_fini(net_result_t *r);

/** Runs one benchmark. Returns 0, or -1 when it could not run (connection refused, a broken
 *  stream, no memory), with a message in err. Failed operations do not make it fail: they are
 *  counted in r->failed. */
int net_run(const net_cfg_t *cfg, net_result_t *r, char *err, size_t errlen);

/** Connects a blocking TCP socket with TCP_NODELAY. Returns the fd or -1 (err set). */
int net_connect(const char *host, int port, char *err, size_t errlen);
/** Blocking helpers for prepare(): write all, read at least want bytes into b. 0 or -1. */
int net_write_all(int fd, const void *p, size_t n);
int net_read_more(int fd, mdx_buf_t *b);

#endif
