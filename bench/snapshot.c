/*
 * memdex-bench snapshot: what a snapshot costs, and the same data in Redis for comparison.
 *
 * Data: N records (default 1,000,000) keyed "k<i>", body {"s": i, "c": "c<i % 1000>", "v":
 * <value-size bytes>} (about 100 bytes encoded), with two secondary indexes: a skiplist on "s"
 * and a hash index on "c".
 *
 * 1. Engine, in process: mdx_store_save (MB/s of the file, fsync and rename included) and
 *    mdx_store_load into an empty store (indexes rebuilt), medians of --repeat runs.
 * 2. memdexd (the release binary next to memdex-bench unless --memdexd): the data loaded over
 *    the wire, then a closed-loop GET load from --connections connections for 2 x --duration
 *    seconds, during which a helper thread alternates windows without a snapshot and windows
 *    with one (it sends `snapshot` and polls `stats`; both windows get the same polling), so
 *    both conditions see the same background load: p50, p99, p99.9 and max of each, the GETs
 *    over 5 ms, and the longest pause of the server's loop (stats last.max_pause_us, and the
 *    CPU time of its longest pause, last.max_pause_cpu_us). Then
 *    50% GETs / 50% PUTs (replacing the record) for --duration without, then with snapshots
 *    back to back: peak RSS (VmHWM, reset before each phase through /proc/PID/clear_refs)
 *    against the resting RSS.
 * 3. Redis (--redis-server PATH, default redis-server on PATH; --no-redis skips it): the same
 *    records as strings holding the same body bytes, a sorted set on i and a set per "c" value,
 *    persistence configured here (RDB to a temporary directory, no automatic saves, no AOF).
 *    The same GET load with and without BGSAVE, latest_fork_usec, and memory: the parent's
 *    PSS at rest against the peak PSS of parent and child during BGSAVE under 50% writes
 *    (PSS counts a copy-on-write page shared by both once), with rdb_last_cow_size.
 *
 * Results go to stdout as a table, or as one JSON object with --json.
 */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "bench/bench.h"
#include "bench/hist.h"
#include "bench/wire.h"
#include "common/mp.h"
#include "memdex/snapshot.h"
#include "memdex/store.h"
#include "protocol/response.h"

#define NCAT 1000

typedef struct {
    uint64_t records, value_size, conns, repeat, step;
    double duration;
    const char *dir, *memdexd, *redis;
    int no_engine, no_server, no_redis, json, keep;
} opts_t;

typedef bench_bconn_t bconn_t;
typedef bench_lconn_t lconn_t;
typedef bench_window_t load_res_t;

/* ---- data ---- */

static char *g_value;

static size_t key_of(uint64_t i, char out[24])
{
    return (size_t)snprintf(out, 24, "k%llu", (unsigned long long)i);
}

static void put_body(mdx_buf_t *b, uint64_t i, uint64_t value_size, uint64_t version)
{
    char cat[16];
    int cl = snprintf(cat, sizeof(cat), "c%llu", (unsigned long long)(i % NCAT));
    mdx_mp_put_map(b, 3);
    mdx_mp_put_str(b, "s", 1);
    mdx_mp_put_uint(b, i);
    mdx_mp_put_str(b, "c", 1);
    mdx_mp_put_str(b, cat, (size_t)cl);
    mdx_mp_put_str(b, "v", 1);
    /* The version changes the first bytes so a replaced record really differs. */
    memcpy(g_value, &version, sizeof(version) < value_size ? sizeof(version) : value_size);
    mdx_mp_put_str(b, g_value, value_size);
}

static double secs_since(uint64_t t0)
{
    return (double)(bench_now_ns() - t0) / 1e9;
}

/* ---- 1. the engine in process ---- */

typedef struct {
    double insert_s, save_s, save_mbs, load_s;
    uint64_t file_bytes;
} embedded_res_t;

static int run_embedded(const opts_t *o, embedded_res_t *r)
{
    mdx_store_t *st;
    mdx_coll_t *c;
    if (mdx_store_new(NULL, &st) || mdx_coll_create(st, "bench", &c) ||
        mdx_index_create(c, "by_s", "s", MDX_INDEX_SKIPLIST, 0) ||
        mdx_index_create(c, "by_c", "c", MDX_INDEX_HASH, 0)) {
        fprintf(stderr, "memdex-bench: snapshot: cannot create the store\n");
        return -1;
    }
    mdx_buf_t body, key;
    mdx_buf_init(&body);
    mdx_buf_init(&key);
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < o->records; i++) {
        char k[24];
        size_t kl = key_of(i, k);
        key.len = body.len = 0;
        mdx_mp_put_str(&key, k, kl);
        put_body(&body, i, o->value_size, 0);
        if (mdx_put(c, key.data, key.len, body.data, body.len, NULL)) {
            fprintf(stderr, "memdex-bench: snapshot: put: %s\n", mdx_store_errmsg(st));
            return -1;
        }
    }
    r->insert_s = secs_since(t0);
    mdx_buf_fini(&body);
    mdx_buf_fini(&key);

    double save[16], load[16];
    char path[MDX_SNAPSHOT_PATH_MAX + 128] = "";
    for (uint64_t i = 0; i < o->repeat; i++) {
        mdx_snapshot_info_t info;
        t0 = bench_now_ns();
        if (mdx_store_save(st, o->dir, NULL, &info)) {
            fprintf(stderr, "memdex-bench: snapshot: save: %s\n", info.error);
            return -1;
        }
        save[i] = secs_since(t0);
        r->file_bytes = info.bytes;
        snprintf(path, sizeof(path), "%s", info.path);
    }
    mdx_store_free(st);
    for (uint64_t i = 0; i < o->repeat; i++) {
        mdx_store_t *ld;
        mdx_load_info_t li;
        if (mdx_store_new(NULL, &ld))
            return -1;
        t0 = bench_now_ns();
        if (mdx_store_load(ld, path, &li) || li.records != o->records) {
            fprintf(stderr, "memdex-bench: snapshot: load: %s\n", mdx_store_errmsg(ld));
            return -1;
        }
        load[i] = secs_since(t0);
        mdx_store_free(ld);
    }
    r->save_s = bench_median(save, o->repeat);
    r->save_mbs = (double)r->file_bytes / 1e6 / r->save_s;
    r->load_s = bench_median(load, o->repeat);
    return 0;
}

