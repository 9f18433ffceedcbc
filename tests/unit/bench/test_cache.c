/*
 * Unit tests for memdex-bench cache's runner (bench/cache_run.c) on key sequences whose hit
 * ratio can be worked out by hand: a cache that holds every key misses each key once; a cache
 * of one record under alternating keys never hits; LRU under a cycle one longer than its
 * capacity never hits; a batch sends all its gets before any fill. The engine's own hit count
 * must equal the runner's, and a store limited to the memory n records took holds about n.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "bench/cache.h"

static const mdx_evict_policy_t policies[] = {MDX_EVICT_S3FIFO, MDX_EVICT_SIEVE, MDX_EVICT_LRU};

/* Runs cfg against the engine (policy, capacity records, maxmemory bytes). */
static void run_mdx(const bench_cache_cfg_t *cfg, mdx_evict_policy_t p, uint64_t capacity,
                    size_t maxmemory, bench_hits_t *h, bench_cmdx_stats_t *s)
{
    bench_cmdx_t m;
    assert_int_equal(bench_cmdx_open(&m, p, capacity, maxmemory), 0);
    bench_cache_ops_t ops = bench_cmdx_ops(&m);
    assert_int_equal(bench_cache_run(cfg, &ops, h), 0);
    bench_cmdx_stats(&m, s);
    bench_cmdx_close(&m);
}

static void hit_counter_counts_each_outcome(void **state)
{
    (void)state;
    bench_hits_t h;
    memset(&h, 0, sizeof(h));
    assert_true(bench_hit_ratio(&h) == 0.0);
    static const uint8_t a[] = {1, 0, 1, 1, 0}, b[] = {0, 0, 1};
    bench_hits_add(&h, a, 5);
    bench_hits_add(&h, b, 3);
    assert_int_equal(h.requests, 8);
    assert_int_equal(h.hits, 4);
    assert_int_equal(h.misses, 4);
    assert_true(bench_hit_ratio(&h) == 0.5);
}

static void cycle_and_zipfian_sequences_are_reproducible(void **state)
{
    (void)state;
    bench_ckeys_t k;
    assert_int_equal(bench_ckeys_init(&k, BENCH_CDIST_CYCLE, 3, 1), 0);
    static const int64_t want[] = {0, 1, 2, 0, 1, 2, 0};
    for (size_t i = 0; i < 7; i++)
        assert_int_equal(bench_ckeys_next(&k), want[i]);
    bench_ckeys_fini(&k);
    /* The scrambled keys are workload C's (ycsb.c's tests pin that); the same seed gives the
     * same keys, in range. */
    for (int d = BENCH_CDIST_SCRAMBLED; d <= BENCH_CDIST_ZIPFIAN; d++) {
        bench_ckeys_t x, y;
        assert_int_equal(bench_ckeys_init(&x, (bench_cdist_t)d, 1000, 5), 0);
        assert_int_equal(bench_ckeys_init(&y, (bench_cdist_t)d, 1000, 5), 0);
        for (int i = 0; i < 10000; i++) {
            int64_t v = bench_ckeys_next(&x);
            assert_int_equal(v, bench_ckeys_next(&y));
            assert_in_range(v, 0, 999);
        }
        bench_ckeys_fini(&x);
        bench_ckeys_fini(&y);
    }
}

static void body_is_a_100_byte_map(void **state)
{
    (void)state;
    uint8_t b[BENCH_CACHE_BODY];
    bench_cache_body(b, 4711);
    assert_int_equal(b[0], 0x81);
    assert_int_equal(b[3], 0xd9);
    assert_int_equal(b[4], BENCH_CACHE_BODY - 5);
    assert_memory_equal(b + 5, "4711:", 5);
}

static void capacity_at_least_the_keyspace_hits_every_request_after_warmup(void **state)
{
    (void)state;
    bench_cache_cfg_t cfg = {BENCH_CDIST_CYCLE, 50, 50, 1000, 1, 1};
    for (size_t i = 0; i < 3; i++) {
        bench_hits_t h;
        bench_cmdx_stats_t s;
        run_mdx(&cfg, policies[i], 50, 0, &h, &s);
        assert_int_equal(h.requests, 1000);
        assert_int_equal(h.hits, 1000);
        assert_int_equal(s.evictions, 0);
        assert_int_equal(s.records, 50);
    }
}

