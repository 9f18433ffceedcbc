/*
 * Pipelining and many clients: 10,000 requests in one write come back complete and in order;
 * 1,000 connections at once are all served; clients above max_clients are refused with a
 * MAXCLIENTS error frame and closed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "memdex/error.h"
#include "tests/integration/harness.h"

static void stop_ok(mdx_srv_t *s)
{
    int st = mdx_srv_stop(s, 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void ten_thousand_pipelined_requests_in_one_write(void **state)
{
    (void)state;
    mdx_srv_t srv;
    mdx_srv_start(&srv, NULL);
    mdx_cli_t c;
    assert_int_equal(mdx_cli_connect(&c, srv.port), 0);
    mdx_expect_ok(&c, "create_collection", "{\"name\":\"p\"}", "null");

    /* Request i (id 100+i): put of key i/3 when i%3==0, get of that key when i%3==1, ping
     * when i%3==2. Ids are not consecutive with the earlier call, so an order mix-up shows. */
    enum { N = 10000 };
    mdx_buf_t b;
    mdx_buf_init(&b);
    char args[128];
    for (int i = 0; i < N; i++) {
        int k = i / 3;
        if (i % 3 == 0) {
            snprintf(args, sizeof(args), "{\"coll\":\"p\",\"key\":%d,\"body\":{\"v\":%d}}", k, k);
            mdx_req_json(&b, 100 + (uint64_t)i, "put", args);
        } else if (i % 3 == 1) {
            snprintf(args, sizeof(args), "{\"coll\":\"p\",\"key\":%d}", k);
            mdx_req_json(&b, 100 + (uint64_t)i, "get", args);
        } else {
            mdx_req_json(&b, 100 + (uint64_t)i, "ping", "{}");
        }
    }
    mdx_cli_send(&c, b.data, b.len); /* one write(2) of the whole batch */
    mdx_buf_fini(&b);

    char want[64];
    for (int i = 0; i < N; i++) {
        mdx_reply_t r;
        assert_int_equal(mdx_cli_recv(&c, &r, 0), 0);
        assert_int_equal(r.id, 100 + (uint64_t)i);
        assert_int_equal(r.status, 0);
        char *got = mdx_mp_to_json(r.body, r.body_len);
        if (i % 3 == 0)
            snprintf(want, sizeof(want), "null");
        else if (i % 3 == 1)
            snprintf(want, sizeof(want), "{\"v\":%d}", i / 3);
        else
            snprintf(want, sizeof(want), "\"pong\"");
        assert_string_equal(got, want);
        free(got);
        mdx_reply_free(&r);
    }
    mdx_expect_ok(&c, "list_collections", "{}",
                  "[{\"name\":\"p\",\"records\":3334,\"indexes\":[],\"capacity\":0,\"policy\":"
                  "\"s3fifo\",\"default_ttl_ms\":0}]");
    mdx_cli_close(&c);
    stop_ok(&srv);
}

static void raise_nofile(rlim_t want)
{
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    if (rl.rlim_cur < want)
        skip(); /* the hard limit does not allow the test */
}