/* ---- processes ---- */

static void reset_peak_rss(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)pid);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}

/* The first child of pid (Redis' BGSAVE child), or 0. */
static pid_t child_of(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    long c = 0;
    if (fscanf(f, "%ld", &c) != 1)
        c = 0;
    fclose(f);
    return (pid_t)c;
}

/* ---- blocking request/reply connections ---- */

/* One line "key:value" of a Redis INFO text. */
static long long info_field(const char *info, const char *key)
{
    char k[64];
    snprintf(k, sizeof(k), "\n%s:", key);
    const char *p = strstr(info, k);
    return p ? strtoll(p + strlen(k), NULL, 10) : -1;
}

/* Sends a Redis command (RESP array of the words of cmd) and returns the reply's text: the
 * bulk string's contents, or the line of a simple reply. Caller frees. */
static char *redis_cmd(bconn_t *c, const char *const *argv, int argc)
{
    mdx_buf_t b;
    mdx_buf_init(&b);
    char h[32];
    int l = snprintf(h, sizeof(h), "*%d\r\n", argc);
    mdx_buf_append(&b, h, (size_t)l);
    for (int i = 0; i < argc; i++) {
        l = snprintf(h, sizeof(h), "$%zu\r\n", strlen(argv[i]));
        mdx_buf_append(&b, h, (size_t)l);
        mdx_buf_append(&b, argv[i], strlen(argv[i]));
        mdx_buf_append(&b, "\r\n", 2);
    }
    int rc = bench_send_all(c->fd, b.data, b.len);
    mdx_buf_fini(&b);
    if (rc)
        return NULL;
    for (;;) {
        char *s = (char *)c->in.data + c->off;
        size_t avail = c->in.len - c->off;
        char *eol = avail ? memmem(s, avail, "\r\n", 2) : NULL;
        if (eol) {
            if (s[0] == '$') {
                long n = strtol(s + 1, NULL, 10);
                size_t need = (size_t)(eol - s) + 2 + (n > 0 ? (size_t)n + 2 : 0);
                if (avail >= need) {
                    char *t = strndup(n > 0 ? eol + 2 : "", n > 0 ? (size_t)n : 0);
                    c->off += need;
                    return t;
                }
            } else {
                char *t = strndup(s, (size_t)(eol - s));
                c->off += (size_t)(eol - s) + 2;
                return t;
            }
        }
        if (c->off) {
            memmove(c->in.data, c->in.data + c->off, c->in.len - c->off);
            c->in.len -= c->off;
            c->off = 0;
        }
        if (bench_read_more(c))
            return NULL;
    }
}

/* ---- loading ---- */

static int load_memdex(int port, const opts_t *o)
{
    bconn_t c = {bench_tcp_connect(port), {0}, 0};
    if (c.fd < 0)
        return -1;
    mdx_buf_t b;
    mdx_buf_init(&b);
    size_t mark;
    mdx_req_begin(&b, &mark, 1, "create_collection", 1);
    mdx_req_arg(&b, MDX_ARG_NAME);
    mdx_mp_put_str(&b, "bench", 5);
    mdx_req_end(&b, mark);
    static const char *const idx[2][3] = {{"by_s", "s", "skiplist"}, {"by_c", "c", "hash"}};
    for (int i = 0; i < 2; i++) {
        mdx_req_begin(&b, &mark, 2, "create_index", 4);
        mdx_req_arg(&b, MDX_ARG_COLL);
        mdx_mp_put_str(&b, "bench", 5);
        mdx_req_arg(&b, MDX_ARG_NAME);
        mdx_mp_put_str(&b, idx[i][0], strlen(idx[i][0]));
        mdx_req_arg(&b, MDX_ARG_FIELD);
        mdx_mp_put_str(&b, idx[i][1], 1);
        mdx_req_arg(&b, MDX_ARG_KIND);
        mdx_mp_put_str(&b, idx[i][2], strlen(idx[i][2]));
        mdx_req_end(&b, mark);
    }
    uint64_t pending = 3, done = 0;
    int rc = 0;
    for (uint64_t i = 0; i <= o->records && rc == 0; i++) {
        if (i < o->records) {
            char k[24];
            size_t kl = key_of(i, k);
            mdx_req_begin(&b, &mark, 3, "put", 3);
            mdx_req_arg(&b, MDX_ARG_COLL);
            mdx_mp_put_str(&b, "bench", 5);
            mdx_req_arg(&b, MDX_ARG_KEY);
            mdx_mp_put_str(&b, k, kl);
            mdx_req_arg(&b, MDX_ARG_BODY);
            put_body(&b, i, o->value_size, 0);
            mdx_req_end(&b, mark);
            pending++;
        }
        if (pending == 5000 || i == o->records) {
            if (bench_send_all(c.fd, b.data, b.len))
                rc = -1;
            b.len = 0;
            for (; pending && rc == 0; pending--) {
                int st;
                const uint8_t *body;
                size_t bl;
                if (bench_md_reply(&c, &st, &body, &bl) || st)
                    rc = -1;
                done++;
            }
        }
    }
    mdx_buf_fini(&b);
    mdx_buf_fini(&c.in);
    close(c.fd);
    if (rc)
        fprintf(stderr, "memdex-bench: snapshot: loading memdexd failed after %llu replies\n",
                (unsigned long long)done);
    return rc;
}