/* Without warm-up, a cache holding the whole key space misses each distinct key exactly once. */
static void a_cache_holding_every_key_misses_each_key_once(void **state)
{
    (void)state;
    for (int d = BENCH_CDIST_SCRAMBLED; d <= BENCH_CDIST_ZIPFIAN; d++) {
        bench_cache_cfg_t cfg = {(bench_cdist_t)d, 300, 0, 5000, 9, 1};
        uint8_t seen[300] = {0};
        uint64_t distinct = 0;
        bench_ckeys_t k;
        assert_int_equal(bench_ckeys_init(&k, cfg.dist, cfg.keys, cfg.seed), 0);
        for (uint64_t i = 0; i < cfg.requests; i++) {
            int64_t v = bench_ckeys_next(&k);
            distinct += !seen[v];
            seen[v] = 1;
        }
        bench_ckeys_fini(&k);
        bench_hits_t h;
        bench_cmdx_stats_t s;
        run_mdx(&cfg, MDX_EVICT_S3FIFO, 300, 0, &h, &s);
        assert_int_equal(h.misses, distinct);
        assert_int_equal(h.hits, cfg.requests - distinct);
        assert_int_equal(s.records, distinct);
    }
}

static void capacity_one_with_alternating_keys_never_hits(void **state)
{
    (void)state;
    bench_cache_cfg_t cfg = {BENCH_CDIST_CYCLE, 2, 10, 100, 1, 1};
    for (size_t i = 0; i < 3; i++) {
        bench_hits_t h;
        bench_cmdx_stats_t s;
        run_mdx(&cfg, policies[i], 1, 0, &h, &s);
        assert_int_equal(h.hits, 0);
        assert_int_equal(h.misses, 100);
        assert_int_equal(s.evictions, 100);
        assert_int_equal(s.records, 1);
    }
}

static void lru_on_a_cycle_longer_than_its_capacity_never_hits(void **state)
{
    (void)state;
    bench_cache_cfg_t cfg = {BENCH_CDIST_CYCLE, 11, 100, 1100, 1, 1};
    bench_hits_t h;
    bench_cmdx_stats_t s;
    run_mdx(&cfg, MDX_EVICT_LRU, 10, 0, &h, &s);
    assert_int_equal(h.hits, 0);
    assert_int_equal(s.evictions, 1100);
    /* Without a hit SIEVE never sets a visited bit: it is FIFO, and FIFO never hits either. */
    run_mdx(&cfg, MDX_EVICT_SIEVE, 10, 0, &h, &s);
    assert_int_equal(h.hits, 0);
    /* S3-FIFO: a key evicted from the small queue comes back through the ghost into main,
     * which keeps it: most requests hit. */
    run_mdx(&cfg, MDX_EVICT_S3FIFO, 10, 0, &h, &s);
    assert_true(h.hits >= 800); /* 900 of 1100 at the time of writing */
}

/* Keys 0, 1, 0, 1, ... into an empty cache of 10: a batch's gets all come before its fills. */
static void a_batch_sends_its_gets_before_its_fills(void **state)
{
    (void)state;
    static const struct {
        uint32_t batch;
        uint64_t misses;
    } cases[] = {{1, 2}, {3, 3}, {4, 4}, {8, 8}};
    for (size_t i = 0; i < 4; i++) {
        bench_cache_cfg_t cfg = {BENCH_CDIST_CYCLE, 2, 0, 8, 1, cases[i].batch};
        bench_hits_t h;
        bench_cmdx_stats_t s;
        run_mdx(&cfg, MDX_EVICT_S3FIFO, 10, 0, &h, &s);
        assert_int_equal(h.misses, cases[i].misses);
        assert_int_equal(h.hits, 8 - cases[i].misses);
    }
}

/* A mock cache that remembers everything and notes when the mark comes. */
typedef struct {
    uint64_t gets, fills, gets_at_mark;
    int marked;
    uint8_t held[64];
} mock_t;

static int mock_get(void *data, const int64_t *keys, size_t n, uint8_t *hit)
{
    mock_t *m = data;
    for (size_t i = 0; i < n; i++)
        hit[i] = m->held[keys[i]];
    m->gets += n;
    return 0;
}

static int mock_fill(void *data, const int64_t *keys, size_t n)
{
    mock_t *m = data;
    for (size_t i = 0; i < n; i++)
        m->held[keys[i]] = 1;
    m->fills += n;
    return 0;
}

static int mock_mark(void *data)
{
    mock_t *m = data;
    m->marked++;
    m->gets_at_mark = m->gets;
    return 0;
}

static int mock_fail(void *data, const int64_t *keys, size_t n)
{
    (void)data, (void)keys, (void)n;
    return -1;
}

