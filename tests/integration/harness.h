/*
 * Integration test harness: runs the real memdexd as a child process and talks to it.
 *
 * mdx_srv_start() starts MEMDEXD_PATH with `--listen 127.0.0.1:0` plus the caller's flags,
 * reads its stderr (a thread keeps draining it into a buffer, so a chatty server never blocks
 * on a full pipe) until the `listening on 127.0.0.1:PORT` line, then waits for readiness by
 * connecting. The child gets PR_SET_PDEATHSIG, so a test killed by ctest's timeout takes its
 * server with it. Nothing here sleeps to wait for the server.
 *
 * Requests and expected replies are written as JSON text (converted to the shortest msgpack),
 * and replies are rendered back to JSON text for comparison, so a failing test prints both
 * sides readably. Binary values render as <bin:hex>.
 */
#ifndef MDX_TEST_HARNESS_H
#define MDX_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/mp.h"

#define MDX_TEST_TIMEOUT_MS 20000 /* any single wait in a test */

typedef struct {
    pid_t pid;
    int port;
    int err_fd;
    void *logger;      /* the stderr reader */
    char data_dir[64]; /* the fresh data_dir given by default, removed by mdx_srv_stop */
} mdx_srv_t;

/** Starts memdexd with the extra flags (NULL-terminated list, may be NULL). Each server gets
 *  a fresh data_dir of its own (so it starts empty and servers running at once do not share
 *  snapshots), removed with its files by mdx_srv_stop; a `--data-dir` in extra overrides it.
 *  Fails the test when the server does not print its listening line within the timeout. */
void mdx_srv_start(mdx_srv_t *s, const char *const *extra);
/** Sends sig (0: SIGTERM; -1: none, the server is already exiting), waits for the exit
 *  (SIGKILL after the timeout), removes the default data_dir and returns the wait status. */
int mdx_srv_stop(mdx_srv_t *s, int sig);
/** Everything the server wrote to stderr so far (NUL-terminated copy; caller frees). */
char *mdx_srv_log(mdx_srv_t *s);
/** Waits up to timeout_ms for text to appear in the server's stderr; returns 1 when it did. */
int mdx_srv_log_wait(mdx_srv_t *s, const char *text, int timeout_ms);
/** Resident set size of the server in KiB (VmRSS from /proc). */
long mdx_srv_rss_kb(const mdx_srv_t *s);

/** Runs memdexd with argv (NULL-terminated, argv[0] excluded) to completion; returns the wait
 *  status and its stdout and stderr (caller frees). Fails the test on timeout. */
int mdx_run_memdexd(const char *const *argv, char **out, char **err);

typedef struct {
    int fd;
    uint8_t *buf; /* received; [pos, len) not yet consumed */
    size_t pos, len, cap;
    uint64_t next_id;
} mdx_cli_t;

typedef struct {
    uint64_t id;
    int status;       /* 0 or an error code */
    uint8_t *payload; /* malloc'd frame payload */
    size_t payload_len;
    const uint8_t *body; /* view into payload */
    size_t body_len;
} mdx_reply_t;

/** Connects to 127.0.0.1:port (blocking socket). Returns 0 or -errno. */
int mdx_cli_connect(mdx_cli_t *c, int port);
/** Connects to a Unix socket. Returns 0 or -errno. */
int mdx_cli_connect_unix(mdx_cli_t *c, const char *path);
void mdx_cli_close(mdx_cli_t *c);
/** Writes all n bytes (fails the test on error). */
void mdx_cli_send(mdx_cli_t *c, const void *p, size_t n);
/** Writes all n bytes; returns 0 or -errno (for tests where the server may cut us off). */
int mdx_cli_try_send(mdx_cli_t *c, const void *p, size_t n);
/** Reads one frame. Returns 0, or -1 on EOF/error/timeout (timeout_ms; 0: the default). The
 *  reply is decoded as [id, status, body]; free with mdx_reply_free. */
int mdx_cli_recv(mdx_cli_t *c, mdx_reply_t *r, int timeout_ms);
/** Returns 1 when the server closed the connection (EOF or reset) within the timeout,
 *  discarding any frames before it. */
int mdx_cli_wait_closed(mdx_cli_t *c, int timeout_ms);
void mdx_reply_free(mdx_reply_t *r);

/** Appends a request frame [id, op, args] with args given as JSON text. */
void mdx_req_json(mdx_buf_t *b, uint64_t id, const char *op, const char *args_json);
/** Appends a frame around raw payload bytes. */
void mdx_frame_raw(mdx_buf_t *b, const void *payload, size_t n);

/** JSON text to msgpack (appended to b); fails the test on a syntax error. */
void mdx_json_to_mp(mdx_buf_t *b, const char *json);
/** msgpack to JSON text; caller frees. */
char *mdx_mp_to_json(const uint8_t *p, size_t n);

/** Stores {"s": "xxx...x"} (n bytes of string) at integer key `key` in coll. */
void mdx_put_big(mdx_cli_t *c, const char *coll, uint64_t key, size_t n);

/** Sends op(args) with the next id, reads the reply, checks the id; returns the rendered body
 *  (caller frees) and the status. */
char *mdx_call(mdx_cli_t *c, const char *op, const char *args_json, int *status);
/** Asserts a success reply whose body renders exactly as want_json (after normalizing
 *  want_json through msgpack, so spacing does not matter). */
#define mdx_expect_ok(c, op, args, want) mdx__expect_ok(__FILE__, __LINE__, c, op, args, want)
void mdx__expect_ok(const char *file, int line, mdx_cli_t *c, const char *op, const char *args_json,
                    const char *want_json);
/** Asserts an error reply with code `code` (and the body's "code" naming it). Returns the
 *  message (caller frees). */
#define mdx_expect_err(c, op, args, code) mdx__expect_err(__FILE__, __LINE__, c, op, args, code)
char *mdx__expect_err(const char *file, int line, mdx_cli_t *c, const char *op,
                      const char *args_json, int code);

#endif