static void resp_word(mdx_buf_t *b, const void *s, size_t n)
{
    char h[24];
    int l = snprintf(h, sizeof(h), "$%zu\r\n", n);
    mdx_buf_append(b, h, (size_t)l);
    mdx_buf_append(b, s, n);
    mdx_buf_append(b, "\r\n", 2);
}

/* SET k<i> <body>, ZADD bench:by_s i k<i>, SADD bench:c:<cat> k<i>: the same records and the
 * Redis way of the two indexes. */
static int load_redis(int port, const opts_t *o)
{
    bconn_t c = {bench_tcp_connect(port), {0}, 0};
    if (c.fd < 0)
        return -1;
    mdx_buf_t b, body;
    mdx_buf_init(&b);
    mdx_buf_init(&body);
    uint64_t pending = 0;
    int rc = 0;
    for (uint64_t i = 0; i <= o->records && rc == 0; i++) {
        if (i < o->records) {
            char k[24], num[24], set[32];
            size_t kl = key_of(i, k);
            int nl = snprintf(num, sizeof(num), "%llu", (unsigned long long)i);
            int sl = snprintf(set, sizeof(set), "bench:c:c%llu", (unsigned long long)(i % NCAT));
            body.len = 0;
            put_body(&body, i, o->value_size, 0);
            mdx_buf_append(&b, "*3\r\n", 4);
            resp_word(&b, "SET", 3);
            resp_word(&b, k, kl);
            resp_word(&b, body.data, body.len);
            mdx_buf_append(&b, "*4\r\n", 4);
            resp_word(&b, "ZADD", 4);
            resp_word(&b, "bench:by_s", 10);
            resp_word(&b, num, (size_t)nl);
            resp_word(&b, k, kl);
            mdx_buf_append(&b, "*3\r\n", 4);
            resp_word(&b, "SADD", 4);
            resp_word(&b, set, (size_t)sl);
            resp_word(&b, k, kl);
            pending += 3;
        }
        if (pending >= 6000 || (i == o->records && pending)) {
            if (bench_send_all(c.fd, b.data, b.len))
                rc = -1;
            b.len = 0;
            /* Every reply is one line (+OK, :1). */
            while (pending && rc == 0) {
                char *s = (char *)c.in.data + c.off;
                size_t avail = c.in.len - c.off;
                char *eol = avail ? memmem(s, avail, "\r\n", 2) : NULL;
                if (eol) {
                    if (s[0] == '-')
                        rc = -1;
                    c.off += (size_t)(eol - s) + 2;
                    pending--;
                    continue;
                }
                if (c.off) {
                    memmove(c.in.data, c.in.data + c.off, c.in.len - c.off);
                    c.in.len -= c.off;
                    c.off = 0;
                }
                if (bench_read_more(&c))
                    rc = -1;
            }
        }
    }
    mdx_buf_fini(&b);
    mdx_buf_fini(&body);
    mdx_buf_fini(&c.in);
    close(c.fd);
    if (rc)
        fprintf(stderr, "memdex-bench: snapshot: loading Redis failed\n");
    return rc;
}

/* ---- the closed-loop load: GETs, or GETs and PUTs ---- */

enum { P_MEMDEX, P_REDIS };

static void enc_op(int proto, lconn_t *c, bench_rng_t *rng, const opts_t *o, double write_frac)
{
    uint64_t i = bench_rng_below(rng, o->records);
    char k[24];
    size_t kl = key_of(i, k);
    c->is_put = write_frac > 0 && bench_rng_unit(rng) < write_frac;
    c->out.len = 0;
    if (proto == P_MEMDEX) {
        size_t mark;
        mdx_req_begin(&c->out, &mark, 1, c->is_put ? "put" : "get", c->is_put ? 3 : 2);
        mdx_req_arg(&c->out, MDX_ARG_COLL);
        mdx_mp_put_str(&c->out, "bench", 5);
        mdx_req_arg(&c->out, MDX_ARG_KEY);
        mdx_mp_put_str(&c->out, k, kl);
        if (c->is_put) {
            mdx_req_arg(&c->out, MDX_ARG_BODY);
            put_body(&c->out, i, o->value_size, bench_rng_next(rng));
        }
        mdx_req_end(&c->out, mark);
    } else if (c->is_put) {
        mdx_buf_t body;
        mdx_buf_init(&body);
        put_body(&body, i, o->value_size, bench_rng_next(rng));
        mdx_buf_append(&c->out, "*3\r\n", 4);
        resp_word(&c->out, "SET", 3);
        resp_word(&c->out, k, kl);
        resp_word(&c->out, body.data, body.len);
        mdx_buf_fini(&body);
    } else {
        mdx_buf_append(&c->out, "*2\r\n", 4);
        resp_word(&c->out, "GET", 3);
        resp_word(&c->out, k, kl);
    }
}

/* Bytes of one complete reply at the start of c->in (0: incomplete); *ok: a success. */
static size_t reply_len(int proto, const lconn_t *c, int *ok)
{
    if (proto == P_MEMDEX)
        return bench_md_reply_len(c, ok);
    const char *s = (const char *)c->in;
    const char *eol = c->len ? memmem(s, c->len, "\r\n", 2) : NULL;
    if (!eol)
        return 0;
    size_t head = (size_t)(eol - s) + 2;
    if (s[0] == '$') {
        long n = strtol(s + 1, NULL, 10);
        *ok = n > 0;
        size_t need = head + (n > 0 ? (size_t)n + 2 : 0);
        return c->len >= need ? need : 0;
    }
    *ok = s[0] == '+';
    return head;
}

