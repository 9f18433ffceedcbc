/*
 * Bounded memory whatever clients do. A client that asks for far more output than
 * output_limit and never reads is cut off, and the server's RSS barely moves; a client that
 * reads late is paused at output_pause (its requests wait in the kernel) and resumed once it
 * reads, again with RSS bounded; meanwhile other clients keep getting answers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <sys/wait.h>

#include "memdex/error.h"
#include "protocol/response.h"
#include "tests/integration/harness.h"

#define BLOB (100 * 1000) /* bytes in the record every get returns */

typedef struct {
    mdx_srv_t srv;
    mdx_cli_t a; /* a well-behaved client */
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    const char *extra[] = {"--output-pause", "64k", "--output-limit", "1m", "--log-level",
                           "debug",          NULL};
    mdx_srv_start(&f->srv, extra);
    assert_int_equal(mdx_cli_connect(&f->a, f->srv.port), 0);
    mdx_expect_ok(&f->a, "create_collection", "{\"name\":\"b\"}", "null");

    mdx_put_big(&f->a, "b", 1, BLOB);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    mdx_cli_close(&f->a);
    int st = mdx_srv_stop(&f->srv, 0);
    free(f);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    return 0;
}

/* n pipelined gets of the big record. */
static void gets(mdx_buf_t *b, int n)
{
    for (int i = 0; i < n; i++)
        mdx_req_json(b, 10 + (uint64_t)i, "get", "{\"coll\":\"b\",\"key\":1}");
}

static void still_serves(fx_t *f)
{
    mdx_expect_ok(&f->a, "ping", "{}", "\"pong\"");
    mdx_expect_ok(&f->a, "list_collections", "{}",
                  "[{\"name\":\"b\",\"records\":1,\"indexes\":[],\"capacity\":0,\"policy\":"
                  "\"s3fifo\",\"default_ttl_ms\":0}]");
}

static void client_that_never_reads_is_cut_off_at_output_limit(void **state)
{
    fx_t *f = *state;
    long before = mdx_srv_rss_kb(&f->srv);

    /* 2,000 gets ask for 200 MB of replies; output_limit is 1 MiB. */
    mdx_cli_t c;
    assert_int_equal(mdx_cli_connect(&c, f->srv.port), 0);
    mdx_buf_t b;
    mdx_buf_init(&b);
    gets(&b, 2000);
    (void)mdx_cli_try_send(&c, b.data, b.len); /* may fail once the server hangs up */
    mdx_buf_fini(&b);
    assert_true(mdx_cli_wait_closed(&c, 0));
    mdx_cli_close(&c);

    still_serves(f);
    long after = mdx_srv_rss_kb(&f->srv);
    print_message("server RSS %ld kB before, %ld kB after\n", before, after);
    assert_true(after - before < 32 * 1024);
    char *log = mdx_srv_log(&f->srv);
    assert_non_null(strstr(log, "above output_limit (1048576 bytes); closing"));
    free(log);
}

/* Bytes waiting in the client's receive queue. */
static int inq(int fd)
{
    int n = 0;
    assert_int_equal(ioctl(fd, FIONREAD, &n), 0);
    return n;
}

static void client_that_reads_late_is_paused_then_resumed(void **state)
{
    fx_t *f = *state;
    long before = mdx_srv_rss_kb(&f->srv);

    /* Batches of 5 gets (500 kB of replies, under output_limit), each sent once the previous
     * one's replies started arriving, so the server sees one batch per read. The client
     * reads nothing, so the kernel buffers fill, then the server's unsent output passes
     * output_pause and it stops reading this client. */
    mdx_cli_t c;
    assert_int_equal(mdx_cli_connect(&c, f->srv.port), 0);
    mdx_buf_t b;
    mdx_buf_init(&b);
    gets(&b, 5);
    int batches = 0, last = 0, paused = 0;
    while (!paused && batches < 400) {
        mdx_cli_send(&c, b.data, b.len);
        batches++;
        /* Next batch once replies to this one arrive or 300 ms pass (the server may have
         * put them all in its socket buffer); done when the server says it paused us. */
        for (int i = 0; i < 300 && !paused; i++) {
            paused = mdx_srv_log_wait(&f->srv, "reading paused", 1);
            int now = inq(c.fd);
            if (now > last) {
                last = now;
                break;
            }
        }
    }
    mdx_buf_fini(&b);
    assert_true(paused);
    print_message("%d batches sent (%d MB of replies) before the server paused reading\n", batches,
                  batches * 5 * BLOB >> 20);

    still_serves(f);
    long after = mdx_srv_rss_kb(&f->srv);
    print_message("server RSS %ld kB before, %ld kB after\n", before, after);
    assert_true(after - before < 32 * 1024);
    int st;
    char *s = mdx_call(&f->a, "stats", "{}", &st);
    assert_non_null(strstr(s, "\"connections\":{\"current\":2,")); /* held, not dropped */
    free(s);
    /* Reading now drains the output, the server resumes, and every reply arrives in order. */
    mdx_reply_t r;
    for (int i = 0; i < batches * 5; i++) {
        assert_int_equal(mdx_cli_recv(&c, &r, 0), 0);
        assert_int_equal(r.id, 10 + (uint64_t)(i % 5));
        assert_int_equal(r.status, 0);
        assert_int_equal(r.body_len, BLOB + 1 + 2 + 5); /* fixmap, "s", str32 header */
        mdx_reply_free(&r);
    }
    mdx_expect_ok(&c, "ping", "{}", "\"pong\"");
    assert_true(mdx_srv_log_wait(&f->srv, "reading resumed", 1));
    mdx_cli_close(&c);
    still_serves(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(client_that_never_reads_is_cut_off_at_output_limit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(client_that_reads_late_is_paused_then_resumed, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
