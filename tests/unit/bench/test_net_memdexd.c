/*
 * Integration test of memdex-bench net against the real memdexd (started by the integration
 * harness on a free port): a load, a 2-second closed-loop YCSB A, fixed-count YCSB E and F
 * runs and an open-loop run. Every operation must succeed, the per-kind counts must add up
 * (issued = ok, nothing failed, the inserts grow the data set by exactly their number), and
 * the server's own per-command counters must equal what the benchmark says it sent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/net.h"
#include "tests/integration/harness.h"

static void base_cfg(net_cfg_t *cfg, int port, const char *workload)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->drv = &net_drv_memdex;
    cfg->host = "127.0.0.1";
    cfg->port = port;
    cfg->conns = 8;
    cfg->pipeline = 4;
    cfg->workload = bench_workload_find(workload);
    assert_non_null(cfg->workload);
    cfg->dist = cfg->workload->dist;
    cfg->value_size = 100;
    cfg->scan_len = 10;
    cfg->scan_max = 100;
    cfg->seed = 42;
}

static void run_ok(const net_cfg_t *cfg, net_result_t *r)
{
    char err[512] = "";
    assert_int_equal(net_result_init(r), 0);
    if (net_run(cfg, r, err, sizeof(err)))
        fail_msg("net_run(%s): %s", cfg->workload->name, err);
    uint64_t measured = 0;
    for (int k = 0; k < BENCH_OP__COUNT; k++) {
        if (r->failed[k])
            fail_msg("%s: %llu %s operations failed", cfg->workload->name,
                     (unsigned long long)r->failed[k], bench_op_name((bench_opkind_t)k));
        assert_int_equal(r->ok[k], r->issued[k]);
        assert_true(r->measured[k] <= r->ok[k]);
        assert_int_equal(r->hist[k].n, r->measured[k]);
        measured += r->measured[k];
    }
    assert_int_equal(r->all.n, measured);
    print_message("%s: %llu operations measured in %.2f s\n", cfg->workload->name,
                  (unsigned long long)measured, r->elapsed_s);
}

/* The server's count of one command, from the rendered stats reply. */
static uint64_t server_count(const char *stats, const char *op)
{
    const char *cmds = strstr(stats, "\"commands\":{");
    assert_non_null(cmds);
    char pat[32];
    snprintf(pat, sizeof(pat), "\"%s\":", op);
    const char *p = strstr(cmds, pat);
    const char *end = strchr(cmds, '}');
    if (!p || p > end)
        return 0;
    return strtoull(p + strlen(pat), NULL, 10);
}

static void bench_runs_add_up_against_memdexd(void **state)
{
    (void)state;
    mdx_srv_t srv;
    mdx_srv_start(&srv, NULL);
    net_cfg_t cfg;
    net_result_t load, a, e, f, open;

    base_cfg(&cfg, srv.port, "load");
    cfg.records = 2000;
    run_ok(&cfg, &load);
    assert_int_equal(load.issued[BENCH_OP_INSERT], 2000);
    assert_int_equal(load.records_after, 2000);

    base_cfg(&cfg, srv.port, "ycsb-a");
    cfg.duration_s = 2;
    run_ok(&cfg, &a);
    assert_int_equal(a.records_before, 2000);
    assert_true(a.issued[BENCH_OP_READ] > 0 && a.issued[BENCH_OP_UPDATE] > 0);
    assert_true(a.elapsed_s > 1.99 && a.elapsed_s < 2.01);

    base_cfg(&cfg, srv.port, "ycsb-e");
    cfg.ops = 3000;
    run_ok(&cfg, &e);
    assert_int_equal(e.issued[BENCH_OP_SCAN] + e.issued[BENCH_OP_INSERT], 3000);
    assert_int_equal(e.records_after, 2000 + (int64_t)e.issued[BENCH_OP_INSERT]);

    base_cfg(&cfg, srv.port, "ycsb-f");
    cfg.ops = 2000;
    run_ok(&cfg, &f);
    assert_int_equal(f.records_before, e.records_after); /* the server counts the same */
    assert_int_equal(f.issued[BENCH_OP_READ] + f.issued[BENCH_OP_RMW], 2000);

    /* Open loop at 2,000 ops/s for 1 s: exactly 2,000 operations are due and sent. */
    base_cfg(&cfg, srv.port, "get");
    cfg.duration_s = 1;
    cfg.rate = 2000;
    run_ok(&cfg, &open);
    assert_int_equal(open.issued[BENCH_OP_READ], 2000);

    mdx_cli_t c;
    assert_int_equal(mdx_cli_connect(&c, srv.port), 0);
    int st;
    char *s = mdx_call(&c, "stats", "{}", &st);
    assert_int_equal(st, 0);
    assert_int_equal(server_count(s, "get"), a.issued[BENCH_OP_READ] + f.issued[BENCH_OP_READ] +
                                                 f.issued[BENCH_OP_RMW] +
                                                 open.issued[BENCH_OP_READ]);
    assert_int_equal(server_count(s, "put"), 2000 + a.issued[BENCH_OP_UPDATE] +
                                                 e.issued[BENCH_OP_INSERT] +
                                                 f.issued[BENCH_OP_RMW]);
    assert_int_equal(server_count(s, "find"), e.issued[BENCH_OP_SCAN]);
    free(s);
    mdx_cli_close(&c);

    net_result_fini(&load);
    net_result_fini(&a);
    net_result_fini(&e);
    net_result_fini(&f);
    net_result_fini(&open);
    mdx_srv_stop(&srv, 0);
}

static void refused_connection_fails_the_run_with_a_message(void **state)
{
    (void)state;
    net_cfg_t cfg;
    base_cfg(&cfg, 1, "get"); /* nothing listens on port 1 */
    net_result_t r;
    assert_int_equal(net_result_init(&r), 0);
    char err[512] = "";
    assert_int_equal(net_run(&cfg, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot connect"));
    net_result_fini(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bench_runs_add_up_against_memdexd),
        cmocka_unit_test(refused_connection_fails_the_run_with_a_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