typedef struct {
    int proto;
    const opts_t *o;
    double write_frac;
} load_ctx_t;

static void load_encode(void *data, lconn_t *c, bench_rng_t *rng)
{
    const load_ctx_t *x = data;
    enc_op(x->proto, c, rng, x->o, x->write_frac);
}

static size_t load_reply_len(void *data, const lconn_t *c, int *ok)
{
    return reply_len(((const load_ctx_t *)data)->proto, c, ok);
}

/* Runs the closed-loop load for seconds. Each reply is counted in res[*phase] (res[0] when
 * phase is NULL): a helper thread flips the phase while a snapshot runs, so the two conditions
 * are measured alternately under the same background load. */
static int run_load(int proto, int port, const opts_t *o, double write_frac, uint64_t seed,
                    double seconds, volatile int *phase, load_res_t res[2])
{
    load_ctx_t x = {proto, o, write_frac};
    bench_load_t l = {port, o->conns,   seconds,     seed,           phase,
                      NULL, "snapshot", load_encode, load_reply_len, &x};
    return bench_load_run(&l, res, 2);
}

/* ---- snapshots in the background during a load ---- */

typedef struct {
    int proto, port;
    pid_t pid;
    int alternate;      /* idle windows as long as the last snapshot between snapshots */
    int once;           /* stop after one snapshot */
    volatile int phase; /* 1 while a snapshot runs */
    volatile int stop;
    pthread_t thread;
    /* results */
    uint64_t count, failed;
    double dur_ms_sum, bytes_sum;
    long long fork_usec_max, cow_bytes_max;
    long long max_pause_us;     /* memdexd: longest time the loop spent on a snapshot at once */
    long long max_pause_cpu_us; /* memdexd: the most CPU time it used in one such pause */
    long peak_pss_kb;           /* Redis: parent + child, sampled */
} snapper_t;

/* The window without a snapshot between two snapshots: as long as the last one took (at least
 * 0.5 s), polling the server as often as during a snapshot so both windows carry the same
 * extra requests. */
static int idle_window(snapper_t *s, bconn_t *c)
{
    double ms = s->count ? s->dur_ms_sum / (double)s->count : 500;
    uint64_t end = bench_now_ns() + (uint64_t)((ms < 500 ? 500 : ms) * 1e6);
    s->phase = 0;
    while (!s->stop && bench_now_ns() < end) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
        if (s->proto == P_MEMDEX) {
            int st;
            const uint8_t *body;
            size_t bl;
            if (bench_md_call(c, "stats", &st, &body, &bl))
                return -1;
        } else {
            static const char *const persist[] = {"INFO", "persistence"};
            char *r = redis_cmd(c, persist, 2);
            if (!r)
                return -1;
            free(r);
        }
    }
    return 0;
}

static void *memdex_snapper(void *arg)
{
    snapper_t *s = arg;
    bconn_t c = {bench_tcp_connect(s->port), {0}, 0};
    int st;
    const uint8_t *body;
    size_t bl;
    while (!s->stop && c.fd >= 0 && !(s->once && s->count + s->failed)) {
        if (s->alternate && (idle_window(s, &c) || s->stop))
            break;
        s->phase = 1;
        if (bench_md_call(&c, "snapshot", &st, &body, &bl))
            break;
        if (st && st != MDX_EBUSY) {
            s->failed++;
            break;
        }
        for (;;) {
            struct timespec ts = {0, 5000000};
            nanosleep(&ts, NULL);
            if (bench_md_call(&c, "stats", &st, &body, &bl) || st)
                goto out;
            mdx_mp_tok_t t;
            static const char *const running[] = {"snapshot", "in_progress", NULL};
            if (bench_mp_path(body, bl, running, &t) == 0 && t.type == MDX_MP_BOOL && !t.v.b)
                break;
        }
        s->phase = 0;
        mdx_mp_tok_t res, dur, bytes;
        static const char *const kres[] = {"snapshot", "last", "result", NULL};
        static const char *const kdur[] = {"snapshot", "last", "duration_ms", NULL};
        static const char *const kbytes[] = {"snapshot", "last", "bytes", NULL};
        if (bench_mp_path(body, bl, kres, &res) || res.len != 2 || memcmp(res.v.ptr, "OK", 2)) {
            s->failed++;
            continue;
        }
        static const char *const kpause[] = {"snapshot", "last", "max_pause_us", NULL};
        mdx_mp_tok_t pause;
        bench_mp_path(body, bl, kdur, &dur);
        bench_mp_path(body, bl, kbytes, &bytes);
        if (bench_mp_path(body, bl, kpause, &pause) == 0 && (long long)pause.v.u > s->max_pause_us)
            s->max_pause_us = (long long)pause.v.u;
        static const char *const kcpu[] = {"snapshot", "last", "max_pause_cpu_us", NULL};
        if (bench_mp_path(body, bl, kcpu, &pause) == 0 &&
            (long long)pause.v.u > s->max_pause_cpu_us)
            s->max_pause_cpu_us = (long long)pause.v.u;
        s->count++;
        s->dur_ms_sum += (double)dur.v.u;
        s->bytes_sum += (double)bytes.v.u;
    }
out:
    if (c.fd >= 0)
        close(c.fd);
    mdx_buf_fini(&c.in);
    return NULL;
}

