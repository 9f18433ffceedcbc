/*
 * memdexd for the client tests: the integration harness's mdx_srv_start with a data directory
 * of its own (created under the test's working directory, removed by srv_stop), so that no
 * test loads the snapshot another one left behind. The harness passes --data-dir itest-data;
 * a later flag wins.
 */
#ifndef MDX_TEST_CLIENT_SRV_H
#define MDX_TEST_CLIENT_SRV_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "tests/integration/harness.h"

typedef struct {
    mdx_srv_t srv;
    char dir[64];
} srv_t;

/* extra: NULL-terminated flags, at most 16 (may be NULL). */
static inline void srv_start(srv_t *s, const char *const *extra)
{
    snprintf(s->dir, sizeof(s->dir), "client-data-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    const char *argv[20];
    int n = 0;
    argv[n++] = "--data-dir";
    argv[n++] = s->dir;
    for (int i = 0; extra && extra[i]; i++) {
        assert_true(n < 18);
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    mdx_srv_start(&s->srv, argv);
}

/* Stops with SIGTERM, checks for a clean exit, removes the data directory. */
static inline void srv_stop(srv_t *s)
{
    int st = mdx_srv_stop(&s->srv, 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
    assert_int_equal(system(cmd), 0);
}

#endif