static void a_thousand_concurrent_connections_are_served(void **state)
{
    (void)state;
    enum { N = 1000 };
    raise_nofile(N + 64);
    mdx_srv_t srv;
    mdx_srv_start(&srv, NULL);
    mdx_cli_t *cs = calloc(N, sizeof(*cs));
    for (int i = 0; i < N; i++)
        assert_int_equal(mdx_cli_connect(&cs[i], srv.port), 0);
    mdx_expect_ok(&cs[0], "create_collection", "{\"name\":\"m\"}", "null");

    /* Every client writes its own record and reads it back; all requests are sent before any
     * reply is read, so the server holds 1,000 connections with work in flight at once. */
    char args[128];
    for (int i = 0; i < N; i++) {
        mdx_buf_t b;
        mdx_buf_init(&b);
        snprintf(args, sizeof(args), "{\"coll\":\"m\",\"key\":%d,\"body\":{\"c\":%d}}", i, i);
        mdx_req_json(&b, 1, "put", args);
        snprintf(args, sizeof(args), "{\"coll\":\"m\",\"key\":%d}", i);
        mdx_req_json(&b, 2, "get", args);
        mdx_cli_send(&cs[i], b.data, b.len);
        mdx_buf_fini(&b);
    }
    char want[64];
    for (int i = 0; i < N; i++) {
        mdx_reply_t r;
        assert_int_equal(mdx_cli_recv(&cs[i], &r, 0), 0);
        assert_int_equal(r.id, 1);
        assert_int_equal(r.status, 0);
        mdx_reply_free(&r);
        assert_int_equal(mdx_cli_recv(&cs[i], &r, 0), 0);
        assert_int_equal(r.id, 2);
        char *got = mdx_mp_to_json(r.body, r.body_len);
        snprintf(want, sizeof(want), "{\"c\":%d}", i);
        assert_string_equal(got, want);
        free(got);
        mdx_reply_free(&r);
    }
    int st;
    char *s = mdx_call(&cs[N - 1], "stats", "{}", &st);
    assert_int_equal(st, 0);
    snprintf(want, sizeof(want), "\"connections\":{\"current\":%d,", N);
    assert_non_null(strstr(s, want));
    assert_non_null(strstr(s, "\"records\":1000,"));
    free(s);
    for (int i = 0; i < N; i++)
        mdx_cli_close(&cs[i]);
    free(cs);
    stop_ok(&srv);
}

static void clients_above_max_clients_get_maxclients_and_are_closed(void **state)
{
    (void)state;
    const char *extra[] = {"--max-clients", "3", NULL};
    mdx_srv_t srv;
    mdx_srv_start(&srv, extra);
    mdx_cli_t c[4];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(mdx_cli_connect(&c[i], srv.port), 0);
        mdx_expect_ok(&c[i], "ping", "{}", "\"pong\""); /* each is being served */
    }
    assert_int_equal(mdx_cli_connect(&c[3], srv.port), 0);
    mdx_reply_t r;
    assert_int_equal(mdx_cli_recv(&c[3], &r, 0), 0);
    assert_int_equal(r.id, 0);
    assert_int_equal(r.status, MDX_EMAXCLIENTS);
    char *got = mdx_mp_to_json(r.body, r.body_len);
    assert_non_null(strstr(got, "{\"code\":\"MAXCLIENTS\",\"message\":\"too many clients"));
    free(got);
    mdx_reply_free(&r);
    assert_true(mdx_cli_wait_closed(&c[3], 0));
    mdx_cli_close(&c[3]);

    /* A freed slot is usable again; the served clients were not disturbed. */
    mdx_cli_close(&c[2]);
    mdx_cli_t d;
    int served = 0;
    for (int tries = 0; tries < 1000 && !served; tries++) {
        /* The server notices the close on its next loop turn; until then it may refuse. */
        assert_int_equal(mdx_cli_connect(&d, srv.port), 0);
        mdx_buf_t b;
        mdx_buf_init(&b);
        mdx_req_json(&b, 5, "ping", "{}");
        mdx_cli_send(&d, b.data, b.len);
        mdx_buf_fini(&b);
        assert_int_equal(mdx_cli_recv(&d, &r, 0), 0);
        served = r.status == 0;
        mdx_reply_free(&r);
        if (!served)
            mdx_cli_close(&d);
    }
    assert_true(served);
    mdx_expect_ok(&c[0], "ping", "{}", "\"pong\"");
    int st;
    char *s = mdx_call(&c[1], "stats", "{}", &st);
    assert_non_null(strstr(s, "\"connections\":{\"current\":3,"));
    assert_non_null(strstr(s, "\"MAXCLIENTS\":"));
    free(s);
    mdx_cli_close(&d);
    for (int i = 0; i < 2; i++)
        mdx_cli_close(&c[i]);
    stop_ok(&srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ten_thousand_pipelined_requests_in_one_write),
        cmocka_unit_test(a_thousand_concurrent_connections_are_served),
        cmocka_unit_test(clients_above_max_clients_get_maxclients_and_are_closed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