static void *redis_snapper(void *arg)
{
    snapper_t *s = arg;
    bconn_t c = {bench_tcp_connect(s->port), {0}, 0};
    static const char *const bgsave[] = {"BGSAVE"};
    static const char *const persist[] = {"INFO", "persistence"};
    static const char *const stats[] = {"INFO", "stats"};
    while (!s->stop && c.fd >= 0 && !(s->once && s->count + s->failed)) {
        if (s->alternate && (idle_window(s, &c) || s->stop))
            break;
        s->phase = 1;
        uint64_t t0 = bench_now_ns();
        char *r = redis_cmd(&c, bgsave, 1);
        if (!r)
            break;
        int ok = strstr(r, "started") != NULL;
        free(r);
        if (!ok) {
            s->failed++;
            break;
        }
        for (;;) {
            pid_t child = child_of(s->pid);
            long pss = bench_proc_kb(s->pid, "smaps_rollup", "Pss:");
            if (child > 0) {
                long cp = bench_proc_kb(child, "smaps_rollup", "Pss:");
                if (cp > 0)
                    pss += cp;
            }
            if (pss > s->peak_pss_kb)
                s->peak_pss_kb = pss;
            struct timespec ts = {0, 5000000};
            nanosleep(&ts, NULL);
            char *info = redis_cmd(&c, persist, 2);
            if (!info)
                goto out;
            long long busy = info_field(info, "rdb_bgsave_in_progress");
            long long cow = info_field(info, "rdb_last_cow_size");
            int good = strstr(info, "rdb_last_bgsave_status:ok") != NULL;
            free(info);
            if (busy == 0) {
                s->phase = 0;
                if (!good)
                    s->failed++;
                if (cow > s->cow_bytes_max)
                    s->cow_bytes_max = cow;
                break;
            }
        }
        char *info = redis_cmd(&c, stats, 2);
        if (!info)
            break;
        long long fork_us = info_field(info, "latest_fork_usec");
        free(info);
        if (fork_us > s->fork_usec_max)
            s->fork_usec_max = fork_us;
        s->count++;
        s->dur_ms_sum += secs_since(t0) * 1000;
    }
out:
    if (c.fd >= 0)
        close(c.fd);
    mdx_buf_fini(&c.in);
    return NULL;
}

static void snapper_start(snapper_t *s, int proto, int port, pid_t pid, int alternate)
{
    memset(s, 0, sizeof(*s));
    s->proto = proto;
    s->port = port;
    s->pid = pid;
    s->alternate = alternate;
    pthread_create(&s->thread, NULL, proto == P_MEMDEX ? memdex_snapper : redis_snapper, s);
}

static void snapper_stop(snapper_t *s)
{
    s->stop = 1;
    pthread_join(s->thread, NULL);
}

/* ---- one server's measurements ---- */

typedef struct {
    int ran;
    double load_s;
    long rest_rss_kb, rest_pss_kb;
    snapper_t idle;    /* one snapshot (BGSAVE) of the idle server */
    load_res_t get[2]; /* GETs without, with a snapshot running */
    snapper_t snap_get;
    long writes_peak_kb, writes_snap_peak_kb; /* VmHWM */
    load_res_t writes[2];                     /* 50% writes without, with snapshots */
    snapper_t snap_writes;
} server_res_t;

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static int measure(int proto, int port, pid_t pid, const opts_t *o, server_res_t *r)
{
    uint64_t t0 = bench_now_ns();
    if ((proto == P_MEMDEX ? load_memdex : load_redis)(port, o))
        return -1;
    r->load_s = secs_since(t0);
    sleep(1);
    r->rest_rss_kb = bench_proc_kb(pid, "status", "VmRSS:");
    r->rest_pss_kb = bench_proc_kb(pid, "smaps_rollup", "Pss:");
    fprintf(stderr, "  loaded in %.1f s; resting RSS %ld MiB\n", r->load_s, r->rest_rss_kb / 1024);

    /* One snapshot of the idle server. */
    memset(&r->idle, 0, sizeof(r->idle));
    r->idle.proto = proto;
    r->idle.port = port;
    r->idle.pid = pid;
    r->idle.once = 1;
    (proto == P_MEMDEX ? memdex_snapper : redis_snapper)(&r->idle);

    /* GETs: windows with and without a snapshot alternate, each as long as a snapshot takes,
     * so both conditions see the same background load on the machine. */
    fprintf(stderr, "  GETs, snapshots in alternate windows...\n");
    snapper_start(&r->snap_get, proto, port, pid, 1);
    int rc = run_load(proto, port, o, 0, 1, 2 * o->duration, &r->snap_get.phase, r->get);
    snapper_stop(&r->snap_get);
    if (rc)
        return -1;

    load_res_t unused[2];
    fprintf(stderr, "  50%% writes without snapshot...\n");
    reset_peak_rss(pid);
    if (run_load(proto, port, o, 0.5, 3, o->duration, NULL, r->writes))
        return -1;
    r->writes_peak_kb = bench_proc_kb(pid, "status", "VmHWM:");
    fprintf(stderr, "  50%% writes, snapshots back to back...\n");
    reset_peak_rss(pid);
    snapper_start(&r->snap_writes, proto, port, pid, 0);
    rc = run_load(proto, port, o, 0.5, 4, o->duration, NULL, unused);
    r->writes[1] = unused[0];
    snapper_stop(&r->snap_writes);
    r->writes_snap_peak_kb = bench_proc_kb(pid, "status", "VmHWM:");
    r->ran = 1;
    return rc;
}

/* ---- output ---- */

