/*
 * `memdex-bench cache`: hit ratios of the cache tier's eviction policies, and of Redis's, on
 * YCSB workload C's keys (the runner and the caches are cache_run.c and cache_redis.c).
 *
 * For each key distribution: the embedded engine with one collection limited to `capacity`
 * records under each policy, the engine limited by maxmemory instead (sized to what `capacity`
 * records take, measured first), Redis under each maxmemory-policy with maxmemory sized the
 * same way from INFO memory, and the static best (the capacity most requested keys held for
 * the whole run) as the reference no policy can beat by much on independent requests.
 *
 * Every cache's own count of hits must equal the benchmark's (mdx_coll_stats for the engine,
 * INFO stats keyspace_hits for Redis); a difference fails the run.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "bench/cache.h"

#define TARGET_HIT_RATIO 0.80 /* issue: s3fifo at least this, and at least every Redis policy */
#define MAX_POLICIES     8
#define MAX_ROWS         (2 * (2 * MAX_POLICIES + 1))

typedef struct {
    uint64_t keys, capacity, warmup, requests, seed, batch;
    int dists; /* bit per bench_cdist_t */
    const char *policies[MAX_POLICIES];
    size_t npolicies;
    const char *rpolicies[MAX_POLICIES];
    size_t nrpolicies;
    char rhost[256];
    int rport; /* 0: no Redis */
    int json;
} opts_t;

typedef struct {
    bench_cdist_t dist;
    const char *system; /* "memdex", "redis", "-" (static best) */
    char policy[32];
    const char *limit; /* "capacity", "maxmemory", "keys" */
    bench_hits_t h;
    uint64_t evictions, records;
} row_t;

typedef struct {
    size_t mdx_memory;        /* engine: collection memory at `capacity` records */
    uint64_t redis_used;      /* Redis: used_memory at `capacity` keys (its maxmemory) */
    uint64_t redis_empty;     /* Redis: used_memory when empty */
    uint64_t redis_maxmemory; /* Redis: the limit at which it held `capacity` keys */
    uint64_t redis_held;      /* keys it held at that limit when calibrated */
    char redis_version[32];
    row_t rows[MAX_ROWS];
    size_t nrows;
} result_t;

/* ---- runs ---- */

static void cfg_of(const opts_t *o, bench_cdist_t d, bench_cache_cfg_t *cfg)
{
    cfg->dist = d;
    cfg->keys = (int64_t)o->keys;
    cfg->warmup = o->warmup;
    cfg->requests = o->requests;
    cfg->seed = o->seed;
    cfg->batch = (uint32_t)o->batch;
}

/* "s3fifo" (capacity) or "s3fifo-mem" (maxmemory). */
static int parse_mdx_policy(const char *name, mdx_evict_policy_t *p, int *mem)
{
    size_t len = strlen(name);
    *mem = len > 4 && strcmp(name + len - 4, "-mem") == 0;
    if (*mem)
        len -= 4;
    return mdx_evict_policy_parse(name, len, 0, p) || *p == MDX_EVICT_NOEVICTION ? -1 : 0;
}

/* Fills in a run's row once the cache's own hit and miss counts (since the mark) are checked
 * against the benchmark's: a difference means one of the two counts wrong. */
static int finish_row(row_t *row, bench_cdist_t d, const char *system, const char *policy,
                      const char *limit, uint64_t hits, uint64_t misses, uint64_t evictions,
                      uint64_t records)
{
    if (hits != row->h.hits || misses != row->h.misses) {
        fprintf(stderr,
                "memdex-bench: cache: %s %s counted %" PRIu64 " hits and %" PRIu64
                " misses, the benchmark %" PRIu64 " and %" PRIu64 "\n",
                system, policy, hits, misses, row->h.hits, row->h.misses);
        return BENCH_EXIT_FAIL;
    }
    row->dist = d;
    row->system = system;
    snprintf(row->policy, sizeof(row->policy), "%s", policy);
    row->limit = limit;
    row->evictions = evictions;
    row->records = records;
    return BENCH_EXIT_OK;
}

