/*
 * Configuration: --help lists every key with its default; a config file sets keys and flags
 * override it; unknown keys, bad values, an unusable config file and a port already in use
 * stop memdexd with a non-zero status and one line on stderr that names the problem; data_dir
 * is created when missing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/harness.h"

/* Runs memdexd expecting failure; checks the status and that stderr is one line containing
 * every string in `names`. */
static void expect_refusal(const char *const *argv, const char *const *names)
{
    char *out, *err;
    int st = mdx_run_memdexd(argv, &out, &err);
    print_message("stderr: %s", err);
    assert_true(WIFEXITED(st));
    assert_int_not_equal(WEXITSTATUS(st), 0);
    size_t n = strlen(err);
    assert_true(n > 1 && err[n - 1] == '\n');
    assert_ptr_equal(strchr(err, '\n'), err + n - 1); /* exactly one line */
    assert_true(strncmp(err, "memdexd: ", 9) == 0);
    for (int i = 0; names[i]; i++)
        if (!strstr(err, names[i]))
            fail_msg("message does not name '%s': %s", names[i], err);
    free(out);
    free(err);
}

static void help_lists_every_key_with_its_default(void **state)
{
    (void)state;
    static const char *const keys[][2] = {
        {"listen", "[127.0.0.1:7711]"},
        {"unix", "[off]"},
        {"data_dir", "[./data]"},
        {"max_clients", "[10000]"},
        {"max_frame", "[33554432]"},
        {"max_body", "[16777216]"},
        {"max_key", "[1024]"},
        {"max_limit", "[10000]"},
        {"output_pause", "[1048576]"},
        {"output_limit", "[67108864]"},
        {"expire_interval_ms", "[10]"},
        {"expire_budget_us", "[1000]"},
        {"shutdown_timeout_ms", "[5000]"},
        {"reclaim_slice_us", "[250]"},
        {"maxmemory", "[0]"},
        {"maxmemory_policy", "[s3fifo]"},
        {"ttl_class", "[built-in only]"},
        {"log_level", "[info]"},
        {"log_file", "[off]"},
        {"snapshot_rules", "[3600:1,300:100,60:10000]"},
        {"snapshot_keep", "[2]"},
        {"snapshot_step_records", "[2000]"},
        {"snapshot_step_us", "[50]"},
        {"snapshot_fallback", "[no]"},
        {"snapshot_on_shutdown", "[yes]"},
    };
    const char *argv[] = {"--help", NULL};
    char *out, *err;
    int st = mdx_run_memdexd(argv, &out, &err);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char want[64];
        snprintf(want, sizeof(want), "\n  %s ", keys[i][0]);
        const char *line = strstr(out, want);
        if (!line)
            fail_msg("--help does not list %s:\n%s", keys[i][0], out);
        const char *eol = strchr(line + 1, '\n');
        const char *def = strstr(line, keys[i][1]);
        if (!def || def > eol)
            fail_msg("--help line for %s lacks default %s", keys[i][0], keys[i][1]);
    }
    assert_non_null(strstr(out, "--config FILE"));
    free(out);
    free(err);
}

static void unknown_flags_are_refused_by_name(void **state)
{
    (void)state;
    const char *a1[] = {"--no-such-key", "1", NULL}, *n1[] = {"no-such-key", NULL};
    expect_refusal(a1, n1);
    const char *a2[] = {"listen", NULL}, *n2[] = {"listen", NULL};
    expect_refusal(a2, n2);
    const char *a3[] = {"--max-clients", NULL}, *n3[] = {"max-clients", "needs a value", NULL};
    expect_refusal(a3, n3);
}

