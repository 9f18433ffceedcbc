/*
 * bench_wire: what the benchmarks that start their own memdexd share: starting and stopping a
 * server process (pinned to a core if asked), blocking request/reply connections that speak
 * memdex frames, paths into msgpack replies such as `stats`, and a closed-loop load from many
 * non-blocking connections (one thread, one epoll loop, one request in flight per connection).
 *
 * The load counts each reply in the window a controlling thread selects through *phase when
 * the reply arrives, so windows with and without an event (a snapshot, a mass expiry) are
 * measured by the same connections under the same background load. A window is a latency
 * histogram per kind (get, put), the operations, the wrong replies and the replies slower than
 * BENCH_STALL_NS.
 *
 * Thread: a bench_bconn_t and a running load belong to the thread that uses them; only *phase
 * and *stop are written by another thread.
 */
#ifndef MDX_BENCH_WIRE_H
#define MDX_BENCH_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bench/bench.h"
#include "bench/hist.h"
#include "common/mp.h"

#define BENCH_STALL_NS (5u * 1000000u) /* a reply slower than this is a stall */

/* ---- processes ---- */

/** A TCP port on 127.0.0.1 that was free a moment ago, or -1. */
int bench_free_port(void);
/** A blocking TCP connection to 127.0.0.1:port with TCP_NODELAY, or -1. */
int bench_tcp_connect(int port);
/** Pins the calling thread (and what it later starts) to one CPU; cpu < 0 does nothing.
 *  Returns 0 or -1. */
int bench_pin_cpu(int cpu);
/** Starts argv (argv[0] a path) with stdout and stderr to logpath, pinned to cpu (< 0: not
 *  pinned), and waits until port accepts connections (at most 30 s). Returns the pid, or -1
 *  after printing why (the log names the cause). */
pid_t bench_spawn(const char *const argv[], const char *logpath, int port, int cpu);
/** SIGKILL and reap. */
void bench_stop(pid_t pid);
/** A "Key:   123 kB" line of /proc/PID/<file>, in KiB; -1 when absent. */
long bench_proc_kb(pid_t pid, const char *file, const char *key);
/** Writes "<directory of this executable>/name" into out (size n). */
void bench_sibling_path(const char *name, char *out, size_t n);

/* ---- blocking request/reply connections ---- */

typedef struct {
    int fd;
    mdx_buf_t in; /* received; [off, in.len) not yet taken */
    size_t off;
} bench_bconn_t;

/** Writes all n bytes (EINTR retried). 0 or -1. */
int bench_send_all(int fd, const void *p, size_t n);
/** Reads what is there (at least one byte) into c->in. 0 or -1 (EOF or an error). */
int bench_read_more(bench_bconn_t *c);
/** The next memdex reply: status and a view of its body, valid until the next read on c.
 *  0, or -1 when the stream broke or the frame is not a reply. */
int bench_md_reply(bench_bconn_t *c, int *status, const uint8_t **body, size_t *blen);
/** Sends the frames in req (borrowed) and reads one reply, as bench_md_reply. */
int bench_md_roundtrip(bench_bconn_t *c, const mdx_buf_t *req, int *status, const uint8_t **body,
                       size_t *blen);
/** Calls op without arguments, as bench_md_roundtrip. */
int bench_md_call(bench_bconn_t *c, const char *op, int *status, const uint8_t **body,
                  size_t *blen);
/** A value in a msgpack map by a NULL-terminated path of keys ("snapshot", "last", "bytes").
 *  0, or -1 when a key is missing. */
int bench_mp_path(const uint8_t *p, size_t n, const char *const *keys, mdx_mp_tok_t *out);

/* ---- the closed-loop load ---- */

/** One connection of the load: the request being answered and the bytes received. */
typedef struct {
    int fd;
    uint8_t *in;
    size_t len, cap;
    uint64_t t0; /* when the request was sent */
    int is_put;  /* set by encode: the latency goes to the put histogram */
    mdx_buf_t out;
} bench_lconn_t;

typedef struct {
    bench_hist_t get, put;
    uint64_t ops, errors, stalls; /* replies, wrong replies, replies over BENCH_STALL_NS */
    double elapsed;               /* seconds this window was selected */
} bench_window_t;

typedef struct {
    int port;
    uint64_t conns;
    double seconds;      /* how long; 0: until *stop */
    uint64_t seed;       /* of the rng handed to encode */
    volatile int *phase; /* window of each reply: res[*phase]; < 0: not counted; NULL: 0 */
    volatile int *stop;  /* may be NULL; set: the load ends */
    const char *name;    /* for messages */
    /** Writes the next request into c->out (reset to empty before the call); sets c->is_put. */
    void (*encode)(void *data, bench_lconn_t *c, bench_rng_t *rng);
    /** Bytes of one complete reply at the start of c->in (0: incomplete); *ok: a success. */
    size_t (*reply_len)(void *data, const bench_lconn_t *c, int *ok);
    void *data;
} bench_load_t;

/** Initializes nres windows, then runs the load. Returns 0, or -1 when a connection failed
 *  (message on stderr). The windows hold what was measured either way; free each with
 *  bench_window_fini. */
int bench_load_run(const bench_load_t *l, bench_window_t *res, int nres);
void bench_window_fini(bench_window_t *w);

/** reply_len for memdex frames: *ok when the status is 0 and, for a get (not c->is_put), the
 *  body is not nil. */
size_t bench_md_reply_len(const bench_lconn_t *c, int *ok);

#endif