static void print_lat(const char *name, const load_res_t *l)
{
    printf("  %-34s %9.0f ops/s  p50 %6.3f  p99 %6.3f  p99.9 %6.3f  max %7.3f ms  "
           ">5ms %llu  errors %llu\n",
           name, (double)l->ops / l->elapsed, ms(bench_hist_percentile(&l->get, 50)),
           ms(bench_hist_percentile(&l->get, 99)), ms(bench_hist_percentile(&l->get, 99.9)),
           ms(l->get.max), (unsigned long long)l->stalls, (unsigned long long)l->errors);
}

static void json_lat(const char *name, const load_res_t *l)
{
    printf("\"%s\": {\"ops_per_s\": %.0f, \"get_p50_ms\": %.4f, \"get_p99_ms\": %.4f, "
           "\"get_p999_ms\": %.4f, \"get_max_ms\": %.4f, \"put_p99_ms\": %.4f, \"put_max_ms\": "
           "%.4f, \"over_5ms\": %llu, \"errors\": %llu}",
           name, (double)l->ops / l->elapsed, ms(bench_hist_percentile(&l->get, 50)),
           ms(bench_hist_percentile(&l->get, 99)), ms(bench_hist_percentile(&l->get, 99.9)),
           ms(l->get.max), ms(bench_hist_percentile(&l->put, 99)), ms(l->put.max),
           (unsigned long long)l->stalls, (unsigned long long)l->errors);
}

static void print_server(const char *name, const server_res_t *r, int redis)
{
    printf("%s: load %.1f s, resting RSS %.1f MiB (PSS %.1f MiB)\n", name, r->load_s,
           r->rest_rss_kb / 1024.0, r->rest_pss_kb / 1024.0);
    if (r->idle.count) {
        double ms_ = r->idle.dur_ms_sum / (double)r->idle.count;
        if (redis)
            printf("  BGSAVE of the idle server: %.0f ms, latest_fork_usec %lld\n", ms_,
                   r->idle.fork_usec_max);
        else
            printf("  snapshot of the idle server: %.0f ms, %.1f MB, %.0f MB/s, longest pause of "
                   "the loop %.2f ms (CPU %.2f ms)\n",
                   ms_, r->idle.bytes_sum / 1e6, r->idle.bytes_sum / 1e3 / r->idle.dur_ms_sum,
                   (double)r->idle.max_pause_us / 1000, (double)r->idle.max_pause_cpu_us / 1000);
    }
    print_lat("GET, no snapshot", &r->get[0]);
    print_lat(redis ? "GET, while BGSAVE runs" : "GET, while a snapshot runs", &r->get[1]);
    printf("  p99 ratio %.2f, max %.3f ms vs %.3f ms; %llu snapshots, %.0f ms each on average",
           (double)bench_hist_percentile(&r->get[1].get, 99) /
               (double)bench_hist_percentile(&r->get[0].get, 99),
           ms(r->get[1].get.max), ms(r->get[0].get.max), (unsigned long long)r->snap_get.count,
           r->snap_get.count ? r->snap_get.dur_ms_sum / (double)r->snap_get.count : 0.0);
    if (redis)
        printf(", latest_fork_usec up to %lld\n", r->snap_get.fork_usec_max);
    else
        printf(
            " (%.0f MB/s under load), longest pause of the loop %.2f ms (CPU %.2f ms)\n",
            r->snap_get.dur_ms_sum > 0 ? r->snap_get.bytes_sum / 1e3 / r->snap_get.dur_ms_sum : 0.0,
            (double)r->snap_get.max_pause_us / 1000, (double)r->snap_get.max_pause_cpu_us / 1000);
    print_lat("50% writes, no snapshot", &r->writes[0]);
    print_lat(redis ? "50% writes, BGSAVE back to back" : "50% writes, snapshots", &r->writes[1]);
    printf("  peak RSS: %.1f MiB without snapshot (%.2fx resting), %.1f MiB with (%.2fx); "
           "%llu snapshots",
           r->writes_peak_kb / 1024.0, (double)r->writes_peak_kb / (double)r->rest_rss_kb,
           r->writes_snap_peak_kb / 1024.0, (double)r->writes_snap_peak_kb / (double)r->rest_rss_kb,
           (unsigned long long)r->snap_writes.count);
    if (redis)
        printf("\n  peak PSS of parent + child during BGSAVE %.1f MiB (%.2fx resting PSS); "
               "rdb_last_cow_size up to %.1f MiB; latest_fork_usec up to %lld\n",
               r->snap_writes.peak_pss_kb / 1024.0,
               (double)r->snap_writes.peak_pss_kb / (double)r->rest_pss_kb,
               (double)r->snap_writes.cow_bytes_max / 1048576.0, r->snap_writes.fork_usec_max);
    else
        printf(", longest pause of the loop %.2f ms (CPU %.2f ms)\n",
               (double)r->snap_writes.max_pause_us / 1000,
               (double)r->snap_writes.max_pause_cpu_us / 1000);
}

