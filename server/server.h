/*
 * memdexd's shared state: the server (loop, listeners, timers, store, statistics) and its
 * connections. Everything here belongs to the one loop thread.
 *
 * Buffers. Reads land in one server-wide read buffer whenever a connection has no partial frame
 * pending (the common case), so an idle connection holds no input memory; only the bytes of a
 * frame cut by a read boundary are copied into the connection's own input buffer, which then
 * receives the following reads directly. Responses are appended to one of two output buffers
 * per connection: one is being written (it must stay alive until the write callback), the
 * other collects responses meanwhile. All responses produced from one read go out in one
 * uv_write.
 */
#ifndef MDX_SERVER_SERVER_H
#define MDX_SERVER_SERVER_H

#include <uv.h>

#include "common/mp.h"
#include "memdex/protocol.h"
#include "memdex/snapshot.h"
#include "memdex/store.h"
#include "server/config.h"

#include <time.h>

#define MDX_READ_CHUNK (64u * 1024) /* bytes asked for per read */
#define MDX_OUT_KEEP   (64u * 1024) /* output/input capacity kept across batches */

typedef struct mdx_server mdx_server_t;
typedef struct mdx_conn mdx_conn_t;

typedef struct {
    uint64_t start_ms; /* uv_now at start */
    uint64_t conn_current, conn_total, conn_rejected;
    uint64_t commands[MDX_OP__COUNT];
    uint64_t errors[MDX_ERRNO_MAX];
    uint64_t output_limit_closes; /* clients cut off at output_limit */
    uint64_t reclaim_runs;        /* expiry-timer runs and reclaim slices that freed records */
    uint64_t reclaim_freed;       /* records they freed */
    uint64_t reclaim_max_us;      /* the longest of them (wall clock) */
    uint64_t reclaim_max_cpu_us;  /* the most CPU time one of them used (this thread's) */
} mdx_srv_stats_t;

/* CPU time of the calling thread, in ns: beside a wall-clock time it tells what the thread
 * spent from what it waited (descheduled, or the hypervisor's steal). */
static inline uint64_t mdx_srv_thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Snapshots as the server runs them (server/snapshot.c). */
typedef struct {
    mdx_snapshot_t *run; /* the snapshot in progress, or NULL */
    const char *run_reason;
    uint64_t run_t0_ns;         /* uv_hrtime at its start */
    uint64_t run_dirty;         /* `dirty` when it started */
    uint64_t run_max_ns;        /* longest time the loop spent on it at once (slice, start, end) */
    uint64_t run_max_cpu_ns;    /* the most CPU time the loop thread used in one such pause */
    uv_idle_t idle;             /* steps the running snapshot once per loop iteration */
    uv_timer_t wait_timer;      /* re-arms the idle step while the writer thread catches up */
    uv_timer_t rules_timer;     /* checks the automatic rules */
    uint64_t dirty;             /* writes since the last successful snapshot began */
    int64_t last_ok_start_ms;   /* start of the last successful snapshot (or server start) */
    int64_t last_try_ms;        /* start of the last attempt, successful or not */
    int clean;                  /* the newest file in data_dir holds the current state */
    uint64_t failures;          /* snapshots that failed since start */
    uint64_t completed;         /* snapshots that succeeded since start */
    int have_last;              /* `last` holds a finished snapshot */
    mdx_snapshot_info_t last;   /* the last finished one */
    const char *last_reason;    /* "command", "rule" or "shutdown" */
    uint64_t last_duration_ms;  /* wall time from begin to finish */
    uint64_t last_max_pause_us; /* its run_max_ns, in us */
    uint64_t last_max_pause_cpu_us; /* its run_max_cpu_ns, in us */
} mdx_srv_snap_t;

struct mdx_conn {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } u;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    mdx_server_t *srv;
    mdx_conn_t *prev, *next;
    uint8_t *in; /* own input buffer: a partial frame and the reads completing it */
    size_t in_len, in_cap;
    mdx_buf_t out[2];
    unsigned cur;          /* index of the output buffer collecting responses */
    unsigned writing : 1;  /* out[cur ^ 1] is handed to uv_write */
    unsigned reading : 1;  /* uv_read_start is in effect */
    unsigned paused : 1;   /* reading stopped for backpressure */
    unsigned closing : 1;  /* no more input: flush, then shut down and close */
    unsigned dead : 1;     /* uv_close called */
    unsigned rejected : 1; /* over max_clients: not counted as a client */
    unsigned shut : 1;     /* uv_shutdown issued */
    char peer[64];
};

