/*
 * The CLI's two line-driven modes: the interactive shell (libedit: line editing, history in
 * ~/.memdex_history, completion of command names) and script mode (commands from a pipe or
 * file, one per line). Both split a line into words with mdx__split_line and run it exactly as
 * a one-shot command line, so the two modes cannot drift apart.
 *
 * Word splitting follows the shell where that is natural ('...' is literal) and JSON where the
 * shell would get in the way: a {...}, [...] or "..." part runs to its matching close, blanks
 * included, and keeps its quotes, so `put users 1 {"name": "ann"}` needs no extra quoting and
 * `get users "1"` is the string key "1", as `memdex get users '"1"'` is from a shell.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <editline/readline.h>

#include "client/cli/cli.h"

#define MAX_WORDS   10002 /* mget's 10,000 keys, the command and the collection */
#define HISTORY_MAX 1000

int mdx__split_line(char *line, char **words, int max, const char **err)
{
    char *r = line;
    int n = 0;
    for (;;) {
        while (*r == ' ' || *r == '\t' || *r == '\n' || *r == '\r')
            r++;
        if (*r == '\0')
            return n;
        if (n == max) {
            *err = "too many words";
            return -1;
        }
        char *w = r;
        words[n++] = w;
        int depth = 0, instr = 0;
        while (*r) {
            char c = *r;
            if (!instr && depth == 0 && (c == ' ' || c == '\t' || c == '\n' || c == '\r'))
                break;
            if (!instr && depth == 0 && c == '\'') {
                r++;
                while (*r && *r != '\'')
                    *w++ = *r++;
                if (!*r) {
                    *err = "unterminated '...'";
                    return -1;
                }
                r++;
                continue;
            }
            if (instr) {
                if (c == '\\' && r[1]) {
                    *w++ = *r++;
                } else if (c == '"') {
                    instr = 0;
                }
            } else if (c == '"') {
                instr = 1;
            } else if (c == '{' || c == '[') {
                depth++;
            } else if ((c == '}' || c == ']') && depth > 0) {
                depth--;
            }
            *w++ = *r++;
        }
        if (instr) {
            *err = "unterminated string";
            return -1;
        }
        if (depth) {
            *err = "unterminated { or [";
            return -1;
        }
        int at_end = *r == '\0';
        *w = '\0';
        if (!at_end)
            r++;
    }
}

/* Runs one line; returns -1 for quit/exit, else the command's exit status (0 for blank
 * lines and comments). */
static int run_line(mdx_shell_t *sh, char *line, char **words)
{
    const char *err = NULL;
    int n = mdx__split_line(line, words, MAX_WORDS, &err);
    if (n < 0) {
        fprintf(stderr, "memdex: %s\n", err);
        return MDX_EXIT_USAGE;
    }
    if (n == 0 || words[0][0] == '#')
        return 0;
    if (strcmp(words[0], "quit") == 0 || strcmp(words[0], "exit") == 0)
        return -1;
    int rc = mdx__cmd_run(sh, n, words, 0);
    fflush(stdout);
    return rc;
}

int mdx__script(mdx_shell_t *sh, FILE *f)
{
    char **words = malloc(MAX_WORDS * sizeof(char *));
    if (!words) {
        mdx__print_error("NOMEM", "out of memory");
        return MDX_EXIT_ERR;
    }
    char *line = NULL;
    size_t cap = 0;
    int status = 0;
    while (getline(&line, &cap, f) >= 0) {
        int rc = run_line(sh, line, words);
        if (rc < 0)
            break;
        if (rc)
            status = rc;
    }
    free(line);
    free(words);
    return status;
}

static char *complete_cmd(const char *text, int state)
{
    static size_t i, len;
    if (!state) {
        i = 0;
        len = strlen(text);
    }
    const char *name;
    while ((name = mdx__cmd_name(i++)) != NULL)
        if (strncmp(name, text, len) == 0)
            return strdup(name);
    return NULL;
}

static char **complete(const char *text, int start, int end)
{
    (void)end;
    rl_attempted_completion_over = 1;
    if (start != 0)
        return NULL;
    return rl_completion_matches(text, complete_cmd);
}

int mdx__repl(mdx_shell_t *sh)
{
    char **words = malloc(MAX_WORDS * sizeof(char *));
    if (!words) {
        mdx__print_error("NOMEM", "out of memory");
        return MDX_EXIT_ERR;
    }
    char prompt[300];
    if (sh->opt.socket)
        snprintf(prompt, sizeof(prompt), "memdex unix:%.200s> ", sh->opt.socket);
    else
        snprintf(prompt, sizeof(prompt), "memdex %.200s:%d> ", sh->opt.host, sh->opt.port);

    char hist[4096] = "";
    const char *home = getenv("HOME");
    if (home && *home)
        snprintf(hist, sizeof(hist), "%s/.memdex_history", home);
    rl_readline_name = "memdex";
    rl_attempted_completion_function = complete;
    using_history();
    stifle_history(HISTORY_MAX);
    if (hist[0])
        read_history(hist);
    printf("memdex shell: `help` lists the commands, `help CMD` explains one, `quit` leaves.\n");

    char *line;
    while ((line = readline(prompt)) != NULL) {
        if (line[strspn(line, " \t")] != '\0')
            add_history(line);
        int rc = run_line(sh, line, words);
        free(line);
        if (rc < 0)
            break;
    }
    if (hist[0])
        write_history(hist);
    free(words);
    return MDX_EXIT_OK;
}