static int run_mdx(const opts_t *o, bench_cdist_t d, const char *name, size_t mdx_memory,
                   row_t *row)
{
    mdx_evict_policy_t p;
    int mem;
    (void)parse_mdx_policy(name, &p, &mem);
    bench_cache_cfg_t cfg;
    cfg_of(o, d, &cfg);
    bench_cmdx_t m;
    int rc = BENCH_EXIT_FAIL;
    /* One byte above the measured size: at exactly the limit the engine refuses the next
     * write (its admission check wants memory below the limit, while eviction stops at it). */
    if (bench_cmdx_open(&m, p, mem ? 0 : o->capacity, mem ? mdx_memory + 1 : 0))
        goto out;
    bench_cache_ops_t ops = bench_cmdx_ops(&m);
    if (bench_cache_run(&cfg, &ops, &row->h))
        goto out;
    bench_cmdx_stats_t s;
    bench_cmdx_stats(&m, &s);
    rc = finish_row(row, d, "memdex", mdx_evict_policy_name(p), mem ? "maxmemory" : "capacity",
                    s.hits, s.misses, s.evictions, s.records);
out:
    bench_cmdx_close(&m);
    return rc;
}

static int run_redis(const opts_t *o, bench_credis_t *r, bench_cdist_t d, const char *policy,
                     uint64_t maxmemory, row_t *row)
{
    bench_cache_cfg_t cfg;
    cfg_of(o, d, &cfg);
    if (bench_credis_prepare(r, maxmemory, policy))
        return BENCH_EXIT_FAIL;
    bench_cache_ops_t ops = bench_credis_ops(r);
    if (bench_cache_run(&cfg, &ops, &row->h))
        return BENCH_EXIT_FAIL;
    bench_credis_stats_t s;
    if (bench_credis_stats(r, &s))
        return BENCH_EXIT_FAIL;
    return finish_row(row, d, "redis", policy, "maxmemory", s.hits, s.misses, s.evictions,
                      s.records);
}

static int run(const opts_t *o, result_t *res)
{
    bench_credis_t *r = NULL;
    int rc = BENCH_EXIT_FAIL;
    if (bench_cmdx_bytes(o->capacity, &res->mdx_memory))
        goto out;
    if (o->rport) {
        if (!(r = bench_credis_connect(o->rhost, o->rport)))
            goto out;
        if (bench_credis_bytes(r, o->capacity, &res->redis_used, &res->redis_empty) ||
            bench_credis_calibrate(r, o->capacity, &res->redis_maxmemory, &res->redis_held))
            goto out;
    }
    for (int d = 0; d <= BENCH_CDIST_ZIPFIAN; d++) {
        if (!(o->dists & (1 << d)))
            continue;
        for (size_t i = 0; i < o->npolicies; i++) {
            fprintf(stderr, "cache: %s memdex %s\n", bench_cdist_name((bench_cdist_t)d),
                    o->policies[i]);
            if (run_mdx(o, (bench_cdist_t)d, o->policies[i], res->mdx_memory,
                        &res->rows[res->nrows++]))
                goto out;
        }
        for (size_t i = 0; r && i < o->nrpolicies; i++) {
            fprintf(stderr, "cache: %s redis %s\n", bench_cdist_name((bench_cdist_t)d),
                    o->rpolicies[i]);
            if (run_redis(o, r, (bench_cdist_t)d, o->rpolicies[i], res->redis_maxmemory,
                          &res->rows[res->nrows++]))
                goto out;
        }
        bench_cache_cfg_t cfg;
        cfg_of(o, (bench_cdist_t)d, &cfg);
        row_t *row = &res->rows[res->nrows++];
        double best = bench_cache_static_best(&cfg, o->capacity);
        if (best < 0) {
            fprintf(stderr, "memdex-bench: cache: out of memory\n");
            goto out;
        }
        row->dist = (bench_cdist_t)d;
        row->system = "-";
        snprintf(row->policy, sizeof(row->policy), "static best");
        row->limit = "keys";
        row->h.requests = o->requests;
        row->h.hits = (uint64_t)(best * (double)o->requests + 0.5);
        row->h.misses = o->requests - row->h.hits;
        row->records = o->capacity;
    }
    if (r) {
        bench_credis_stats_t s;
        if (bench_credis_stats(r, &s) == 0)
            memcpy(res->redis_version, s.version, sizeof(s.version));
    }
    rc = BENCH_EXIT_OK;
out:
    bench_credis_free(r);
    return rc;
}

