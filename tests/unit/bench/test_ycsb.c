/*
 * Unit tests for bench/ycsb.c against values computed independently: the expected sequences
 * below were printed by tests/unit/bench/ycsb_ref.py, a separate Python re-implementation of
 * YCSB's ZipfianGenerator, ScrambledZipfianGenerator, SkewedLatestGenerator and
 * Utils.fnvhash64 fed by the same xoshiro256** doubles. fnvhash64(0) = 6284781860667377211 is
 * also YCSB's own first key, "user6284781860667377211". Beyond exact sequences: the zipfian's
 * skew (item 0's share), the workload mixes, and the acknowledged counter's window.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "bench/ycsb.h"

static void fnvhash64_matches_ycsb(void **state)
{
    (void)state;
    static const int64_t in[] = {0, 1, 2, 42, 999999, 1ll << 40};
    static const int64_t want[] = {6284781860667377211ll, 8517097267634966620ll,
                                   1820151046732198393ll, 55488592825689361ll,
                                   2744965632448235251ll, 6908947124047430886ll};
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(bench_fnvhash64(in[i]), want[i]);
    char key[32];
    assert_int_equal(bench_key_name(0, key), 23);
    assert_string_equal(key, "user6284781860667377211");
}

static void rng_doubles_match_the_reference(void **state)
{
    (void)state;
    bench_rng_t r;
    bench_ycsb_rng_seed(&r, 11);
    assert_true(bench_rng_unit(&r) == 0.223274216617233);
    assert_true(bench_rng_unit(&r) == 0.08723440006391181);
    assert_true(bench_rng_unit(&r) == 0.24526072486170158);
}

static void zipfian_sequence_matches_the_reference(void **state)
{
    (void)state;
    static const int64_t want[] = {25, 39, 9, 101, 1, 0, 8, 368, 33, 603, 725, 604, 81, 47, 439, 0};
    bench_rng_t r;
    bench_ycsb_rng_seed(&r, 1);
    bench_zipf_t z;
    bench_zipf_init(&z, 0, 999, BENCH_ZIPFIAN_CONSTANT, -1, &r);
    for (size_t i = 0; i < 16; i++)
        assert_int_equal(bench_zipf_next(&z, &r), want[i]);
}

static void scrambled_zipfian_sequence_matches_the_reference(void **state)
{
    (void)state;
    static const int64_t want[] = {501879, 454365, 940127, 907628, 564014, 198393, 912308, 397813,
                                   299031, 453588, 349426, 462303, 443205, 686207, 125055, 844100};
    bench_rng_t r;
    bench_ycsb_rng_seed(&r, 7);
    bench_szipf_t s;
    bench_szipf_init(&s, 0, 999999, &r);
    for (size_t i = 0; i < 16; i++)
        assert_int_equal(bench_szipf_next(&s, &r), want[i]);
}

static void latest_sequence_matches_the_reference(void **state)
{
    (void)state;
    static const int64_t want[] = {997, 971, 987, 989, 997, 883,  351,  997,
                                   438, 913, 934, 845, 909, 1001, 1001, 1001};
    bench_rng_t r;
    bench_ycsb_rng_seed(&r, 3);
    bench_ackctr_t a;
    assert_int_equal(bench_ackctr_init(&a, 1000), 0);
    bench_latest_t l;
    bench_latest_init(&l, &a, &r);
    for (size_t i = 0; i < 8; i++)
        assert_int_equal(bench_latest_next(&l, &r), want[i]);
    /* Two inserts acknowledged out of order: last moves only once both are in. */
    int64_t k1 = bench_ackctr_next(&a), k2 = bench_ackctr_next(&a);
    assert_int_equal(k1, 1000);
    assert_int_equal(k2, 1001);
    assert_int_equal(bench_ackctr_ack(&a, k2), 0);
    assert_int_equal(bench_ackctr_last(&a), 999);
    assert_int_equal(bench_ackctr_ack(&a, k1), 0);
    assert_int_equal(bench_ackctr_last(&a), 1001);
    for (size_t i = 8; i < 16; i++)
        assert_int_equal(bench_latest_next(&l, &r), want[i]);
    bench_ackctr_fini(&a);
}

