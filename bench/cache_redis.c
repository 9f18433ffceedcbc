/*
 * memdex-bench cache, Redis as the cache: hiredis's blocking context, pipelined (a batch of
 * GETs is appended and written at once, then its replies read; then the SETs of the batch's
 * misses the same way). Keys are bench_key_name's "user<fnv>" strings, values the same
 * 100-byte bodies the engine stores. Hits and misses are counted from the replies (a bulk
 * string is a hit, nil a miss); INFO stats' keyspace_hits and keyspace_misses, reset when the
 * warm-up ends, cross-check them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "bench/cache.h"

struct bench_credis {
    redisContext *ctx;
};

static int rfail(const char *what, const redisContext *ctx, const redisReply *r)
{
    if (r && r->type == REDIS_REPLY_ERROR)
        fprintf(stderr, "memdex-bench: cache: redis %s: %s\n", what, r->str);
    else if (ctx && ctx->err)
        fprintf(stderr, "memdex-bench: cache: redis %s: %s\n", what, ctx->errstr);
    else
        fprintf(stderr, "memdex-bench: cache: redis %s: unexpected reply\n", what);
    return -1;
}

bench_credis_t *bench_credis_connect(const char *host, int port)
{
    redisContext *ctx = redisConnect(host, port);
    if (!ctx || ctx->err) {
        fprintf(stderr, "memdex-bench: cache: cannot connect to redis at %s:%d: %s\n", host, port,
                ctx ? ctx->errstr : "out of memory");
        redisFree(ctx);
        return NULL;
    }
    bench_credis_t *r = calloc(1, sizeof(*r));
    if (!r) {
        redisFree(ctx);
        return NULL;
    }
    r->ctx = ctx;
    return r;
}

void bench_credis_free(bench_credis_t *r)
{
    if (!r)
        return;
    redisFree(r->ctx);
    free(r);
}

/* One command; 0 when the reply is a status or integer (not an error). */
static int simple(bench_credis_t *r, const char *what, const char *fmt, const char *arg)
{
    redisReply *rep = arg ? redisCommand(r->ctx, fmt, arg) : redisCommand(r->ctx, fmt);
    int ok = rep && (rep->type == REDIS_REPLY_STATUS || rep->type == REDIS_REPLY_INTEGER);
    if (!ok)
        rfail(what, r->ctx, rep);
    freeReplyObject(rep);
    return ok ? 0 : -1;
}

