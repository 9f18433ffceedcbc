/*
 * memdex-bench cache: key sequences, the read-through runner and the embedded engine as the
 * cache (see cache.h). The runner owns the order of requests; the caches only answer batches,
 * so memdex and Redis are driven by the same loop and see the same keys.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/cache.h"

const char *bench_cdist_name(bench_cdist_t d)
{
    static const char *const names[] = {"scrambled", "zipfian", "cycle"};
    return (unsigned)d <= BENCH_CDIST_CYCLE ? names[d] : "?";
}

int bench_ckeys_init(bench_ckeys_t *k, bench_cdist_t dist, int64_t keys, uint64_t seed)
{
    memset(k, 0, sizeof(*k));
    k->dist = dist;
    k->keys = keys;
    if (keys < 1)
        return -1;
    switch (dist) {
    case BENCH_CDIST_SCRAMBLED:
        /* Exactly YCSB's workload C: CoreWorkload over `keys` loaded records, no inserts. */
        return bench_workload_init(&k->w, bench_workload_find("ycsb-c"), BENCH_DIST_ZIPFIAN, keys,
                                   0, 10, 100, seed);
    case BENCH_CDIST_ZIPFIAN:
        bench_ycsb_rng_seed(&k->rng, seed);
        bench_zipf_init(&k->zipf, 0, keys - 1, BENCH_ZIPFIAN_CONSTANT, -1, &k->rng);
        return 0;
    case BENCH_CDIST_CYCLE:
        return 0;
    }
    return -1;
}

void bench_ckeys_fini(bench_ckeys_t *k)
{
    if (k->dist == BENCH_CDIST_SCRAMBLED && k->w.def)
        bench_workload_fini(&k->w);
}

int64_t bench_ckeys_next(bench_ckeys_t *k)
{
    switch (k->dist) {
    case BENCH_CDIST_SCRAMBLED: {
        bench_opdesc_t op;
        bench_workload_next(&k->w, &op);
        return op.keynum;
    }
    case BENCH_CDIST_ZIPFIAN:
        return bench_zipf_next(&k->zipf, &k->rng);
    case BENCH_CDIST_CYCLE:
    default: {
        int64_t v = k->next;
        k->next = (k->next + 1) % k->keys;
        return v;
    }
    }
}

void bench_cache_body(uint8_t out[BENCH_CACHE_BODY], int64_t keynum)
{
    const size_t slen = BENCH_CACHE_BODY - 5;
    out[0] = 0x81; /* fixmap of 1 */
    out[1] = 0xa1; /* fixstr "v" */
    out[2] = 'v';
    out[3] = 0xd9; /* str8 */
    out[4] = (uint8_t)slen;
    char num[24];
    int n = snprintf(num, sizeof(num), "%lld:", (long long)keynum);
    for (size_t i = 0; i < slen; i++)
        out[5 + i] = i < (size_t)n ? (uint8_t)num[i] : (uint8_t)('a' + i % 26);
}

double bench_hit_ratio(const bench_hits_t *h)
{
    return h->requests ? (double)h->hits / (double)h->requests : 0.0;
}

void bench_hits_add(bench_hits_t *h, const uint8_t *hit, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h->requests++;
        if (hit[i])
            h->hits++;
        else
            h->misses++;
    }
}

/* Replays `count` requests in batches; counts them into h when h is not NULL. */
static int replay(const bench_cache_cfg_t *cfg, const bench_cache_ops_t *ops, bench_ckeys_t *k,
                  uint64_t count, int64_t *keys, int64_t *missed, uint8_t *hit, bench_hits_t *h)
{
    while (count) {
        size_t n = count < cfg->batch ? (size_t)count : cfg->batch;
        for (size_t i = 0; i < n; i++)
            keys[i] = bench_ckeys_next(k);
        if (ops->get(ops->data, keys, n, hit))
            return -1;
        size_t nm = 0;
        for (size_t i = 0; i < n; i++)
            if (!hit[i])
                missed[nm++] = keys[i];
        if (nm && ops->fill(ops->data, missed, nm))
            return -1;
        if (h)
            bench_hits_add(h, hit, n);
        count -= n;
    }
    return 0;
}

int bench_cache_run(const bench_cache_cfg_t *cfg, const bench_cache_ops_t *ops, bench_hits_t *out)
{
    memset(out, 0, sizeof(*out));
    if (cfg->batch < 1 || cfg->batch > BENCH_CACHE_BATCH_MAX)
        return -1;
    int64_t *keys = malloc(cfg->batch * sizeof(*keys));
    int64_t *missed = malloc(cfg->batch * sizeof(*missed));
    uint8_t *hit = malloc(cfg->batch);
    bench_ckeys_t k;
    int rc = -1;
    if (!keys || !missed || !hit || bench_ckeys_init(&k, cfg->dist, cfg->keys, cfg->seed)) {
        fprintf(stderr, "memdex-bench: cache: out of memory\n");
        goto out_free;
    }
    if (replay(cfg, ops, &k, cfg->warmup, keys, missed, hit, NULL))
        goto out;
    if (ops->mark && ops->mark(ops->data))
        goto out;
    uint64_t t0 = bench_now_ns();
    if (replay(cfg, ops, &k, cfg->requests, keys, missed, hit, out))
        goto out;
    out->seconds = (double)(bench_now_ns() - t0) / 1e9;
    rc = 0;
out:
    bench_ckeys_fini(&k);
out_free:
    free(keys);
    free(missed);
    free(hit);
    return rc;
}

static int cmp_u32_desc(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x < y) - (x > y);
}