/* ---- report ---- */

/* The target for one distribution: memdex s3fifo (capacity) at least TARGET_HIT_RATIO
 * and at least every Redis policy. -1 when there is no s3fifo row. */
static int target_met(const result_t *res, bench_cdist_t d, double *s3)
{
    const row_t *s = NULL;
    for (size_t i = 0; i < res->nrows; i++)
        if (res->rows[i].dist == d && strcmp(res->rows[i].system, "memdex") == 0 &&
            strcmp(res->rows[i].policy, "s3fifo") == 0 &&
            strcmp(res->rows[i].limit, "capacity") == 0)
            s = &res->rows[i];
    if (!s)
        return -1;
    *s3 = bench_hit_ratio(&s->h);
    int met = *s3 >= TARGET_HIT_RATIO;
    for (size_t i = 0; i < res->nrows; i++)
        if (res->rows[i].dist == d && strcmp(res->rows[i].system, "redis") == 0)
            met &= *s3 >= bench_hit_ratio(&res->rows[i].h);
    return met;
}

static void print_table(const opts_t *o, const result_t *res)
{
    printf("memdex-bench cache: %" PRIu64 " keys, capacity %" PRIu64 " records, %d-byte bodies, "
           "warm-up %" PRIu64 " + %" PRIu64 " measured requests, batch %" PRIu64 ", seed %" PRIu64
           "\n",
           o->keys, o->capacity, BENCH_CACHE_BODY, o->warmup, o->requests, o->batch, o->seed);
    printf("memdex maxmemory: %zu bytes (%.1f bytes/record at %" PRIu64 " records)\n",
           res->mdx_memory, (double)res->mdx_memory / (double)o->capacity, o->capacity);
    if (o->rport)
        printf("redis %s maxmemory: %" PRIu64 " bytes (held %" PRIu64
               " keys when filled with %" PRIu64 " under allkeys-lru; used_memory at %" PRIu64
               " keys: %" PRIu64 ", %.1f bytes/key above the empty server's %" PRIu64 ")\n",
               res->redis_version, res->redis_maxmemory, res->redis_held, 2 * o->capacity,
               o->capacity, res->redis_used,
               (double)(res->redis_used - res->redis_empty) / (double)o->capacity,
               res->redis_empty);
    printf("\n%-10s %-7s %-12s %-10s %9s %10s %10s %8s %8s\n", "keys", "system", "policy", "limit",
           "hit ratio", "requests", "evictions", "records", "seconds");
    for (size_t i = 0; i < res->nrows; i++) {
        const row_t *r = &res->rows[i];
        printf("%-10s %-7s %-12s %-10s %9.4f %10" PRIu64 " %10" PRIu64 " %8" PRIu64 " %8.1f\n",
               bench_cdist_name(r->dist), r->system, r->policy, r->limit, bench_hit_ratio(&r->h),
               r->h.requests, r->evictions, r->records, r->h.seconds);
    }
    printf("\ntarget: memdex s3fifo >= %.2f and >= every Redis policy\n", TARGET_HIT_RATIO);
    for (int d = 0; d <= BENCH_CDIST_ZIPFIAN; d++) {
        double s3;
        int met = target_met(res, (bench_cdist_t)d, &s3);
        if (met >= 0)
            printf("  %-10s s3fifo %.4f  %s\n", bench_cdist_name((bench_cdist_t)d), s3,
                   met ? "met" : "MISSED");
    }
}