static void bad_values_are_refused_naming_key_and_value(void **state)
{
    (void)state;
    static const char *const cases[][4] = {
        {"--max-clients", "many", "max_clients", "'many'"},
        {"--max-clients", "0", "max_clients", "'0'"},
        {"--max-frame", "10x", "max_frame", "'10x'"},
        {"--max-key", "99999", "max_key", "'99999'"},
        {"--listen", "nonsense", "listen", "'nonsense'"},
        {"--listen", "127.0.0.1:70000", "listen", "'127.0.0.1:70000'"},
        {"--log-level", "loud", "log_level", "'loud'"},
        {"--expire-interval-ms", "-5", "expire_interval_ms", "'-5'"},
        {"--snapshot-rules", "60", "snapshot_rules", "'60'"},
        {"--snapshot-rules", "60:0", "snapshot_rules", "'60:0'"},
        {"--snapshot-rules", "60:1,,5:2", "snapshot_rules", "'60:1,,5:2'"},
        {"--snapshot-keep", "0", "snapshot_keep", "'0'"},
        {"--snapshot-fallback", "maybe", "snapshot_fallback", "'maybe'"},
        {"--maxmemory", "12xb", "maxmemory", "'12xb'"},
        {"--maxmemory", "-1", "maxmemory", "'-1'"},
        {"--maxmemory", "1tb", "maxmemory", "'1tb'"},
        {"--maxmemory-policy", "fifo", "maxmemory_policy", "'fifo'"},
        {"--maxmemory-policy", "default", "maxmemory_policy", "'default'"},
        {"--ttl-class", "tiny", "ttl_class", "'tiny'"},
        {"--ttl-class", "tiny=0", "ttl_class", "'tiny=0'"},
        {"--ttl-class", "=5", "ttl_class", "'=5'"},
        {"--ttl-class", "bad name=5", "ttl_class", "'bad name=5'"},
        {"--ttl-class", "none=5", "ttl_class", "'none=5'"},
        {"--reclaim-slice-us", "0", "reclaim_slice_us", "'0'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *argv[] = {cases[i][0], cases[i][1], NULL};
        const char *names[] = {cases[i][2], cases[i][3], NULL};
        expect_refusal(argv, names);
    }
    const char *argv[] = {"--output-pause", "2m", "--output-limit", "1m", NULL};
    const char *names[] = {"output_limit", "output_pause", NULL};
    expect_refusal(argv, names);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void config_file_sets_keys_and_flags_override_it(void **state)
{
    (void)state;
    char path[64];
    snprintf(path, sizeof(path), "itest-config-%d.conf", (int)getpid());
    write_file(path, "# memdexd test configuration\n"
                     "\n"
                     "max_frame = 4096   # small frames\n"
                     "  log_level debug\n"
                     "max-clients=50\n");
    const char *extra[] = {"--config", path, NULL};
    mdx_srv_t srv;
    mdx_srv_start(&srv, extra);
    mdx_cli_t c;
    assert_int_equal(mdx_cli_connect(&c, srv.port), 0);
    mdx_expect_ok(
        &c, "hello", "{}",
        "{\"protocol\":1,\"server\":\"memdex\",\"version\":\"0.1.0\",\"max_frame\":4096}");
    mdx_cli_close(&c);
    assert_true(mdx_srv_log_wait(&srv, "max_clients 50", MDX_TEST_TIMEOUT_MS));
    int st = mdx_srv_stop(&srv, 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    /* A flag wins over the file, whichever comes first on the command line. */
    const char *extra2[] = {"--max-frame", "8k", "--config", path, NULL};
    mdx_srv_start(&srv, extra2);
    assert_int_equal(mdx_cli_connect(&c, srv.port), 0);
    mdx_expect_ok(
        &c, "hello", "{}",
        "{\"protocol\":1,\"server\":\"memdex\",\"version\":\"0.1.0\",\"max_frame\":8192}");
    mdx_cli_close(&c);
    st = mdx_srv_stop(&srv, 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    unlink(path);
}

/* More ttl classes than the engine holds: refused at start, naming the key. */
static void too_many_ttl_classes_are_refused(void **state)
{
    (void)state;
    const char *argv[40];
    char defs[14][24];
    int n = 0;
    for (int i = 0; i < 13; i++) { /* 4 built in + 13 > 16 */
        snprintf(defs[i], sizeof(defs[i]), "c%d=1000", i);
        argv[n++] = "--ttl-class";
        argv[n++] = defs[i];
    }
    argv[n] = NULL;
    const char *names[] = {"ttl_class", "c12", NULL};
    expect_refusal(argv, names);
}

static void bad_config_files_are_refused_by_file_and_line(void **state)
{
    (void)state;
    char path[64], where[80];
    snprintf(path, sizeof(path), "itest-bad-%d.conf", (int)getpid());
    write_file(path, "# ok so far\nmax_clients 10\nbogus_key 1\n");
    snprintf(where, sizeof(where), "%s:3", path);
    const char *argv[] = {"--config", path, NULL};
    const char *n1[] = {where, "unknown key 'bogus_key'", NULL};
    expect_refusal(argv, n1);

    write_file(path, "max_body = lots\n");
    snprintf(where, sizeof(where), "%s:1", path);
    const char *n2[] = {where, "max_body", "'lots'", NULL};
    expect_refusal(argv, n2);
    unlink(path);

    const char *a3[] = {"--config", "/nonexistent/memdexd.conf", NULL};
    const char *n3[] = {"/nonexistent/memdexd.conf", NULL};
    expect_refusal(a3, n3);
}

static void port_in_use_is_refused_naming_the_address(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 1), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(a.sin_port));
    /* A data_dir of its own: data_dir is locked by the server that uses it. */
    char dir[64];
    snprintf(dir, sizeof(dir), "itest-port-%d", (int)getpid());
    const char *argv[] = {"--listen", addr, "--data-dir", dir, NULL};
    const char *names[] = {addr, "address already in use", NULL};
    expect_refusal(argv, names);
    close(fd);
    char lock[96];
    snprintf(lock, sizeof(lock), "%s/memdexd.lock", dir);
    unlink(lock);
    rmdir(dir);
}

static void data_dir_is_created_when_missing(void **state)
{
    (void)state;
    char dir[64];
    snprintf(dir, sizeof(dir), "itest-dd-%d/a/b", (int)getpid());
    const char *extra[] = {"--data-dir", dir, "--snapshot-on-shutdown", "no", NULL};
    mdx_srv_t srv;
    mdx_srv_start(&srv, extra);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    int ws = mdx_srv_stop(&srv, 0);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    char lock[96];
    snprintf(lock, sizeof(lock), "%s/memdexd.lock", dir);
    assert_int_equal(unlink(lock), 0);
    assert_int_equal(rmdir(dir), 0);
    *strrchr(dir, '/') = '\0';
    rmdir(dir);
    *strrchr(dir, '/') = '\0';
    rmdir(dir);

    /* A data_dir that cannot be created is refused by name. */
    write_file("itest-not-a-dir", "x");
    const char *argv[] = {"--listen", "127.0.0.1:0", "--data-dir", "itest-not-a-dir/sub", NULL};
    const char *names[] = {"data_dir", "itest-not-a-dir/sub", NULL};
    expect_refusal(argv, names);
    unlink("itest-not-a-dir");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(help_lists_every_key_with_its_default),
        cmocka_unit_test(unknown_flags_are_refused_by_name),
        cmocka_unit_test(bad_values_are_refused_naming_key_and_value),
        cmocka_unit_test(too_many_ttl_classes_are_refused),
        cmocka_unit_test(config_file_sets_keys_and_flags_override_it),
        cmocka_unit_test(bad_config_files_are_refused_by_file_and_line),
        cmocka_unit_test(port_in_use_is_refused_naming_the_address),
        cmocka_unit_test(data_dir_is_created_when_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
