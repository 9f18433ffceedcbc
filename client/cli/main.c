/*
 * memdex: the command-line client of memdexd.
 *
 *   memdex [connection flags] COMMAND ARGS...   one-shot: run one command, exit with its status
 *   memdex [connection flags]                   interactive shell when stdin is a terminal,
 *                                               else commands read from stdin, one per line
 *
 * main() only parses the flags that come before the command and picks the mode; commands live
 * in cmds.c. The connection is opened by the first command that needs the server, so
 * `memdex --help` and usage errors work without one.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "client/cli/cli.h"

int main(int argc, char **argv)
{
    mdx_shell_t sh;
    memset(&sh, 0, sizeof(sh));
    sh.opt.host = MDX_CLI_DEFAULT_HOST;
    sh.opt.port = MDX_CLI_DEFAULT_PORT;
    sh.opt.timeout_ms = MDX_CLI_DEFAULT_TIMEOUT_MS;
    mdx_buf_init(&sh.args);
    mdx_buf_init(&sh.text);

    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0) {
            mdx__help_all(stdout);
            return MDX_EXIT_OK;
        }
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-')
            break;
        int rc = mdx__global_flag(&sh, argc, argv, &i, NULL, 1);
        if (rc == -1) {
            fprintf(stderr, "memdex: unknown flag '%s' (memdex --help lists them)\n", a);
            return MDX_EXIT_USAGE;
        }
        if (rc)
            return rc;
    }

    /* Results are lines; a pipe gets them in large writes (export, --raw of big pages). */
    static char outbuf[1 << 16];
    if (!isatty(STDOUT_FILENO))
        setvbuf(stdout, outbuf, _IOFBF, sizeof(outbuf));

    int status;
    if (i < argc)
        status = mdx__cmd_run(&sh, argc - i, argv + i, 1);
    else if (isatty(STDIN_FILENO))
        status = mdx__repl(&sh);
    else
        status = mdx__script(&sh, stdin);

    if (fflush(stdout) != 0 && status == MDX_EXIT_OK) {
        perror("memdex: writing the output");
        status = MDX_EXIT_ERR;
    }
    mdx__conn_fini(&sh);
    mdx_buf_fini(&sh.args);
    mdx_buf_fini(&sh.text);
    return status;
}