static void print_json(const opts_t *o, const result_t *res)
{
    printf("{\"bench\":\"cache\",\"keys\":%" PRIu64 ",\"capacity\":%" PRIu64 ",\"warmup\":%" PRIu64
           ",\"requests\":%" PRIu64 ",\"batch\":%" PRIu64 ",\"seed\":%" PRIu64
           ",\"body_bytes\":%d,\"memdex_maxmemory\":%zu",
           o->keys, o->capacity, o->warmup, o->requests, o->batch, o->seed, BENCH_CACHE_BODY,
           res->mdx_memory);
    if (o->rport)
        printf(",\"redis_version\":\"%s\",\"redis_maxmemory\":%" PRIu64
               ",\"redis_calibration_held\":%" PRIu64 ",\"redis_used_memory_at_capacity\":%" PRIu64
               ",\"redis_empty_used_memory\":%" PRIu64,
               res->redis_version, res->redis_maxmemory, res->redis_held, res->redis_used,
               res->redis_empty);
    printf(",\"runs\":[");
    for (size_t i = 0; i < res->nrows; i++) {
        const row_t *r = &res->rows[i];
        printf("%s{\"dist\":\"%s\",\"system\":\"%s\",\"policy\":\"%s\",\"limit\":\"%s\","
               "\"hit_ratio\":%.6f,\"hits\":%" PRIu64 ",\"misses\":%" PRIu64
               ",\"requests\":%" PRIu64 ",\"evictions\":%" PRIu64 ",\"records\":%" PRIu64
               ",\"seconds\":%.3f}",
               i ? "," : "", bench_cdist_name(r->dist), r->system, r->policy, r->limit,
               bench_hit_ratio(&r->h), r->h.hits, r->h.misses, r->h.requests, r->evictions,
               r->records, r->h.seconds);
    }
    printf("],\"target_missed\":[");
    const char *sep = "";
    for (int d = 0; d <= BENCH_CDIST_ZIPFIAN; d++) {
        double s3;
        if (target_met(res, (bench_cdist_t)d, &s3) == 0) {
            printf("%s\"%s\"", sep, bench_cdist_name((bench_cdist_t)d));
            sep = ",";
        }
    }
    printf("]}\n");
}

/* ---- options ---- */

static void usage(FILE *f)
{
    fputs("usage: memdex-bench cache [options]\n"
          "\n"
          "Hit ratio of a read-through cache: each request is a get, and a miss is followed\n"
          "by a put of the record (in batches: the batch's gets, then its misses' puts).\n"
          "Runs the engine under each policy with a capacity in records, the engine with\n"
          "maxmemory instead, Redis (with --redis) with maxmemory sized to the same number of\n"
          "records, and reports the static best (the capacity most requested keys).\n"
          "\n"
          "  --keys N            key space (YCSB recordcount) [1000000]\n"
          "  --capacity N        records the cache holds [keys / 10]\n"
          "  --warmup N          requests before measuring [1000000]\n"
          "  --requests N        measured requests [10000000]\n"
          "  --batch N           requests per batch, 1..4096 (1: exact order) [64]\n"
          "  --dist D            scrambled (YCSB C), zipfian (plain) or both [both]\n"
          "  --policies LIST     engine runs, comma-separated: s3fifo, sieve, lru; NAME-mem\n"
          "                      limits by maxmemory instead of capacity\n"
          "                      [s3fifo,sieve,lru,s3fifo-mem]\n"
          "  --redis HOST:PORT   also run Redis there (it is emptied and reconfigured)\n"
          "  --redis-policies L  [allkeys-lru,allkeys-lfu]\n"
          "  --seed N            seed of the key sequence [1]\n"
          "  --json              print one JSON object instead of the table\n"
          "  -h, --help          print this help\n",
          f);
}

/* Splits a comma-separated list in place. */
static int split_list(char *s, const char **out, size_t *n)
{
    *n = 0;
    for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
        if (*n == MAX_POLICIES)
            return -1;
        out[(*n)++] = tok;
    }
    return *n ? 0 : -1;
}

static char policies_default[] = "s3fifo,sieve,lru,s3fifo-mem";
static char rpolicies_default[] = "allkeys-lru,allkeys-lfu";