double bench_cache_static_best(const bench_cache_cfg_t *cfg, uint64_t capacity)
{
    uint32_t *count = calloc((size_t)cfg->keys, sizeof(*count));
    bench_ckeys_t k;
    if (!count || bench_ckeys_init(&k, cfg->dist, cfg->keys, cfg->seed)) {
        free(count);
        return -1;
    }
    for (uint64_t i = 0; i < cfg->warmup; i++)
        (void)bench_ckeys_next(&k);
    for (uint64_t i = 0; i < cfg->requests; i++) {
        int64_t key = bench_ckeys_next(&k);
        if (count[key] != UINT32_MAX)
            count[key]++;
    }
    bench_ckeys_fini(&k);
    qsort(count, (size_t)cfg->keys, sizeof(*count), cmp_u32_desc);
    uint64_t top = 0;
    for (uint64_t i = 0; i < capacity && i < (uint64_t)cfg->keys; i++)
        top += count[i];
    free(count);
    return cfg->requests ? (double)top / (double)cfg->requests : 0.0;
}

/* ---- the embedded engine ---- */

#define CMDX_COLL "cache"

static size_t cmdx_key(uint8_t out[BENCH_CACHE_KEYMAX + 8], int64_t keynum)
{
    char name[BENCH_CACHE_KEYMAX];
    size_t len = bench_key_name(keynum, name);
    return mdx_key_str(out, name, len);
}

static int cmdx_fail(bench_cmdx_t *m, const char *what, int rc)
{
    fprintf(stderr, "memdex-bench: cache: %s failed: %s: %s\n", what, mdx_err_name(rc),
            mdx_store_errmsg(m->st));
    m->failed = 1;
    return -1;
}

int bench_cmdx_open(bench_cmdx_t *m, mdx_evict_policy_t policy, uint64_t capacity, size_t maxmemory)
{
    memset(m, 0, sizeof(*m));
    mdx_store_opts_t so;
    memset(&so, 0, sizeof(so));
    so.maxmemory = maxmemory;
    so.policy = policy;
    int rc = mdx_store_new(&so, &m->st);
    if (rc) {
        fprintf(stderr, "memdex-bench: cache: store_new failed: %s\n", mdx_err_name(rc));
        return -1;
    }
    if ((rc = mdx_coll_create(m->st, CMDX_COLL, &m->c)))
        return cmdx_fail(m, "coll_create", rc);
    mdx_coll_opts_t co = {capacity, policy, 0};
    if ((rc = mdx_coll_configure(m->c, &co)))
        return cmdx_fail(m, "coll_configure", rc);
    mdx_coll_stats(m->c, &m->at_mark);
    return 0;
}

void bench_cmdx_close(bench_cmdx_t *m)
{
    mdx_store_free(m->st);
    memset(m, 0, sizeof(*m));
}

static int cmdx_get(void *data, const int64_t *keys, size_t n, uint8_t *hit)
{
    bench_cmdx_t *m = data;
    for (size_t i = 0; i < n; i++) {
        uint8_t k[BENCH_CACHE_KEYMAX + 8];
        size_t kl = cmdx_key(k, keys[i]);
        mdx_rec_view_t v;
        int rc = mdx_get(m->c, k, kl, &v);
        if (rc == 0 && v.body_len != BENCH_CACHE_BODY) {
            fprintf(stderr, "memdex-bench: cache: get returned %zu bytes, not %d\n", v.body_len,
                    BENCH_CACHE_BODY);
            return -1;
        }
        if (rc && rc != MDX_ENOTFOUND)
            return cmdx_fail(m, "get", rc);
        hit[i] = rc == 0;
    }
    return 0;
}

static int cmdx_fill(void *data, const int64_t *keys, size_t n)
{
    bench_cmdx_t *m = data;
    for (size_t i = 0; i < n; i++) {
        uint8_t k[BENCH_CACHE_KEYMAX + 8], body[BENCH_CACHE_BODY];
        size_t kl = cmdx_key(k, keys[i]);
        bench_cache_body(body, keys[i]);
        int rc = mdx_put(m->c, k, kl, body, sizeof(body), NULL);
        if (rc)
            return cmdx_fail(m, "put", rc);
    }
    return 0;
}

static int cmdx_mark(void *data)
{
    bench_cmdx_t *m = data;
    mdx_coll_stats(m->c, &m->at_mark);
    return 0;
}

bench_cache_ops_t bench_cmdx_ops(bench_cmdx_t *m)
{
    bench_cache_ops_t ops = {cmdx_get, cmdx_fill, cmdx_mark, m};
    return ops;
}

void bench_cmdx_stats(const bench_cmdx_t *m, bench_cmdx_stats_t *out)
{
    mdx_coll_stats_t s;
    mdx_coll_stats(m->c, &s);
    const mdx_counters_t *a = &s.ops, *b = &m->at_mark.ops;
    out->hits = a->hits - b->hits;
    out->misses = a->misses - b->misses;
    out->evictions =
        (a->evicted_capacity - b->evicted_capacity) + (a->evicted_memory - b->evicted_memory);
    out->records = s.records;
    out->memory = s.memory;
}

int bench_cmdx_bytes(uint64_t n, size_t *memory)
{
    bench_cmdx_t m;
    if (bench_cmdx_open(&m, MDX_EVICT_NOEVICTION, 0, 0)) {
        bench_cmdx_close(&m);
        return -1;
    }
    int64_t keys[256];
    int rc = 0;
    for (uint64_t i = 0; i < n && rc == 0;) {
        size_t b = 0;
        while (b < 256 && i < n)
            keys[b++] = (int64_t)i++;
        rc = cmdx_fill(&m, keys, b);
    }
    mdx_store_stats_t s;
    mdx_store_stats(m.st, &s);
    *memory = s.memory;
    bench_cmdx_close(&m);
    return rc;
}