struct mdx_server {
    uv_loop_t *loop;
    const mdx_config_t *cfg;
    mdx_store_t *store;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
    int tcp_on, pipe_on;
    uv_timer_t expire_timer;
    uv_idle_t reclaim_idle; /* runs reclaim slices back to back while work remains */
    uv_timer_t shutdown_timer;
    uv_signal_t sigint, sigterm;
    int shutting_down;
    mdx_conn_t *conns; /* every live connection (rejected ones included) */
    uint8_t *rbuf;     /* MDX_READ_CHUNK bytes shared by all reads without a partial frame */
    mdx_srv_stats_t stats;
    mdx_srv_snap_t snap;
};

/* conn.c */
/** Accepts one connection from a listener; refuses it politely above max_clients. */
void mdx_conn_accept(mdx_server_t *srv, uv_stream_t *listener);
/** Graceful shutdown: takes what each client has already sent, answers it, flushes and
 *  closes. The caller closes the remaining handles when the last connection is gone. */
void mdx_conn_shutdown_all(mdx_server_t *srv);
/** Closes every connection now, without flushing. */
void mdx_conn_kill_all(mdx_server_t *srv);
/** The peer's address ("127.0.0.1:5000", "unix") for log lines; looked up on first use. */
const char *mdx_conn_peer(mdx_conn_t *c);
/** Bytes of output not yet handed to the kernel. */
size_t mdx_conn_unsent(const mdx_conn_t *c);

/* server.c / main.c: called when the last connection of a shutting-down server closed. */
void mdx_server_conns_gone(mdx_server_t *srv);
/** Starts the reclaim step (expired and invalidated records, reclaim_slice_us per loop
 *  iteration) unless it runs already; it stops by itself when nothing is left. */
void mdx_srv_reclaim_kick(mdx_server_t *srv);

/* dispatch.c */
/** Executes one decoded request and appends its response frame to out. Errors are replied
 *  (and counted) there too. Returns 0, or -1 when the connection must be closed because the
 *  response grew past output_limit (a partial response may be in out; the caller discards the
 *  connection). */
int mdx_dispatch(mdx_server_t *srv, mdx_conn_t *c, const mdx_request_t *req, mdx_buf_t *out);
/** Appends an error response frame [id, code, {"code": NAME, "message": msg}] and counts it. */
void mdx_reply_error(mdx_server_t *srv, mdx_conn_t *c, mdx_buf_t *out, uint64_t id, int code,
                     const char *msg);

/* snapshot.c */
/** Loads the newest valid snapshot of data_dir into the (empty) store, removing temporary files
 *  left by a crash first. Returns 0, or -1 with a one-line message in err (the server must not
 *  start). */
int mdx_srv_snap_load(mdx_server_t *srv, char *err, size_t errlen);
/** Sets up the step handles and the rules timer (after the loop exists). */
void mdx_srv_snap_init(mdx_server_t *srv);
/** Starts a background snapshot. Returns 0, MDX_EBUSY, or the error of mdx_snapshot_begin
 *  (the message is in mdx_store_errmsg; the failure is counted and logged). */
int mdx_srv_snap_start(mdx_server_t *srv, const char *reason);
/** Counts n writes toward the automatic rules. */
static inline void mdx_srv_snap_dirty(mdx_server_t *srv, uint64_t n)
{
    srv->snap.dirty += n;
}
/** Closes the snapshot handles (shutdown, once the connections are gone). */
void mdx_srv_snap_close(mdx_server_t *srv);
/** After the loop ended: abandons a running snapshot and, unless configured off or nothing
 *  changed, saves a final one (blocking). Returns 0, or -1 when the final save failed. */
int mdx_srv_snap_shutdown(mdx_server_t *srv);
/** Appends the "snapshot" stats map. */
void mdx_srv_snap_stats(mdx_server_t *srv, mdx_buf_t *out);
/** memdexd --check-snapshot FILE: returns the exit status (0 valid, 1 corrupt, 2 unreadable). */
int mdx_srv_snap_check_file(const char *path);

/* stats.c */
/** Appends the stats result map (the body of a stats reply). */
void mdx_stats_encode(mdx_server_t *srv, mdx_buf_t *out);

#endif
