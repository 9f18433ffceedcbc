/*
 * Unit tests for bench/hist.c: every percentile of known distributions (uniform, exponential,
 * a two-point mixture, constants) is within 1% of the exact order statistic, the bucket layout
 * is monotonic and tight, and merging equals recording everything in one histogram.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>

#include "bench/hist.h"

static const double pcts[] = {1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Records v[0..n), then checks each percentile against the exact ceil(p*n)-th value. */
static void check_within_1pct(uint64_t *v, size_t n)
{
    bench_hist_t h;
    assert_int_equal(bench_hist_init(&h), 0);
    for (size_t i = 0; i < n; i++)
        bench_hist_record(&h, v[i]);
    qsort(v, n, sizeof(*v), cmp_u64);
    assert_int_equal(h.n, n);
    assert_int_equal(h.min, v[0]);
    assert_int_equal(h.max, v[n - 1]);
    for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++) {
        size_t rank = (size_t)ceil(pcts[i] / 100.0 * (double)n);
        if (rank < 1)
            rank = 1;
        double exact = (double)v[rank - 1];
        double got = (double)bench_hist_percentile(&h, pcts[i]);
        double rel = exact > 0 ? fabs(got - exact) / exact : got;
        if (rel > 0.01)
            fail_msg("p%g: got %.0f, exact %.0f (%.3f%% off)", pcts[i], got, exact, rel * 100);
    }
    bench_hist_fini(&h);
}

static void uniform_percentiles_are_within_1pct(void **state)
{
    (void)state;
    size_t n = 1000000;
    uint64_t *v = malloc(n * sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = 1 + (i * 7919) % n; /* a permutation of 1..n: order of recording must not matter */
    check_within_1pct(v, n);
    free(v);
}

static void exponential_percentiles_are_within_1pct(void **state)
{
    (void)state;
    /* Latencies in ns with a 50 us mean, from the exact quantile function at evenly spaced
     * probabilities, then shuffled deterministically. */
    size_t n = 200000;
    uint64_t *v = malloc(n * sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = (uint64_t)(50000.0 * -log(1.0 - ((double)i + 0.5) / (double)n)) + 1;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (i * 2654435761u) % (i + 1);
        uint64_t t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
    check_within_1pct(v, n);
    free(v);
}

static void bimodal_and_wide_range_percentiles_are_within_1pct(void **state)
{
    (void)state;
    /* 99% fast (10-20 us), 1% very slow (1-2 s): p99.9 lands in the slow mode. */
    size_t n = 100000;
    uint64_t *v = malloc(n * sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = i % 100 == 0 ? 1000000000ull + i * 9973ull : 10000 + (i * 31) % 10000;
    check_within_1pct(v, n);
    /* Values from 1 ns to 2^62 ns, one per power of two and its neighbours. */
    size_t m = 0;
    for (int b = 0; b < 62; b++) {
        v[m++] = (1ull << b);
        v[m++] = (1ull << b) + 1;
        v[m++] = (1ull << (b + 1)) - 1;
    }
    check_within_1pct(v, m);
    free(v);
}

static void constant_is_reported_exactly(void **state)
{
    (void)state;
    bench_hist_t h;
    assert_int_equal(bench_hist_init(&h), 0);
    assert_int_equal(bench_hist_percentile(&h, 50), 0); /* empty */
    for (int i = 0; i < 1000; i++)
        bench_hist_record(&h, 123456789);
    for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++)
        assert_int_equal(bench_hist_percentile(&h, pcts[i]), 123456789); /* clamped to min/max */
    assert_true(fabs(bench_hist_mean(&h) - 123456789.0) < 1e-6);
    bench_hist_fini(&h);
}

static void buckets_are_monotonic_and_narrow(void **state)
{
    (void)state;
    size_t prev = 0;
    for (uint64_t v = 1; v < (1ull << 24); v += 1 + v / 1000) {
        size_t i = bench_hist_index(v);
        assert_true(i >= prev);
        assert_true(i < BENCH_HIST_BUCKETS);
        prev = i;
    }
    assert_int_equal(bench_hist_index(UINT64_MAX), BENCH_HIST_BUCKETS - 1);
    assert_int_equal(bench_hist_index(127), 127);
    assert_int_equal(bench_hist_index(128), 128);
    /* Every value of a bucket is within 1/128 of the bucket's lowest value. */
    for (uint64_t v = 128; v < 100000; v++)
        if (bench_hist_index(v) == bench_hist_index(v - 1))
            continue;
        else if (v > 128)
            assert_true(bench_hist_index(v + v / 128 + 1) > bench_hist_index(v));
}

static void merge_equals_recording_in_one(void **state)
{
    (void)state;
    bench_hist_t a, b, all;
    assert_int_equal(bench_hist_init(&a), 0);
    assert_int_equal(bench_hist_init(&b), 0);
    assert_int_equal(bench_hist_init(&all), 0);
    for (uint64_t i = 1; i <= 50000; i++) {
        uint64_t v = i * i % 1000003;
        bench_hist_record(i % 3 ? &a : &b, v);
        bench_hist_record(&all, v);
    }
    bench_hist_merge(&a, &b);
    assert_int_equal(a.n, all.n);
    assert_int_equal(a.min, all.min);
    assert_int_equal(a.max, all.max);
    for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++)
        assert_int_equal(bench_hist_percentile(&a, pcts[i]), bench_hist_percentile(&all, pcts[i]));
    bench_hist_reset(&a);
    assert_int_equal(a.n, 0);
    assert_int_equal(bench_hist_percentile(&a, 99), 0);
    bench_hist_fini(&a);
    bench_hist_fini(&b);
    bench_hist_fini(&all);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(uniform_percentiles_are_within_1pct),
        cmocka_unit_test(exponential_percentiles_are_within_1pct),
        cmocka_unit_test(bimodal_and_wide_range_percentiles_are_within_1pct),
        cmocka_unit_test(constant_is_reported_exactly),
        cmocka_unit_test(buckets_are_monotonic_and_narrow),
        cmocka_unit_test(merge_equals_recording_in_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
