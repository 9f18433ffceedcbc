/*
 * The installed library works as documented: `cmake --install` of this build into a scratch
 * prefix, then the example program of docs/client.md compiled with nothing but
 * `pkg-config --cflags --libs memdex` from that prefix (against the shared library, and again
 * against the static one), run against a real memdexd, must exit 0.
 *
 * Everything outside this process runs through /bin/sh with its output in files under the
 * scratch directory, which is printed on failure and removed on success.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/client/srv.h"
#include "tests/integration/harness.h"

#if !defined(MDX_CMAKE_COMMAND) || !defined(MDX_BUILD_DIR) || !defined(MDX_CC) ||                  \
    !defined(MDX_LIBDIR) || !defined(MDX_CLIENT_DOC) || !defined(MDX_EXTRACT_SCRIPT) ||            \
    !defined(MDX_SCRATCH_DIR)
#error "tests/client/CMakeLists.txt passes the paths this test needs"
#endif

static char dir[512];

/* Runs cmd with sh; its output goes to dir/log. Returns the exit status (-1: not exited). */
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(cmd));
    char full[sizeof(cmd) + sizeof(dir) + 32];
    snprintf(full, sizeof(full), "{ %s ; } >>'%s/log' 2>&1", cmd, dir);
    fprintf(stderr, "+ %s\n", cmd);
    int st = system(full);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The first line cmd prints on stdout (without the newline); caller frees. */
static char *sh_out(const char *cmd)
{
    fprintf(stderr, "+ %s\n", cmd);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char buf[4096] = "";
    if (!fgets(buf, sizeof(buf), p))
        buf[0] = '\0';
    int st = pclose(p);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("'%s' failed", cmd);
    buf[strcspn(buf, "\n")] = '\0';
    fprintf(stderr, "  %s\n", buf);
    return strdup(buf);
}

static void must(int status, const char *what)
{
    if (status == 0)
        return;
    char path[600];
    snprintf(path, sizeof(path), "%s/log", dir);
    FILE *f = fopen(path, "r");
    char line[1024];
    fprintf(stderr, "---- %s ----\n", path);
    while (f && fgets(line, sizeof(line), f))
        fputs(line, stderr);
    if (f)
        fclose(f);
    fail_msg("%s failed (status %d); scratch directory kept: %s", what, status, dir);
}

static void assert_file(const char *prefix, const char *rel)
{
    char p[1024];
    snprintf(p, sizeof(p), "%s/%s", prefix, rel);
    struct stat st;
    if (stat(p, &st) != 0)
        fail_msg("not installed: %s", p);
}

static void example_builds_and_runs_against_the_installed_library(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "%s/install-XXXXXX", MDX_SCRATCH_DIR);
    assert_non_null(mkdtemp(dir));
    char prefix[600], pcdir[700];
    snprintf(prefix, sizeof(prefix), "%s/prefix", dir);
    snprintf(pcdir, sizeof(pcdir), "%s/%s/pkgconfig", prefix, MDX_LIBDIR);

    must(sh("'%s' --install '%s' --prefix '%s'", MDX_CMAKE_COMMAND, MDX_BUILD_DIR, prefix),
         "cmake --install");
    assert_file(prefix, "include/memdex/client.h");
    assert_file(prefix, "include/memdex/error.h");
    assert_file(prefix, "include/memdex/protocol.h");
    assert_file(prefix, MDX_LIBDIR "/libmemdex-client.a");
    assert_file(prefix, MDX_LIBDIR "/libmemdex-client.so");
    assert_file(prefix, MDX_LIBDIR "/pkgconfig/memdex.pc");

    must(sh("'%s' -DIN='%s' -DOUT='%s/example.c' -P '%s'", MDX_CMAKE_COMMAND, MDX_CLIENT_DOC, dir,
            MDX_EXTRACT_SCRIPT),
         "extracting the example from docs/client.md");

    /* The .pc names the prefix installed to, not the configured one. */
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "PKG_CONFIG_PATH='%s' pkg-config --cflags --libs memdex", pcdir);
    char *flags = sh_out(cmd);
    char want[700];
    snprintf(want, sizeof(want), "-I%s/include", prefix);
    if (!strstr(flags, want))
        fail_msg("pkg-config --cflags does not name the install prefix: %s", flags);
    snprintf(cmd, sizeof(cmd), "PKG_CONFIG_PATH='%s' pkg-config --static --cflags --libs memdex",
             pcdir);
    char *sflags = sh_out(cmd);
    /* Static: the archive by name, then whatever else --static asks for. */
    char *l = strstr(sflags, "-lmemdex-client");
    assert_non_null(l);
    char static_flags[4096];
    snprintf(static_flags, sizeof(static_flags), "%.*s-l:libmemdex-client.a%s", (int)(l - sflags),
             sflags, l + strlen("-lmemdex-client"));

    const char *warn = "-std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes "
                       "-Wmissing-prototypes -Wformat=2 -Wundef -Wwrite-strings -Werror";
    must(sh("'%s' %s '%s/example.c' -o '%s/example_shared' %s", MDX_CC, warn, dir, dir, flags),
         "compiling the example (shared)");
    must(sh("'%s' %s '%s/example.c' -o '%s/example_static' %s", MDX_CC, warn, dir, dir,
            static_flags),
         "compiling the example (static)");
    /* The shared build really uses the installed .so. */
    must(sh("LD_LIBRARY_PATH='%s/%s' ldd '%s/example_shared' | grep -q '%s/%s/libmemdex-client.so'",
            prefix, MDX_LIBDIR, dir, prefix, MDX_LIBDIR),
         "finding the installed libmemdex-client.so in ldd's output");
    must(sh("! ldd '%s/example_static' | grep -q libmemdex-client", dir),
         "the static example does not need the .so");

    srv_t srv;
    srv_start(&srv, NULL);
    must(sh("LD_LIBRARY_PATH='%s/%s' '%s/example_shared' 127.0.0.1:%d", prefix, MDX_LIBDIR, dir,
            srv.srv.port),
         "running the example (shared)");
    must(sh("'%s/example_static' 127.0.0.1:%d", dir, srv.srv.port), "running the example (static)");
    srv_stop(&srv);

    free(flags);
    free(sflags);
    must(sh("rm -rf '%s'", dir), "removing the scratch directory");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(example_builds_and_runs_against_the_installed_library),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