static void json_server(const char *name, const server_res_t *r)
{
    printf(", \"%s\": {\"load_s\": %.2f, \"rest_rss_kb\": %ld, \"rest_pss_kb\": %ld, "
           "\"idle_snapshot_ms\": %.0f, \"idle_snapshot_bytes\": %.0f, \"idle_max_pause_us\": "
           "%lld, ",
           name, r->load_s, r->rest_rss_kb, r->rest_pss_kb,
           r->idle.count ? r->idle.dur_ms_sum / (double)r->idle.count : 0.0, r->idle.bytes_sum,
           r->idle.max_pause_us);
    json_lat("get", &r->get[0]);
    printf(", ");
    json_lat("get_during_snapshot", &r->get[1]);
    printf(", \"max_pause_us\": %lld", r->snap_get.max_pause_us > r->snap_writes.max_pause_us
                                           ? r->snap_get.max_pause_us
                                           : r->snap_writes.max_pause_us);
    printf(", \"max_pause_cpu_us\": %lld",
           r->snap_get.max_pause_cpu_us > r->snap_writes.max_pause_cpu_us
               ? r->snap_get.max_pause_cpu_us
               : r->snap_writes.max_pause_cpu_us);
    printf(", \"snapshots\": %llu, \"snapshot_ms_avg\": %.1f, \"fork_usec_max\": %lld, ",
           (unsigned long long)r->snap_get.count,
           r->snap_get.count ? r->snap_get.dur_ms_sum / (double)r->snap_get.count : 0.0,
           r->snap_get.fork_usec_max > r->snap_writes.fork_usec_max ? r->snap_get.fork_usec_max
                                                                    : r->snap_writes.fork_usec_max);
    json_lat("writes", &r->writes[0]);
    printf(", ");
    json_lat("writes_during_snapshot", &r->writes[1]);
    printf(", \"writes_peak_rss_kb\": %ld, \"writes_snapshot_peak_rss_kb\": %ld, "
           "\"snapshot_peak_pss_kb\": %ld, \"cow_bytes_max\": %lld}",
           r->writes_peak_kb, r->writes_snap_peak_kb, r->snap_writes.peak_pss_kb,
           r->snap_writes.cow_bytes_max);
}

/* ---- main ---- */

static void usage(FILE *f)
{
    fputs("usage: memdex-bench snapshot [options]\n"
          "\n"
          "Snapshot costs: engine save/load, GET latency and memory in memdexd while snapshots\n"
          "run, and Redis BGSAVE on the same data.\n"
          "\n"
          "  --records N        records [1000000]\n"
          "  --value-size B     bytes of the \"v\" field (the body is about B + 20) [80]\n"
          "  --repeat N         engine save/load runs, median reported [3]\n"
          "  --connections N    closed-loop connections of the network load [16]\n"
          "  --step-records N   memdexd --snapshot-step-records [the server's default]\n"
          "  --duration S       seconds of each network phase [5]\n"
          "  --dir DIR          where snapshot files and RDB files go [/tmp]\n"
          "  --memdexd PATH     the server [memdexd next to memdex-bench]\n"
          "  --redis-server P   Redis [redis-server on PATH]\n"
          "  --no-engine        skip the in-process engine measurements\n"
          "  --no-server        engine measurements only\n"
          "  --no-redis         skip Redis\n"
          "  --keep             keep the work directory (server logs, snapshot files)\n"
          "  --json             one JSON object on stdout\n",
          f);
}

