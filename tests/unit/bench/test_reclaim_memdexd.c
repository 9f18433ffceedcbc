/*
 * Integration test of memdex-bench reclaim against the real memdexd (started by the harness on
 * a free port): 2,000 hot records and 20,000 doomed ones, one round of each case. Every GET must
 * find its record, each window must have measured GETs, the doomed records must be counted
 * exactly (expired by the server's counter, removed by invalidate's reply), the collection must
 * end with the hot set only, and the server's own get counter must equal the GETs the
 * benchmark measured plus those outside the windows (never more than one in flight per
 * connection at each switch, so the difference is bounded by the connections).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/reclaim.h"
#include "tests/integration/harness.h"

static uint64_t gets_in(const reclaim_case_t *c)
{
    uint64_t n = 0;
    for (int w = 0; w < RECLAIM__WINDOWS; w++) {
        assert_int_equal(c->w[w].errors, 0);
        assert_int_equal(c->w[w].get.n, c->w[w].ops);
        assert_int_equal(c->w[w].put.n, 0);
        assert_true(c->w[w].ops > 0);
        n += c->w[w].ops;
    }
    return n;
}

static uint64_t stat_of(const char *stats, const char *after, const char *key)
{
    const char *p = strstr(stats, after);
    assert_non_null(p);
    char pat[48];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    p = strstr(p, pat);
    assert_non_null(p);
    return strtoull(p + strlen(pat), NULL, 10);
}

static void reclaim_counts_add_up_against_memdexd(void **state)
{
    (void)state;
    mdx_srv_t srv;
    static const char *const extra[] = {"--snapshot-rules", "off", "--reclaim-slice-us", "100",
                                        NULL};
    mdx_srv_start(&srv, extra);
    reclaim_cfg_t cfg = {
        2000, 20000, 80, 8, 1, 0.3, 0.1, 1.5, 60, RECLAIM_EXPIRY | RECLAIM_INVALIDATE, 1, srv.pid};
    reclaim_res_t r;
    char err[512] = "";
    if (reclaim_run(&cfg, srv.port, &r, err, sizeof(err)))
        fail_msg("reclaim_run: %s", err);
    assert_int_equal(r.rounds_done, 1);

    const reclaim_case_t *e = &r.exp[0], *i = &r.inv[0];
    uint64_t measured = gets_in(e) + gets_in(i);
    assert_int_equal(e->records_mid, 22000);
    assert_int_equal(e->records_end, 2000);
    assert_int_equal(e->removed, 20000);
    assert_true(e->reclaim_ms > 0 && e->first_ms >= 0 && e->first_ms <= e->reclaim_ms);
    assert_int_equal(i->records_mid, 22000);
    assert_int_equal(i->records_end, 2000);
    assert_int_equal(i->removed, 20000);
    assert_true(i->call_ms > 0 && i->reclaim_ms >= 0);
    assert_true(e->polls > 0 && i->polls > 0);
    /* The server's RSS was read once each case was reclaimed. */
    assert_true(e->rss_kb > 0 && i->rss_kb > 0);

    bench_window_t base;
    assert_int_equal(reclaim_baseline(e, &base), 0);
    assert_int_equal(base.ops, e->w[RECLAIM_BEFORE].ops + e->w[RECLAIM_AFTER].ops);
    assert_int_equal(base.get.n, base.ops);
    bench_window_fini(&base);

    mdx_cli_t c;
    assert_int_equal(mdx_cli_connect(&c, srv.port), 0);
    int st;
    char *s = mdx_call(&c, "stats", "{}", &st);
    assert_int_equal(st, 0);
    const char *coll = "\"collections\":{\"" RECLAIM_COLL "\":";
    assert_int_equal(stat_of(s, coll, "records"), 2000);
    assert_int_equal(stat_of(s, coll, "pending"), 0);
    assert_int_equal(stat_of(s, coll, "expired"), 20000);
    assert_int_equal(stat_of(s, coll, "invalidated"), 20000);
    /* Every GET hit: misses would be hot records not found. */
    assert_int_equal(stat_of(s, coll, "misses"), 0);
    uint64_t gets = stat_of(s, "\"commands\":{", "get");
    assert_true(gets >= measured);
    /* Outside the windows: the warm-up, and the replies in flight when the load stopped. */
    print_message("%llu GETs measured, %llu served\n", (unsigned long long)measured,
                  (unsigned long long)gets);
    assert_int_equal(stat_of(s, coll, "hits"), gets);
    free(s);
    mdx_cli_close(&c);
    reclaim_res_fini(&cfg, &r);
    mdx_srv_stop(&srv, 0);
}

static void refused_connection_fails_the_run_with_a_message(void **state)
{
    (void)state;
    reclaim_cfg_t cfg = {10, 10, 8, 1, 1, 0.1, 0, 1, 1, RECLAIM_EXPIRY, 1, 0};
    reclaim_res_t r;
    char err[512] = "";
    assert_int_equal(reclaim_run(&cfg, 1, &r, err, sizeof(err)), -1); /* nothing on port 1 */
    assert_non_null(strstr(err, "cannot connect"));
    assert_int_equal(r.rounds_done, 0);
    reclaim_res_fini(&cfg, &r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reclaim_counts_add_up_against_memdexd),
        cmocka_unit_test(refused_connection_fails_the_run_with_a_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