/* The value of `field` in an INFO section (as an unsigned number); 0 when absent. */
static int info_field(bench_credis_t *r, const char *section, const char *field, uint64_t *out,
                      char *str, size_t str_len)
{
    redisReply *rep = redisCommand(r->ctx, "INFO %s", section);
    if (!rep || rep->type != REDIS_REPLY_STRING) {
        rfail("INFO", r->ctx, rep);
        freeReplyObject(rep);
        return -1;
    }
    size_t fl = strlen(field);
    const char *p = rep->str;
    *out = 0;
    while (p && *p) {
        if (strncmp(p, field, fl) == 0 && p[fl] == ':') {
            const char *v = p + fl + 1;
            *out = strtoull(v, NULL, 10);
            if (str) {
                size_t n = strcspn(v, "\r\n");
                n = n < str_len - 1 ? n : str_len - 1;
                memcpy(str, v, n);
                str[n] = '\0';
            }
            break;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    freeReplyObject(rep);
    return 0;
}

static int dbsize(bench_credis_t *r, uint64_t *out)
{
    redisReply *rep = redisCommand(r->ctx, "DBSIZE");
    int ok = rep && rep->type == REDIS_REPLY_INTEGER;
    if (ok)
        *out = (uint64_t)rep->integer;
    else
        rfail("DBSIZE", r->ctx, rep);
    freeReplyObject(rep);
    return ok ? 0 : -1;
}

static int credis_fill(void *data, const int64_t *keys, size_t n)
{
    bench_credis_t *r = data;
    for (size_t i = 0; i < n; i++) {
        char key[BENCH_CACHE_KEYMAX];
        uint8_t body[BENCH_CACHE_BODY];
        size_t kl = bench_key_name(keys[i], key);
        bench_cache_body(body, keys[i]);
        if (redisAppendCommand(r->ctx, "SET %b %b", key, kl, body, sizeof(body)) != REDIS_OK)
            return rfail("SET", r->ctx, NULL);
    }
    for (size_t i = 0; i < n; i++) {
        redisReply *rep = NULL;
        if (redisGetReply(r->ctx, (void **)&rep) != REDIS_OK)
            return rfail("SET", r->ctx, NULL);
        int ok = rep->type == REDIS_REPLY_STATUS;
        if (!ok)
            rfail("SET", r->ctx, rep);
        freeReplyObject(rep);
        if (!ok)
            return -1;
    }
    return 0;
}

static int credis_get(void *data, const int64_t *keys, size_t n, uint8_t *hit)
{
    bench_credis_t *r = data;
    for (size_t i = 0; i < n; i++) {
        char key[BENCH_CACHE_KEYMAX];
        size_t kl = bench_key_name(keys[i], key);
        if (redisAppendCommand(r->ctx, "GET %b", key, kl) != REDIS_OK)
            return rfail("GET", r->ctx, NULL);
    }
    for (size_t i = 0; i < n; i++) {
        redisReply *rep = NULL;
        if (redisGetReply(r->ctx, (void **)&rep) != REDIS_OK)
            return rfail("GET", r->ctx, NULL);
        int ok = 1;
        if (rep->type == REDIS_REPLY_NIL) {
            hit[i] = 0;
        } else if (rep->type == REDIS_REPLY_STRING && rep->len == BENCH_CACHE_BODY) {
            hit[i] = 1;
        } else {
            ok = 0;
            rfail("GET", r->ctx, rep);
        }
        freeReplyObject(rep);
        if (!ok)
            return -1;
    }
    return 0;
}

static int credis_mark(void *data)
{
    return simple(data, "CONFIG RESETSTAT", "CONFIG RESETSTAT", NULL);
}

bench_cache_ops_t bench_credis_ops(bench_credis_t *r)
{
    bench_cache_ops_t ops = {credis_get, credis_fill, credis_mark, r};
    return ops;
}

int bench_credis_bytes(bench_credis_t *r, uint64_t n, uint64_t *used, uint64_t *empty)
{
    if (simple(r, "CONFIG SET maxmemory", "CONFIG SET maxmemory 0", NULL) ||
        simple(r, "FLUSHALL", "FLUSHALL", NULL) ||
        info_field(r, "memory", "used_memory", empty, NULL, 0))
        return -1;
    int64_t keys[256];
    for (uint64_t i = 0; i < n;) {
        size_t b = 0;
        while (b < 256 && i < n)
            keys[b++] = (int64_t)i++;
        if (credis_fill(r, keys, b))
            return -1;
    }
    uint64_t keys_held = 0;
    if (info_field(r, "memory", "used_memory", used, NULL, 0) || dbsize(r, &keys_held) ||
        simple(r, "FLUSHALL", "FLUSHALL", NULL))
        return -1;
    if (keys_held != n) {
        fprintf(stderr, "memdex-bench: cache: redis holds %llu keys after loading %llu\n",
                (unsigned long long)keys_held, (unsigned long long)n);
        return -1;
    }
    return 0;
}

int bench_credis_prepare(bench_credis_t *r, uint64_t maxmemory, const char *policy)
{
    char mm[32];
    snprintf(mm, sizeof(mm), "%llu", (unsigned long long)maxmemory);
    if (simple(r, "CONFIG SET maxmemory", "CONFIG SET maxmemory 0", NULL) ||
        simple(r, "FLUSHALL", "FLUSHALL", NULL) ||
        simple(r, "CONFIG SET maxmemory-policy", "CONFIG SET maxmemory-policy %s", policy) ||
        simple(r, "CONFIG SET maxmemory", "CONFIG SET maxmemory %s", mm) ||
        simple(r, "CONFIG RESETSTAT", "CONFIG RESETSTAT", NULL))
        return -1;
    return 0;
}

int bench_credis_stats(bench_credis_t *r, bench_credis_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    uint64_t unused;
    if (dbsize(r, &out->records) || info_field(r, "stats", "keyspace_hits", &out->hits, NULL, 0) ||
        info_field(r, "stats", "keyspace_misses", &out->misses, NULL, 0) ||
        info_field(r, "stats", "evicted_keys", &out->evictions, NULL, 0) ||
        info_field(r, "memory", "used_memory", &out->used_memory, NULL, 0) ||
        info_field(r, "server", "redis_version", &unused, out->version, sizeof(out->version)))
        return -1;
    return 0;
}

/* Fills keys 0..2n-1 under allkeys-lru with the limit `maxmemory`; *held receives DBSIZE. */
static int fill_twice(bench_credis_t *r, uint64_t n, uint64_t maxmemory, uint64_t *held)
{
    if (bench_credis_prepare(r, maxmemory, "allkeys-lru"))
        return -1;
    int64_t keys[64]; /* the cache runs' default batch: query buffers count in used_memory */
    for (uint64_t i = 0; i < 2 * n;) {
        size_t b = 0;
        while (b < 64 && i < 2 * n)
            keys[b++] = (int64_t)i++;
        if (credis_fill(r, keys, b))
            return -1;
    }
    return dbsize(r, held);
}

int bench_credis_calibrate(bench_credis_t *r, uint64_t n, uint64_t *maxmemory, uint64_t *held)
{
    uint64_t used, empty;
    if (bench_credis_bytes(r, n, &used, &empty))
        return -1;
    double per_key = (double)(used - empty) / (double)n;
    *maxmemory = used;
    for (int round = 0; round < 4; round++) {
        if (fill_twice(r, n, *maxmemory, held))
            return -1;
        int64_t off = (int64_t)*held - (int64_t)n;
        if ((uint64_t)(off < 0 ? -off : off) <= n / 1000)
            break;
        *maxmemory = (uint64_t)((double)*maxmemory - (double)off * per_key);
    }
    return simple(r, "FLUSHALL", "FLUSHALL", NULL);
}