static void the_mark_comes_after_the_warmup_and_failures_stop_the_run(void **state)
{
    (void)state;
    mock_t m;
    memset(&m, 0, sizeof(m));
    bench_cache_ops_t ops = {mock_get, mock_fill, mock_mark, &m};
    bench_cache_cfg_t cfg = {BENCH_CDIST_CYCLE, 64, 10, 100, 1, 4};
    bench_hits_t h;
    assert_int_equal(bench_cache_run(&cfg, &ops, &h), 0);
    assert_int_equal(m.marked, 1);
    assert_int_equal(m.gets_at_mark, 10);
    assert_int_equal(m.gets, 110);
    assert_int_equal(m.fills, 64);
    assert_int_equal(h.requests, 100);
    assert_int_equal(h.misses, 54); /* keys 10..63 come first in the measured part */
    memset(&m, 0, sizeof(m));
    ops.fill = mock_fail;
    assert_int_equal(bench_cache_run(&cfg, &ops, &h), -1);
    cfg.batch = 0;
    assert_int_equal(bench_cache_run(&cfg, &ops, &h), -1);
}

static void engine_hit_counts_equal_the_runners(void **state)
{
    (void)state;
    bench_cache_cfg_t cfg = {BENCH_CDIST_ZIPFIAN, 2000, 3000, 20000, 3, 16};
    for (size_t i = 0; i < 3; i++) {
        bench_hits_t h;
        bench_cmdx_stats_t s;
        run_mdx(&cfg, policies[i], 200, 0, &h, &s);
        assert_int_equal(s.hits, h.hits);
        assert_int_equal(s.misses, h.misses);
        assert_int_equal(h.hits + h.misses, 20000);
        assert_true(h.hits > 0 && h.misses > 0);
        assert_int_equal(s.records, 200);
        /* Every measured miss filled a record; all but the 200 held were evicted at some point,
         * some during the warm-up, so at most this many in the measured part. */
        assert_true(s.evictions <= h.misses);
    }
}

static void maxmemory_sized_for_n_records_holds_about_n_records(void **state)
{
    (void)state;
    size_t mem = 0;
    assert_int_equal(bench_cmdx_bytes(500, &mem), 0);
    assert_true(mem > 500 * BENCH_CACHE_BODY);
    bench_cache_cfg_t cfg = {BENCH_CDIST_CYCLE, 5000, 0, 5000, 1, 1};
    bench_hits_t h;
    bench_cmdx_stats_t s;
    /* LRU keeps no ghost: every byte is records and the primary table. */
    run_mdx(&cfg, MDX_EVICT_LRU, 0, mem + 1, &h, &s);
    assert_int_equal(h.hits, 0);
    /* The measured size includes the primary table's state at 500 records (a resize may be
     * under way), so the limit holds about, not exactly, 500. */
    assert_in_range(s.records, 475, 525);
    /* The reported memory also counts the collection's own struct, which the limit does not
     * (under 1 KiB). */
    assert_true(s.memory <= mem + 1 + 1024);
    assert_in_range(s.records, 475, 525);

    assert_int_equal(s.evictions, 5000 - s.records);
}

static void static_best_is_the_share_of_the_most_requested_keys(void **state)
{
    (void)state;
    bench_cache_cfg_t cfg = {BENCH_CDIST_CYCLE, 10, 5, 100, 1, 1};
    assert_true(bench_cache_static_best(&cfg, 3) == 0.3);
    assert_true(bench_cache_static_best(&cfg, 10) == 1.0);
    assert_true(bench_cache_static_best(&cfg, 20) == 1.0);
    /* 105 requests after skipping 5: keys 5..9 come 11 times, 0..4 10 times. */
    cfg.requests = 105;
    assert_true(bench_cache_static_best(&cfg, 5) == 55.0 / 105.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hit_counter_counts_each_outcome),
        cmocka_unit_test(cycle_and_zipfian_sequences_are_reproducible),
        cmocka_unit_test(body_is_a_100_byte_map),
        cmocka_unit_test(capacity_at_least_the_keyspace_hits_every_request_after_warmup),
        cmocka_unit_test(a_cache_holding_every_key_misses_each_key_once),
        cmocka_unit_test(capacity_one_with_alternating_keys_never_hits),
        cmocka_unit_test(lru_on_a_cycle_longer_than_its_capacity_never_hits),
        cmocka_unit_test(a_batch_sends_its_gets_before_its_fills),
        cmocka_unit_test(the_mark_comes_after_the_warmup_and_failures_stop_the_run),
        cmocka_unit_test(engine_hit_counts_equal_the_runners),
        cmocka_unit_test(maxmemory_sized_for_n_records_holds_about_n_records),
        cmocka_unit_test(static_best_is_the_share_of_the_most_requested_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
