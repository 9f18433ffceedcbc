/*
 * Graceful shutdown: on SIGTERM or SIGINT memdexd stops accepting, answers every request it
 * had received, flushes, closes and exits 0. A client that will not take its replies is
 * closed after shutdown_timeout_ms, and the exit is still clean.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "memdex/error.h"
#include "tests/integration/harness.h"

static void sigterm_answers_requests_already_sent_then_exits_0(void **state)
{
    (void)state;
    mdx_srv_t srv;
    mdx_srv_start(&srv, NULL);
    mdx_cli_t c, idle;
    assert_int_equal(mdx_cli_connect(&c, srv.port), 0);
    assert_int_equal(mdx_cli_connect(&idle, srv.port), 0);
    mdx_expect_ok(&c, "create_collection", "{\"name\":\"s\"}", "null");

    enum { N = 2000 };
    mdx_buf_t b;
    mdx_buf_init(&b);
    char args[128];
    for (int i = 0; i < N; i++) {
        snprintf(args, sizeof(args), "{\"coll\":\"s\",\"key\":%d,\"body\":{\"i\":%d}}", i / 2,
                 i / 2);
        if (i % 2 == 0)
            mdx_req_json(&b, 1 + (uint64_t)i, "put", args);
        else
            mdx_req_json(&b, 1 + (uint64_t)i, "get", "{\"coll\":\"s\",\"key\":0}");
    }
    mdx_cli_send(&c, b.data, b.len);
    mdx_buf_fini(&b);
    /* The signal right behind the batch: the server may not have read any of it yet. */
    kill(srv.pid, SIGTERM);

    for (int i = 0; i < N; i++) {
        mdx_reply_t r;
        if (mdx_cli_recv(&c, &r, 0))
            fail_msg("reply %d of %d missing", i, N);
        assert_int_equal(r.id, 1 + (uint64_t)i);
        assert_int_equal(r.status, 0);
        char *got = mdx_mp_to_json(r.body, r.body_len);
        assert_string_equal(got, i % 2 ? "{\"i\":0}" : "null");
        free(got);
        mdx_reply_free(&r);
    }
    assert_true(mdx_cli_wait_closed(&c, 0));
    assert_true(mdx_cli_wait_closed(&idle, 0));
    mdx_cli_close(&c);
    mdx_cli_close(&idle);
    int st = mdx_srv_stop(&srv, -1); /* already exiting: only wait */
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void sigint_closes_idle_clients_and_exits_0(void **state)
{
    (void)state;
    mdx_srv_t srv;
    mdx_srv_start(&srv, NULL);
    mdx_cli_t c[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(mdx_cli_connect(&c[i], srv.port), 0);
        mdx_expect_ok(&c[i], "ping", "{}", "\"pong\"");
    }
    kill(srv.pid, SIGINT);
    for (int i = 0; i < 3; i++) {
        assert_true(mdx_cli_wait_closed(&c[i], 0));
        mdx_cli_close(&c[i]);
    }
    assert_true(mdx_srv_log_wait(&srv, "Interrupt: shutting down", MDX_TEST_TIMEOUT_MS));
    assert_true(mdx_srv_log_wait(&srv, "info bye", MDX_TEST_TIMEOUT_MS));
    int st = mdx_srv_stop(&srv, -1);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void client_that_will_not_read_is_closed_after_shutdown_timeout(void **state)
{
    (void)state;
    const char *extra[] = {"--shutdown-timeout-ms", "300", NULL};
    mdx_srv_t srv;
    mdx_srv_start(&srv, extra);
    mdx_cli_t c;
    assert_int_equal(mdx_cli_connect(&c, srv.port), 0);
    mdx_expect_ok(&c, "create_collection", "{\"name\":\"s\"}", "null");
    mdx_put_big(&c, "s", 1, 60000);
    /* 300 gets of the 60 kB record: 18 MB of replies that the client never reads. */
    mdx_buf_t b;
    mdx_buf_init(&b);
    for (int i = 0; i < 300; i++)
        mdx_req_json(&b, 10 + (uint64_t)i, "get", "{\"coll\":\"s\",\"key\":1}");
    mdx_cli_send(&c, b.data, b.len);
    mdx_buf_fini(&b);
    kill(srv.pid, SIGTERM);
    assert_true(
        mdx_srv_log_wait(&srv, "clients still connected after 300 ms", MDX_TEST_TIMEOUT_MS));
    int st = mdx_srv_stop(&srv, -1);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    mdx_cli_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sigterm_answers_requests_already_sent_then_exits_0),
        cmocka_unit_test(sigint_closes_idle_clients_and_exits_0),
        cmocka_unit_test(client_that_will_not_read_is_closed_after_shutdown_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