int bench_snapshot_main(int argc, char **argv)
{
    opts_t o = {1000000, 80, 16, 3, 0, 5.0, "/tmp", NULL, "redis-server", 0, 0, 0, 0, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return BENCH_EXIT_OK;
        } else if (strcmp(a, "--records") == 0) {
            if (bench_parse_u64(a, v, 1, 100000000, &o.records))
                return BENCH_EXIT_USAGE;
            i++;
        } else if (strcmp(a, "--value-size") == 0) {
            if (bench_parse_u64(a, v, 8, 1 << 20, &o.value_size))
                return BENCH_EXIT_USAGE;
            i++;
        } else if (strcmp(a, "--repeat") == 0) {
            if (bench_parse_u64(a, v, 1, 16, &o.repeat))
                return BENCH_EXIT_USAGE;
            i++;
        } else if (strcmp(a, "--step-records") == 0) {
            if (bench_parse_u64(a, v, 1, 100000000, &o.step))
                return BENCH_EXIT_USAGE;
            i++;
        } else if (strcmp(a, "--connections") == 0) {
            if (bench_parse_u64(a, v, 1, 1000, &o.conns))
                return BENCH_EXIT_USAGE;
            i++;
        } else if (strcmp(a, "--duration") == 0 && v) {
            o.duration = atof(v);
            if (!(o.duration > 0)) {
                fprintf(stderr, "memdex-bench: snapshot: bad --duration '%s'\n", v);
                return BENCH_EXIT_USAGE;
            }
            i++;
        } else if (strcmp(a, "--dir") == 0 && v) {
            o.dir = argv[++i];
        } else if (strcmp(a, "--memdexd") == 0 && v) {
            o.memdexd = argv[++i];
        } else if (strcmp(a, "--redis-server") == 0 && v) {
            o.redis = argv[++i];
        } else if (strcmp(a, "--no-engine") == 0) {
            o.no_engine = 1;
        } else if (strcmp(a, "--no-server") == 0) {
            o.no_server = 1;
        } else if (strcmp(a, "--no-redis") == 0) {
            o.no_redis = 1;
        } else if (strcmp(a, "--keep") == 0) {
            o.keep = 1;
        } else if (strcmp(a, "--json") == 0) {
            o.json = 1;
        } else {
            fprintf(stderr, "memdex-bench: snapshot: unknown option or missing value '%s'\n", a);
            return BENCH_EXIT_USAGE;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    g_value = malloc(o.value_size);
    for (uint64_t i = 0; i < o.value_size; i++)
        g_value[i] = (char)('a' + i % 26);

    char work[1024];
    snprintf(work, sizeof(work), "%s/mdx-snapbench-XXXXXX", o.dir);
    if (!mkdtemp(work)) {
        fprintf(stderr, "memdex-bench: snapshot: cannot create a directory in %s: %s\n", o.dir,
                strerror(errno));
        return BENCH_EXIT_FAIL;
    }
    char edir[1100], mdir[1100], rdir[1100], log[1200];
    snprintf(edir, sizeof(edir), "%s/engine", work);
    snprintf(mdir, sizeof(mdir), "%s/memdexd", work);
    snprintf(rdir, sizeof(rdir), "%s/redis", work);
    mkdir(edir, 0755);
    mkdir(mdir, 0755);
    mkdir(rdir, 0755);

    int rc = BENCH_EXIT_OK;
    embedded_res_t er;
    memset(&er, 0, sizeof(er));
    server_res_t mr, rr;
    memset(&mr, 0, sizeof(mr));
    memset(&rr, 0, sizeof(rr));
    opts_t eo = o;
    eo.dir = edir;
    if (!o.no_engine) {
        fprintf(stderr, "engine: %llu records...\n", (unsigned long long)o.records);
        if (run_embedded(&eo, &er))
            rc = BENCH_EXIT_FAIL;
    }

    if (rc == 0 && !o.no_server) {
        char path[1100], portstr[16];
        bench_sibling_path("memdexd", path, sizeof(path));
        const char *bin = o.memdexd ? o.memdexd : path;
        int port = bench_free_port();
        snprintf(portstr, sizeof(portstr), "127.0.0.1:%d", port);
        snprintf(log, sizeof(log), "%s/memdexd.log", work);
        char step[24];
        snprintf(step, sizeof(step), "%llu", (unsigned long long)o.step);
        const char *const argv_m[] = {bin,     "--listen",
                                      portstr, "--data-dir",
                                      mdir,    "--snapshot-rules",
                                      "off",   "--snapshot-on-shutdown",
                                      "no",    o.step ? "--snapshot-step-records" : NULL,
                                      step,    NULL};
        fprintf(stderr, "memdexd (%s)...\n", bin);
        pid_t pid = bench_spawn(argv_m, log, port, -1);
        if (pid < 0 || measure(P_MEMDEX, port, pid, &o, &mr))
            rc = BENCH_EXIT_FAIL;
        if (pid > 0)
            bench_stop(pid);
    }
    if (rc == 0 && !o.no_server && !o.no_redis) {
        char portstr[16], rlog[1200];
        int port = bench_free_port();
        snprintf(portstr, sizeof(portstr), "%d", port);
        snprintf(rlog, sizeof(rlog), "%s/redis.log", work);
        char rpath[1024];
        const char *bin = o.redis;
        if (!strchr(bin, '/')) {
            /* Look it up on PATH: execv does not. */
            const char *p = getenv("PATH");
            char dirs[4096];
            snprintf(dirs, sizeof(dirs), "%s", p ? p : "/usr/bin");
            rpath[0] = '\0';
            for (char *d = strtok(dirs, ":"); d; d = strtok(NULL, ":")) {
                snprintf(rpath, sizeof(rpath), "%s/%s", d, bin);
                if (access(rpath, X_OK) == 0)
                    break;
                rpath[0] = '\0';
            }
            bin = rpath[0] ? rpath : NULL;
        }
        if (!bin) {
            fprintf(stderr, "memdex-bench: snapshot: %s not found; Redis skipped\n", o.redis);
        } else {
            const char *const argv_r[] = {bin,         "--port",      portstr, "--bind",
                                          "127.0.0.1", "--save",      "",      "--appendonly",
                                          "no",        "--dir",       rdir,    "--dbfilename",
                                          "bench.rdb", "--daemonize", "no",    "--protected-mode",
                                          "no",        NULL};
            fprintf(stderr, "redis (%s)...\n", bin);
            pid_t pid = bench_spawn(argv_r, rlog, port, -1);
            if (pid < 0 || measure(P_REDIS, port, pid, &o, &rr))
                rc = BENCH_EXIT_FAIL;
            if (pid > 0)
                bench_stop(pid);
        }
    }

    if (o.json) {
        printf("{\"records\": %llu, \"value_size\": %llu, \"connections\": %llu, "
               "\"duration_s\": %.1f, \"engine\": {\"insert_s\": %.3f, \"file_bytes\": %llu, "
               "\"save_s\": %.3f, \"save_mb_per_s\": %.0f, \"load_s\": %.3f}",
               (unsigned long long)o.records, (unsigned long long)o.value_size,
               (unsigned long long)o.conns, o.duration, er.insert_s,
               (unsigned long long)er.file_bytes, er.save_s, er.save_mbs, er.load_s);
        if (mr.ran)
            json_server("memdexd", &mr);
        if (rr.ran)
            json_server("redis", &rr);
        printf("}\n");
    } else {
        printf("records %llu, body about %llu bytes, 2 secondary indexes; %llu connections, %.1f s "
               "per phase\n",
               (unsigned long long)o.records, (unsigned long long)o.value_size + 20,
               (unsigned long long)o.conns, o.duration);
        if (!o.no_engine)
            printf("engine: insert %.2f s; save %.3f s for %.1f MB = %.0f MB/s; load (indexes "
                   "rebuilt) %.3f s\n",
                   er.insert_s, er.save_s, er.file_bytes / 1e6, er.save_mbs, er.load_s);
        if (mr.ran)
            print_server("memdexd", &mr, 0);
        if (rr.ran)
            print_server("redis", &rr, 1);
    }
    /* The work directory holds snapshot and RDB files; remove them. */
    char cmd[1200];
    if (o.keep) {
        fprintf(stderr, "work directory kept: %s\n", work);
        free(g_value);
        return rc;
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", work);
    if (system(cmd) != 0)
        fprintf(stderr, "memdex-bench: snapshot: could not remove %s\n", work);
    free(g_value);
    return rc;
}