static void zipfian_is_skewed_as_theta_099_says(void **state)
{
    (void)state;
    /* P(item 0) = 1 / zeta(n, 0.99); for n = 1000 that is 1/7.21 = 13.9%. */
    bench_rng_t r;
    bench_ycsb_rng_seed(&r, 99);
    bench_zipf_t z;
    bench_zipf_init(&z, 0, 999, BENCH_ZIPFIAN_CONSTANT, -1, &r);
    int n = 200000, zero = 0, one = 0;
    for (int i = 0; i < n; i++) {
        int64_t v = bench_zipf_next(&z, &r);
        assert_true(v >= 0 && v <= 999);
        zero += v == 0;
        one += v == 1;
    }
    double p0 = 1 / bench_zeta(0, 1000, 0.99, 0);
    assert_true(fabs((double)zero / n - p0) < 0.005);
    assert_true(fabs((double)one / n - p0 * pow(0.5, 0.99)) < 0.005);
}

static void workload_mix_and_keys_follow_the_definition(void **state)
{
    (void)state;
    bench_workload_t w;
    const bench_workload_def_t *d = bench_workload_find("ycsb-e");
    assert_non_null(d);
    assert_int_equal(bench_workload_init(&w, d, d->dist, 10000, 10000, 10, 100, 5), 0);
    int counts[BENCH_OP__COUNT] = {0};
    for (int i = 0; i < 100000; i++) {
        bench_opdesc_t op;
        bench_workload_next(&w, &op);
        counts[op.kind]++;
        if (op.kind == BENCH_OP_SCAN) {
            assert_true(op.scan_len >= 1 && op.scan_len <= 100);
            assert_true(op.keynum >= 0 && op.keynum <= op.acked);
        } else {
            assert_int_equal(op.kind, BENCH_OP_INSERT);
            assert_true(op.keynum >= 10000);
            bench_workload_ack(&w, op.keynum);
        }
    }
    assert_true(counts[BENCH_OP_SCAN] > 94500 && counts[BENCH_OP_SCAN] < 95500);
    assert_int_equal(bench_ackctr_last(&w.inserts), 10000 + counts[BENCH_OP_INSERT] - 1);
    bench_workload_fini(&w);

    d = bench_workload_find("load");
    assert_int_equal(bench_workload_init(&w, d, d->dist, 5, 5, 10, 100, 1), 0);
    for (int64_t i = 0; i < 5; i++) {
        bench_opdesc_t op;
        bench_workload_next(&w, &op);
        assert_int_equal(op.kind, BENCH_OP_INSERT);
        assert_int_equal(op.keynum, i);
    }
    bench_workload_fini(&w);
    assert_null(bench_workload_find("ycsb-g"));
}

static void ack_window_overflow_is_an_error(void **state)
{
    (void)state;
    bench_ackctr_t a;
    assert_int_equal(bench_ackctr_init(&a, 0), 0);
    /* Acknowledge 1 .. 2^20 but never 0: the slot of 2^20 is taken by 0's window position. */
    for (int64_t i = 0; i <= BENCH_ACK_WINDOW; i++)
        bench_ackctr_next(&a);
    for (int64_t i = 1; i < BENCH_ACK_WINDOW; i++)
        assert_int_equal(bench_ackctr_ack(&a, i), 0);
    assert_int_equal(bench_ackctr_last(&a), -1);
    assert_int_equal(bench_ackctr_ack(&a, BENCH_ACK_WINDOW + 1), -1);
    bench_ackctr_fini(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fnvhash64_matches_ycsb),
        cmocka_unit_test(rng_doubles_match_the_reference),
        cmocka_unit_test(zipfian_sequence_matches_the_reference),
        cmocka_unit_test(scrambled_zipfian_sequence_matches_the_reference),
        cmocka_unit_test(latest_sequence_matches_the_reference),
        cmocka_unit_test(zipfian_is_skewed_as_theta_099_says),
        cmocka_unit_test(workload_mix_and_keys_follow_the_definition),
        cmocka_unit_test(ack_window_overflow_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
