/*
 * The memdex CLI: what its files share. Private to client/cli/.
 *
 * main.c parses the global flags and picks one-shot, interactive (repl.c) or script mode; every
 * mode runs a command line through mdx__cmd_run (cmds.c), which parses the command's own flags,
 * builds the request's args map as msgpack, calls the server through conn.c (the only file that
 * knows the client library) and prints the result. import.c holds the two bulk commands.
 *
 * Output contract (docs/cli.md): results on stdout, errors on stderr as "error: NAME: message",
 * and the exit status of the command (MDX_EXIT_*).
 */
#ifndef MDX_CLI_CLI_H
#define MDX_CLI_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/mp.h"

/* Exit statuses, documented in docs/cli.md. */
#define MDX_EXIT_OK    0 /* success */
#define MDX_EXIT_ERR   1 /* the server refused a request, or import had bad lines */
#define MDX_EXIT_USAGE 2 /* bad command line: unknown command or flag, bad JSON, bad number */
#define MDX_EXIT_CONN  3 /* could not connect, connection lost, timed out */

#define MDX_CLI_DEFAULT_HOST       "127.0.0.1"
#define MDX_CLI_DEFAULT_PORT       7711
#define MDX_CLI_DEFAULT_TIMEOUT_MS 10000

typedef struct {
    const char *host;
    int port;
    const char *socket; /* Unix socket path, or NULL for TCP */
    int timeout_ms;     /* connect and each reply; 0: wait forever */
    int raw;            /* --raw: results as msgpack hex */
} mdx_cli_opts_t;

/** The outcome of one request. kind: MDX_CLI_OK (body/body_len is the result, msgpack),
 *  MDX_CLI_SERVER (the server refused it), MDX_CLI_TRANSPORT (connection lost, timeout, bad
 *  reply: the connection was dropped) or MDX_CLI_LOCAL (refused before sending: too big, out of
 *  memory). Otherwise code/name/msg describe the error (name and msg NUL-terminated). Views
 *  valid until the next call on the connection. */
typedef enum { MDX_CLI_OK, MDX_CLI_SERVER, MDX_CLI_TRANSPORT, MDX_CLI_LOCAL } mdx_cli_kind_t;

typedef struct {
    mdx_cli_kind_t kind;
    int code;
    const char *name;
    const char *msg;
    const uint8_t *body;
    size_t body_len;
} mdx_cli_reply_t;

/** A CLI session: options, the client (connecting on first use, reconnecting after a loss)
 *  and scratch buffers reused by every command. */
typedef struct {
    mdx_cli_opts_t opt;
    struct mdx_client *client;
    mdx_buf_t args; /* the args map of the request being built */
    mdx_buf_t text; /* output being formatted */
    char name[32];  /* error name of the last reply (the server's "code" string) */
} mdx_shell_t;

/* ---- conn.c: the only file that talks to libmemdex-client ---- */

/** Creates the client from sh->opt (no I/O). Returns 0, or prints the error and returns
 *  MDX_EXIT_USAGE (a malformed address) or MDX_EXIT_ERR. */
int mdx__conn_init(mdx_shell_t *sh);
void mdx__conn_fini(mdx_shell_t *sh);
/** Sends op with args (one msgpack map) and waits for its reply; fills *r (see above). */
void mdx__conn_call(mdx_shell_t *sh, const char *op, const uint8_t *args, size_t n,
                    mdx_cli_reply_t *r);
/** Pipelining (import): queue a request (no I/O; 0 or a local error filled into *r), flush,
 *  read the oldest reply, count the pending ones. */
int mdx__conn_queue(mdx_shell_t *sh, const char *op, const uint8_t *args, size_t n,
                    mdx_cli_reply_t *r);
int mdx__conn_flush(mdx_shell_t *sh, mdx_cli_reply_t *r);
void mdx__conn_next(mdx_shell_t *sh, mdx_cli_reply_t *r);
size_t mdx__conn_pending(const mdx_shell_t *sh);
/** Prints r's error as "error: NAME: message" and returns the exit status it implies. */
int mdx__reply_fail(const mdx_cli_reply_t *r);

/* ---- cmds.c ---- */

/** Runs one command line (argv[0] is the command name). allow_global: connection flags may
 *  appear among the command's (one-shot mode; not inside the shell). Returns an MDX_EXIT_*
 *  status. */
int mdx__cmd_run(mdx_shell_t *sh, int argc, char **argv, int allow_global);
/** When argv[*i] is a connection or output flag (-h/--host, -p/--port, -s/--socket,
 *  --timeout, --raw), applies it (consuming its value) and returns 0; returns -1 when it is
 *  not one, -2 when it is one but !allowed (inside the shell), or MDX_EXIT_USAGE after
 *  printing the problem. cmd: the command being parsed (for messages), or NULL. */
int mdx__global_flag(mdx_shell_t *sh, int argc, char **argv, int *i, const void *cmd, int allowed);
/** Prints the list of commands (for --help and `help`). */
void mdx__help_all(FILE *f);
/** Names of the commands, NULL-terminated (for completion). */
const char *mdx__cmd_name(size_t i);

/** Prints "error: NAME: message" on stderr. */
void mdx__print_error(const char *name, const char *msg);
/** Parses a record key given as text (docs/cli.md, "Keys") and appends its msgpack to b.
 *  force_str: --str-key. Returns 0, or prints a usage error and returns MDX_EXIT_USAGE. */
int mdx__key_from_text(const char *cmd, const char *text, int force_str, mdx_buf_t *b);
/** Parses a non-negative decimal integer. Returns 0 or -1. */
int mdx__parse_uint(const char *s, uint64_t *v);
/** Writes buf to stdout and checks for a write error. Returns 0 or -1. */
int mdx__write_out(const void *buf, size_t n);

/* ---- import.c ---- */

int mdx__cmd_import(mdx_shell_t *sh, const char *coll, const char *file, const char *key_field,
                    const char *mode, int strict, int ignore_bad);
int mdx__cmd_export(mdx_shell_t *sh, const char *coll, const char *key_field, int unsorted);

/* ---- repl.c ---- */

/** Splits a command line into words (docs/cli.md, "Interactive mode"): blanks separate words,
 *  '...' is literal, a word starting with { [ or " runs to its matching close (JSON).
 *  Returns the word count (words point into the modified line), or -1 with *err set. */
int mdx__split_line(char *line, char **words, int max, const char **err);
/** Interactive mode (stdin is a terminal) with libedit; returns the exit status of the session
 *  (0, or that of the last failed command at EOF). */
int mdx__repl(mdx_shell_t *sh);
/** Script mode: commands from f, one per line. Returns 0, or the status of the last command
 *  that failed. */
int mdx__script(mdx_shell_t *sh, FILE *f);

#endif