static int parse_opts(int argc, char **argv, opts_t *o, int *help)
{
    memset(o, 0, sizeof(*o));
    o->keys = 1000000;
    o->warmup = 1000000;
    o->requests = 10000000;
    o->batch = 64;
    o->seed = 1;
    o->dists = 3;
    *help = 0;
    char *pol = policies_default, *rpol = rpolicies_default;
    int have_capacity = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            *help = 1;
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            o->json = 1;
            continue;
        }
        uint64_t *dst = NULL, min = 0, max = 0;
        if (strcmp(a, "--keys") == 0) {
            dst = &o->keys, min = 1, max = 1000000000;
        } else if (strcmp(a, "--capacity") == 0) {
            dst = &o->capacity, min = 1, max = 1000000000;
            have_capacity = 1;
        } else if (strcmp(a, "--warmup") == 0) {
            dst = &o->warmup, min = 0, max = UINT64_MAX / 2;
        } else if (strcmp(a, "--requests") == 0) {
            dst = &o->requests, min = 1, max = UINT64_MAX / 2;
        } else if (strcmp(a, "--batch") == 0) {
            dst = &o->batch, min = 1, max = BENCH_CACHE_BATCH_MAX;
        } else if (strcmp(a, "--seed") == 0) {
            dst = &o->seed, min = 0, max = UINT64_MAX;
        } else if (!val) {
            fprintf(stderr, "memdex-bench: cache: unknown option or missing value '%s'\n", a);
            return -1;
        } else if (strcmp(a, "--dist") == 0) {
            if (strcmp(val, "scrambled") == 0)
                o->dists = 1 << BENCH_CDIST_SCRAMBLED;
            else if (strcmp(val, "zipfian") == 0)
                o->dists = 1 << BENCH_CDIST_ZIPFIAN;
            else if (strcmp(val, "both") == 0)
                o->dists = 3;
            else {
                fprintf(stderr, "memdex-bench: cache: unknown distribution '%s'\n", val);
                return -1;
            }
        } else if (strcmp(a, "--policies") == 0) {
            pol = argv[i + 1];
        } else if (strcmp(a, "--redis-policies") == 0) {
            rpol = argv[i + 1];
        } else if (strcmp(a, "--redis") == 0) {
            const char *colon = strrchr(val, ':');
            uint64_t port;
            if (!colon || colon == val || (size_t)(colon - val) >= sizeof(o->rhost) ||
                bench_parse_u64("--redis port", colon + 1, 1, 65535, &port))
                return -1;
            memcpy(o->rhost, val, (size_t)(colon - val));
            o->rhost[colon - val] = '\0';
            o->rport = (int)port;
        } else {
            fprintf(stderr, "memdex-bench: cache: unknown option '%s'\n", a);
            return -1;
        }
        i++;
        if (dst && bench_parse_u64(a, val, min, max, dst))
            return -1;
    }
    if (!have_capacity)
        o->capacity = o->keys / 10 ? o->keys / 10 : 1;
    if (split_list(pol, o->policies, &o->npolicies)) {
        fprintf(stderr, "memdex-bench: cache: --policies: 1 to %d names\n", MAX_POLICIES);
        return -1;
    }
    for (size_t i = 0; i < o->npolicies; i++) {
        mdx_evict_policy_t p;
        int mem;
        if (parse_mdx_policy(o->policies[i], &p, &mem)) {
            fprintf(stderr, "memdex-bench: cache: unknown policy '%s' (s3fifo, sieve, lru)\n",
                    o->policies[i]);
            return -1;
        }
    }
    if (split_list(rpol, o->rpolicies, &o->nrpolicies)) {
        fprintf(stderr, "memdex-bench: cache: --redis-policies: 1 to %d names\n", MAX_POLICIES);
        return -1;
    }
    return 0;
}

int bench_cache_main(int argc, char **argv)
{
    opts_t o;
    int help;
    if (parse_opts(argc, argv, &o, &help)) {
        usage(stderr);
        return BENCH_EXIT_USAGE;
    }
    if (help) {
        usage(stdout);
        return BENCH_EXIT_OK;
    }
    result_t *res = calloc(1, sizeof(*res));
    if (!res)
        return BENCH_EXIT_FAIL;
    int rc = run(&o, res);
    if (rc == BENCH_EXIT_OK) {
        if (o.json)
            print_json(&o, res);
        else
            print_table(&o, res);
    }
    free(res);
    return rc;
}
