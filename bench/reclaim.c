/*
 * memdex-bench reclaim (see reclaim.h): loads, windows and checks. The control connection
 * (this thread) loads, polls `stats` and triggers the events; a second thread runs the GET load
 * and charges each reply to the window selected in ctx.phase.
 *
 * Index values: hot record i has s = i * R and doomed record j has s = (j / (R - 1)) * R +
 * j % (R - 1) + 1, with R - 1 >= doomed / hot: all distinct, R - 1 doomed values between two
 * hot ones, so the reclaim unlinks entries next to the ones the hot set keeps.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/reclaim.h"
#include "memdex/error.h"
#include "protocol/response.h"

#define BATCH 2000 /* puts per pipelined batch while loading */

typedef struct {
    const reclaim_cfg_t *cfg;
    int port;
    bench_bconn_t c; /* control: loads, stats, invalidate */
    char *value;
    uint64_t r; /* R above */
    char *err;
    size_t errlen;
    volatile int phase, stop;
} ctx_t;

typedef struct {
    uint64_t records, pending, expired, max_run_us, max_cpu_us;
} cstats_t;

static int fail(ctx_t *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(ctx_t *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->err, x->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static void say(const ctx_t *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const ctx_t *x, const char *fmt, ...)
{
    if (x->cfg->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

static void sleep_until(uint64_t t)
{
    uint64_t now = bench_now_ns();
    if (now >= t)
        return;
    struct timespec ts = {(time_t)((t - now) / 1000000000u), (long)((t - now) % 1000000000u)};
    nanosleep(&ts, NULL);
}

static void put_coll(mdx_buf_t *b)
{
    mdx_req_arg(b, MDX_ARG_COLL);
    mdx_mp_put_str(b, RECLAIM_COLL, strlen(RECLAIM_COLL));
}

static void put_key(mdx_buf_t *b, char prefix, uint64_t i)
{
    char k[24];
    int kl = snprintf(k, sizeof(k), "%c%llu", prefix, (unsigned long long)i);
    mdx_req_arg(b, MDX_ARG_KEY);
    mdx_mp_put_str(b, k, (size_t)kl);
}

/* One request and a success reply; its body is left in *body. */
static int call(ctx_t *x, mdx_buf_t *req, const char *what, const uint8_t **body, size_t *bl)
{
    int st;
    const uint8_t *b;
    size_t l;
    if (bench_md_roundtrip(&x->c, req, &st, body ? body : &b, bl ? bl : &l))
        return fail(x, "%s: the connection to memdexd broke", what);
    if (st)
        return fail(x, "%s: %s", what, mdx_strerror(st));
    return 0;
}

/* An unsigned integer token (msgpack ints below 2^63 decode as INT). */
static int tok_uint(const mdx_mp_tok_t *t, uint64_t *out)
{
    if (t->type == MDX_MP_UINT || (t->type == MDX_MP_INT && t->v.i >= 0)) {
        *out = t->v.u;
        return 0;
    }
    return -1;
}

static int get_stats(ctx_t *x, cstats_t *s)
{
    mdx_buf_t b;
    mdx_buf_init(&b);
    size_t mark, bl;
    const uint8_t *body;
    mdx_req_begin(&b, &mark, 1, "stats", 0);
    mdx_req_end(&b, mark);
    int rc = call(x, &b, "stats", &body, &bl);
    mdx_buf_fini(&b);
    if (rc)
        return rc;
    static const char *const keys[3] = {"records", "pending", "expired"};
    uint64_t *out[3] = {&s->records, &s->pending, &s->expired};
    for (int i = 0; i < 3; i++) {
        const char *const path[] = {"collections", RECLAIM_COLL, keys[i], NULL};
        mdx_mp_tok_t t;
        if (bench_mp_path(body, bl, path, &t) || tok_uint(&t, out[i]))
            return fail(x, "stats: no collections.%s.%s", RECLAIM_COLL, keys[i]);
    }
    const char *const run[] = {"reclaim", "max_us", NULL}, *cpu[] = {"reclaim", "max_cpu_us", NULL};
    mdx_mp_tok_t t;
    if (bench_mp_path(body, bl, run, &t) || tok_uint(&t, &s->max_run_us) ||
        bench_mp_path(body, bl, cpu, &t) || tok_uint(&t, &s->max_cpu_us))
        return fail(x, "stats: no reclaim.max_us or reclaim.max_cpu_us");
    return 0;
}

/* Polls stats every RECLAIM_POLL_MS until the time t. */
static int poll_until(ctx_t *x, uint64_t t)
{
    cstats_t s;
    while (bench_now_ns() < t) {
        sleep_until(bench_now_ns() + RECLAIM_POLL_MS * 1000000u);
        if (get_stats(x, &s))
            return -1;
    }
    return 0;
}

static int create_schema(ctx_t *x)
{
    mdx_buf_t b;
    mdx_buf_init(&b);
    size_t mark;
    mdx_req_begin(&b, &mark, 1, "create_collection", 1);
    mdx_req_arg(&b, MDX_ARG_NAME);
    mdx_mp_put_str(&b, RECLAIM_COLL, strlen(RECLAIM_COLL));
    mdx_req_end(&b, mark);
    int rc = call(x, &b, "create_collection", NULL, NULL);
    b.len = 0;
    mdx_req_begin(&b, &mark, 2, "create_index", 4);
    put_coll(&b);
    mdx_req_arg(&b, MDX_ARG_NAME);
    mdx_mp_put_str(&b, "by_s", 4);
    mdx_req_arg(&b, MDX_ARG_FIELD);
    mdx_mp_put_str(&b, "s", 1);
    mdx_req_arg(&b, MDX_ARG_KIND);
    mdx_mp_put_str(&b, "skiplist", 8);
    mdx_req_end(&b, mark);
    if (rc == 0)
        rc = call(x, &b, "create_index", NULL, NULL);
    mdx_buf_fini(&b);
    return rc;
}

/* Puts n records "<prefix><i>" with body {"s": ..., "v": value}, in pipelined batches;
 * deadline (monotonic ns, 0: none): each put's ttl_ms makes it expire then; tag: one tag. */
static int load(ctx_t *x, char prefix, uint64_t n, uint64_t deadline, const char *tag)
{
    mdx_buf_t b;
    mdx_buf_init(&b);
    int rc = 0;
    for (uint64_t i = 0; i < n && rc == 0;) {
        b.len = 0;
        uint64_t now = bench_now_ns(), k = 0;
        if (deadline && deadline < now + 1000000u) {
            rc = fail(x, "loading took past the expiry time: raise --margin");
            break;
        }
        for (; k < BATCH && i < n; k++, i++) {
            size_t mark;
            uint64_t s = prefix == 'h' ? i * x->r : i / (x->r - 1) * x->r + i % (x->r - 1) + 1;
            mdx_req_begin(&b, &mark, i, "put", 3 + (deadline != 0) + (tag != NULL));
            put_coll(&b);
            put_key(&b, prefix, i);
            mdx_req_arg(&b, MDX_ARG_BODY);
            mdx_mp_put_map(&b, 2);
            mdx_mp_put_str(&b, "s", 1);
            mdx_mp_put_uint(&b, s);
            mdx_mp_put_str(&b, "v", 1);
            mdx_mp_put_str(&b, x->value, x->cfg->value_size);
            if (deadline) {
                mdx_req_arg(&b, MDX_ARG_TTL_MS);
                mdx_mp_put_uint(&b, (deadline - now) / 1000000u);
            }
            if (tag) {
                mdx_req_arg(&b, MDX_ARG_TAGS);
                mdx_mp_put_array(&b, 1);
                mdx_mp_put_str(&b, tag, strlen(tag));
            }
            mdx_req_end(&b, mark);
        }
        if (bench_send_all(x->c.fd, b.data, b.len))
            rc = fail(x, "load: the connection to memdexd broke");
        for (; k && rc == 0; k--) {
            int st;
            const uint8_t *body;
            size_t bl;
            if (bench_md_reply(&x->c, &st, &body, &bl))
                rc = fail(x, "load: the connection to memdexd broke");
            else if (st)
                rc = fail(x, "load: put: %s", mdx_strerror(st));
        }
    }
    mdx_buf_fini(&b);
    return rc;
}

/* ---- the GET load on the hot set ---- */

static void get_encode(void *data, bench_lconn_t *c, bench_rng_t *rng)
{
    const ctx_t *x = data;
    size_t mark;
    mdx_req_begin(&c->out, &mark, 1, "get", 2);
    put_coll(&c->out);
    put_key(&c->out, 'h', bench_rng_below(rng, x->cfg->hot));
    mdx_req_end(&c->out, mark);
    c->is_put = 0;
}

static size_t get_reply_len(void *data, const bench_lconn_t *c, int *ok)
{
    (void)data;
    return bench_md_reply_len(c, ok);
}

typedef struct {
    ctx_t *x;
    bench_load_t l;
    reclaim_case_t *out;
    pthread_t th;
    int rc;
} getter_t;

static void *getter_main(void *arg)
{
    getter_t *g = arg;
    g->rc = bench_load_run(&g->l, g->out->w, RECLAIM__WINDOWS);
    return NULL;
}

static int getter_start(getter_t *g, ctx_t *x, reclaim_case_t *out, uint64_t seed)
{
    memset(g, 0, sizeof(*g));
    g->x = x;
    g->out = out;
    x->phase = -1;
    x->stop = 0;
    bench_load_t l = {x->port,  x->cfg->conns, 0,          seed,          &x->phase,
                      &x->stop, "reclaim",     get_encode, get_reply_len, x};
    g->l = l;
    if (pthread_create(&g->th, NULL, getter_main, g))
        return fail(x, "cannot start the GET thread");
    return 0;
}

static int getter_stop(getter_t *g)
{
    g->x->stop = 1;
    pthread_join(g->th, NULL);
    if (g->rc)
        return fail(g->x, "the GET load failed (see stderr)");
    for (int w = 0; w < RECLAIM__WINDOWS; w++)
        if (g->out->w[w].errors)
            return fail(g->x, "%llu GETs of hot records did not find them",
                        (unsigned long long)g->out->w[w].errors);
    return 0;
}

/* ---- the cases ---- */

/* Polls until the collection holds the hot set only with nothing pending; t0 is the moment the
 * reclaim is timed from. */
static int wait_reclaimed(ctx_t *x, reclaim_case_t *rc, uint64_t t0, cstats_t *s)
{
    uint64_t limit = t0 + (uint64_t)(x->cfg->timeout_s * 1e9);
    rc->first_ms = -1;
    for (;;) {
        if (get_stats(x, s))
            return -1;
        rc->polls++;
        uint64_t now = bench_now_ns();
        double ms = ((double)now - (double)t0) / 1e6;
        if (rc->first_ms < 0 && s->records < rc->records_mid)
            rc->first_ms = ms;
        if (s->records == x->cfg->hot && s->pending == 0) {
            rc->reclaim_ms = ms;
            rc->max_run_us = s->max_run_us;
            rc->max_cpu_us = s->max_cpu_us;
            if (x->cfg->server_pid > 0)
                rc->rss_kb = bench_proc_kb(x->cfg->server_pid, "status", "VmRSS:");
            return 0;
        }
        if (now > limit)
            return fail(x, "reclaim not done after %.0f s: %llu records, %llu pending",
                        x->cfg->timeout_s, (unsigned long long)s->records,
                        (unsigned long long)s->pending);
        sleep_until(now + RECLAIM_POLL_MS * 1000000u);
    }
}

/* Loads the doomed records, times the load and checks that the collection holds them all. */
static int load_doomed(ctx_t *x, reclaim_case_t *rc, uint64_t deadline, const char *tag,
                       uint64_t *loaded)
{
    cstats_t s;
    uint64_t t = bench_now_ns();
    if (load(x, 'd', x->cfg->doomed, deadline, tag))
        return -1;
    *loaded = bench_now_ns();
    rc->load_s = (double)(*loaded - t) / 1e9;
    if (get_stats(x, &s))
        return -1;
    rc->records_mid = s.records;
    if (s.records != x->cfg->hot + x->cfg->doomed)
        return fail(x, "%llu records after loading the doomed ones, expected %llu",
                    (unsigned long long)s.records,
                    (unsigned long long)(x->cfg->hot + x->cfg->doomed));
    return 0;
}

static int run_expiry(ctx_t *x, reclaim_case_t *rc, double *est_load_s, uint64_t seed)
{
    const reclaim_cfg_t *cfg = x->cfg;
    cstats_t s0, s;
    if (get_stats(x, &s0))
        return -1;
    uint64_t t = bench_now_ns();
    uint64_t deadline =
        t + (uint64_t)((*est_load_s * 1.3 + cfg->warmup_s + cfg->baseline_s + cfg->margin_s) * 1e9);
    say(x, "  expiry: loading %llu records expiring in %.1f s...\n",
        (unsigned long long)cfg->doomed, (double)(deadline - t) / 1e9);
    uint64_t loaded;
    if (load_doomed(x, rc, deadline, NULL, &loaded))
        return -1;
    *est_load_s = rc->load_s;
    uint64_t before_end = deadline - 20000000u;
    if (loaded + (uint64_t)((cfg->warmup_s + 0.5) * 1e9) > before_end)
        return fail(x, "expiry: the load took %.1f s, too close to the expiry: raise --margin",
                    rc->load_s);
    getter_t g;
    if (getter_start(&g, x, rc, seed))
        return -1;
    int r = poll_until(x, loaded + (uint64_t)(cfg->warmup_s * 1e9));
    x->phase = RECLAIM_BEFORE;
    if (r == 0)
        r = poll_until(x, before_end);
    x->phase = RECLAIM_DURING;
    if (r == 0) {
        sleep_until(deadline);
        r = wait_reclaimed(x, rc, deadline, &s);
    }
    x->phase = RECLAIM_AFTER;
    if (r == 0)
        r = poll_until(x, bench_now_ns() + (uint64_t)(cfg->baseline_s * 1e9));
    if (getter_stop(&g) || r)
        return -1;
    rc->records_end = s.records;
    rc->removed = s.expired - s0.expired;
    if (rc->removed != cfg->doomed)
        return fail(x, "expiry: the server counted %llu expired records, expected %llu",
                    (unsigned long long)rc->removed, (unsigned long long)cfg->doomed);
    say(x, "  expiry: reclaimed in %.0f ms; GET p99 %.3f / %.3f / %.3f ms\n", rc->reclaim_ms,
        bench_hist_percentile(&rc->w[0].get, 99) / 1e6,
        bench_hist_percentile(&rc->w[1].get, 99) / 1e6,
        bench_hist_percentile(&rc->w[2].get, 99) / 1e6);
    return 0;
}

static int run_invalidate(ctx_t *x, reclaim_case_t *rc, uint64_t seed)
{
    const reclaim_cfg_t *cfg = x->cfg;
    cstats_t s;
    say(x, "  invalidate: loading %llu records tagged \"%s\"...\n", (unsigned long long)cfg->doomed,
        RECLAIM_TAG);
    uint64_t loaded;
    if (load_doomed(x, rc, 0, RECLAIM_TAG, &loaded))
        return -1;
    mdx_buf_t b;
    mdx_buf_init(&b);
    size_t mark, bl;
    const uint8_t *body;
    mdx_req_begin(&b, &mark, 1, "invalidate", 2);
    put_coll(&b);
    mdx_req_arg(&b, MDX_ARG_TAGS);
    mdx_mp_put_array(&b, 1);
    mdx_mp_put_str(&b, RECLAIM_TAG, strlen(RECLAIM_TAG));
    mdx_req_end(&b, mark);

    getter_t g;
    if (getter_start(&g, x, rc, seed)) {
        mdx_buf_fini(&b);
        return -1;
    }
    int r = poll_until(x, loaded + (uint64_t)(cfg->warmup_s * 1e9));
    x->phase = RECLAIM_BEFORE;
    if (r == 0)
        r = poll_until(x, bench_now_ns() + (uint64_t)(cfg->baseline_s * 1e9));
    x->phase = RECLAIM_DURING;
    if (r == 0) {
        uint64_t t0 = bench_now_ns();
        r = call(x, &b, "invalidate", &body, &bl);
        uint64_t t1 = bench_now_ns();
        rc->call_ms = (double)(t1 - t0) / 1e6;
        static const char *const removed[] = {"removed", NULL};
        mdx_mp_tok_t tok;
        if (r == 0 && (bench_mp_path(body, bl, removed, &tok) || tok_uint(&tok, &rc->removed)))
            r = fail(x, "invalidate: no \"removed\" in the reply");
        if (r == 0)
            r = wait_reclaimed(x, rc, t1, &s);
    }
    x->phase = RECLAIM_AFTER;
    if (r == 0)
        r = poll_until(x, bench_now_ns() + (uint64_t)(cfg->baseline_s * 1e9));
    mdx_buf_fini(&b);
    if (getter_stop(&g) || r)
        return -1;
    rc->records_end = s.records;
    if (rc->removed != cfg->doomed)
        return fail(x, "invalidate: removed %llu records, expected %llu",
                    (unsigned long long)rc->removed, (unsigned long long)cfg->doomed);
    say(x, "  invalidate: call %.3f ms, reclaimed in %.0f ms; GET p99 %.3f / %.3f / %.3f ms\n",
        rc->call_ms, rc->reclaim_ms, bench_hist_percentile(&rc->w[0].get, 99) / 1e6,
        bench_hist_percentile(&rc->w[1].get, 99) / 1e6,
        bench_hist_percentile(&rc->w[2].get, 99) / 1e6);
    return 0;
}

int reclaim_run(const reclaim_cfg_t *cfg, int port, reclaim_res_t *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    ctx_t x = {.cfg = cfg, .port = port, .err = err, .errlen = errlen};
    x.r = (cfg->doomed + cfg->hot - 1) / cfg->hot + 1;
    x.c.fd = bench_tcp_connect(port);
    mdx_buf_init(&x.c.in);
    x.value = malloc(cfg->value_size);
    r->exp = cfg->cases & RECLAIM_EXPIRY ? calloc(cfg->rounds, sizeof(*r->exp)) : NULL;
    r->inv = cfg->cases & RECLAIM_INVALIDATE ? calloc(cfg->rounds, sizeof(*r->inv)) : NULL;
    int rc = 0;
    if (x.c.fd < 0)
        rc = fail(&x, "cannot connect to memdexd on port %d", port);
    else if (!x.value || (cfg->cases & RECLAIM_EXPIRY && !r->exp) ||
             (cfg->cases & RECLAIM_INVALIDATE && !r->inv))
        rc = fail(&x, "out of memory");
    if (rc == 0) {
        for (uint64_t i = 0; i < cfg->value_size; i++)
            x.value[i] = (char)('a' + i % 26);
        say(&x, "loading %llu hot records...\n", (unsigned long long)cfg->hot);
        uint64_t t = bench_now_ns();
        rc = create_schema(&x) || load(&x, 'h', cfg->hot, 0, NULL) ? -1 : 0;
        r->hot_load_s = (double)(bench_now_ns() - t) / 1e9;
    }
    /* First estimate of a doomed load: the hot set's rate, doubled for the TTL or tag. */
    double est = r->hot_load_s * (double)cfg->doomed / (double)cfg->hot * 2;
    for (uint64_t i = 0; i < cfg->rounds && rc == 0; i++) {
        say(&x, "round %llu of %llu\n", (unsigned long long)i + 1, (unsigned long long)cfg->rounds);
        if (r->exp)
            rc = run_expiry(&x, &r->exp[i], &est, 2 * i + 1);
        if (rc == 0 && r->inv)
            rc = run_invalidate(&x, &r->inv[i], 2 * i + 2);
        if (rc == 0)
            r->rounds_done++;
    }
    if (x.c.fd >= 0)
        close(x.c.fd);
    mdx_buf_fini(&x.c.in);
    free(x.value);
    return rc;
}

void reclaim_res_fini(const reclaim_cfg_t *cfg, reclaim_res_t *r)
{
    for (uint64_t i = 0; i < cfg->rounds; i++)
        for (int w = 0; w < RECLAIM__WINDOWS; w++) {
            if (r->exp)
                bench_window_fini(&r->exp[i].w[w]);
            if (r->inv)
                bench_window_fini(&r->inv[i].w[w]);
        }
    free(r->exp);
    free(r->inv);
    r->exp = r->inv = NULL;
}

int reclaim_baseline(const reclaim_case_t *c, bench_window_t *out)
{
    memset(out, 0, sizeof(*out));
    if (bench_hist_init(&out->get) || bench_hist_init(&out->put))
        return -1;
    for (int w = RECLAIM_BEFORE; w <= RECLAIM_AFTER; w += 2) {
        bench_hist_merge(&out->get, &c->w[w].get);
        out->ops += c->w[w].ops;
        out->errors += c->w[w].errors;
        out->stalls += c->w[w].stalls;
        out->elapsed += c->w[w].elapsed;
    }
    return 0;
}
