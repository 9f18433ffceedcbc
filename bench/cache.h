/*
 * memdex-bench cache: the hit ratio of a cache in front of a slower store (the cache tier).
 *
 * A run replays a key sequence against a cache: a batch of gets, then a fill (put) of every
 * key the batch missed, the read-through pattern of an application cache. The first `warmup`
 * requests fill the cache and are not counted; the next `requests` are. The runner is the same
 * for every cache (bench_cache_ops_t): the embedded engine with a capacity or a memory limit,
 * or Redis over a socket, so that each sees the same keys in the same order and the same
 * batching (within a batch every get comes before any fill, so a key missed twice in one batch
 * counts two misses; with batch 1 the order is exact).
 *
 * Keys: YCSB workload C's scrambled zipfian (bench/ycsb.c, exactly YCSB's), YCSB's plain
 * zipfian (item 0 the hottest), or a cycle 0, 1, ..., n-1, 0, ... for tests whose hit ratio
 * can be computed by hand.
 */
#ifndef MDX_BENCH_CACHE_H
#define MDX_BENCH_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "bench/ycsb.h"
#include "memdex/store.h"

#define BENCH_CACHE_BODY      100 /* bytes of each record's body (a msgpack map) */
#define BENCH_CACHE_KEYMAX    32  /* bench_key_name's longest name plus its NUL */
#define BENCH_CACHE_BATCH_MAX 4096

typedef enum {
    BENCH_CDIST_SCRAMBLED = 0, /* YCSB workload C: ScrambledZipfianGenerator via CoreWorkload */
    BENCH_CDIST_ZIPFIAN = 1,   /* ZipfianGenerator(0, keys - 1, 0.99): key 0 the hottest */
    BENCH_CDIST_CYCLE = 2,     /* 0, 1, ..., keys - 1, 0, 1, ... (tests) */
} bench_cdist_t;

/** "scrambled", "zipfian", "cycle". */
const char *bench_cdist_name(bench_cdist_t d);

/** A key sequence over keys 0..keys-1, reproduced exactly by its seed. */
typedef struct {
    bench_cdist_t dist;
    int64_t keys;
    int64_t next; /* cycle */
    bench_rng_t rng;
    bench_zipf_t zipf;
    bench_workload_t w; /* scrambled */
} bench_ckeys_t;

/** Returns 0, or -1 (no memory, or keys < 1). Release with bench_ckeys_fini. */
int bench_ckeys_init(bench_ckeys_t *k, bench_cdist_t dist, int64_t keys, uint64_t seed);
void bench_ckeys_fini(bench_ckeys_t *k);
int64_t bench_ckeys_next(bench_ckeys_t *k);

/** The record body of key keynum: a msgpack map {"v": 95-byte string} of BENCH_CACHE_BODY
 *  bytes, the key number written at the start of the string. */
void bench_cache_body(uint8_t out[BENCH_CACHE_BODY], int64_t keynum);

/** A cache under test. Each callback returns 0, or -1 after printing what failed. */
typedef struct {
    /* Looks up n keys (key numbers; the cache names them with bench_key_name) and sets hit[i]
     * to 1 when key i was there. */
    int (*get)(void *data, const int64_t *keys, size_t n, uint8_t *hit);
    /* Stores the records of n keys. */
    int (*fill)(void *data, const int64_t *keys, size_t n);
    /* Called once the warm-up is over, before the first measured request (may be NULL). */
    int (*mark)(void *data);
    void *data;
} bench_cache_ops_t;

typedef struct {
    bench_cdist_t dist;
    int64_t keys;
    uint64_t warmup, requests, seed;
    uint32_t batch; /* 1..BENCH_CACHE_BATCH_MAX */
} bench_cache_cfg_t;

/** Counts of the measured requests. */
typedef struct {
    uint64_t requests, hits, misses;
    double seconds; /* the measured part */
} bench_hits_t;

/** hits / requests, 0 when there were none. */
double bench_hit_ratio(const bench_hits_t *h);
/** Counts one batch's outcome (hit[i] is 0 or 1). */
void bench_hits_add(bench_hits_t *h, const uint8_t *hit, size_t n);

/** Replays cfg's key sequence against ops: warm-up, mark, measured requests. Returns 0 or -1
 *  (a callback failed, or no memory). */
int bench_cache_run(const bench_cache_cfg_t *cfg, const bench_cache_ops_t *ops, bench_hits_t *out);

/** The best any cache holding `capacity` keys fixed for the whole measured part can do: the
 *  share of the measured requests that go to the `capacity` most requested keys (counted over
 *  the same sequence). Returns -1 on no memory, else the ratio. */
double bench_cache_static_best(const bench_cache_cfg_t *cfg, uint64_t capacity);

/* ---- the embedded engine ---- */

typedef struct {
    mdx_store_t *st;
    mdx_coll_t *c;
    mdx_coll_stats_t at_mark; /* the collection's counters when the warm-up ended */
    int failed;
} bench_cmdx_t;

/** A store with one collection "cache" (no secondary index) limited by capacity records
 *  (0: none) and maxmemory bytes (0: none), evicting with policy. Returns 0 or -1. Release
 *  with bench_cmdx_close. */
int bench_cmdx_open(bench_cmdx_t *m, mdx_evict_policy_t policy, uint64_t capacity,
                    size_t maxmemory);
void bench_cmdx_close(bench_cmdx_t *m);
bench_cache_ops_t bench_cmdx_ops(bench_cmdx_t *m);

/** Measured counters since the mark (or since open): engine-counted hits and misses, and
 *  records evicted. */
typedef struct {
    uint64_t hits, misses, evictions, records;
    size_t memory;
} bench_cmdx_stats_t;
void bench_cmdx_stats(const bench_cmdx_t *m, bench_cmdx_stats_t *out);

/** The collection memory (what maxmemory limits) of a store holding the records of keys
 *  0..n-1 and nothing else. Returns 0 or -1. */
int bench_cmdx_bytes(uint64_t n, size_t *memory);

/* ---- Redis (cache_redis.c) ---- */

typedef struct bench_credis bench_credis_t;

/** Connects to Redis at host:port. Returns NULL after printing why. */
bench_credis_t *bench_credis_connect(const char *host, int port);
void bench_credis_free(bench_credis_t *r);
/** Used memory (INFO memory used_memory) with no limit after loading keys 0..n-1, and before
 *  (the empty server). Empties the server before and after. Returns 0 or -1. */
int bench_credis_bytes(bench_credis_t *r, uint64_t n, uint64_t *used, uint64_t *empty);
/** A maxmemory at which Redis holds n keys: starts from used_memory after loading n keys
 *  (bench_credis_bytes), then fills 2n keys under allkeys-lru and corrects the limit by the
 *  keys held above or below n times the bytes per key, up to 4 times, until it holds n within
 *  0.1%. *held receives the keys held at the last fill. Empties the server. Returns 0 or -1. */
int bench_credis_calibrate(bench_credis_t *r, uint64_t n, uint64_t *maxmemory, uint64_t *held);
/** Empties the server and sets maxmemory and maxmemory-policy. Returns 0 or -1. */
int bench_credis_prepare(bench_credis_t *r, uint64_t maxmemory, const char *policy);
/** The mark resets Redis's statistics (CONFIG RESETSTAT). */
bench_cache_ops_t bench_credis_ops(bench_credis_t *r);

typedef struct {
    uint64_t hits, misses, evictions, records; /* INFO stats since the mark; DBSIZE */
    uint64_t used_memory;
    char version[32];
} bench_credis_stats_t;
int bench_credis_stats(bench_credis_t *r, bench_credis_stats_t *out);

#endif
