/*
 * The CLI's connection: a thin layer over libmemdex-client, the only file of the CLI that
 * includes memdex/client.h.
 *
 * The CLI speaks to the server with raw requests (mdx_client_call / mdx_client_queue): every
 * command builds its args map from the command line (JSON turned into msgpack) and prints the
 * result body as JSON, so it needs the generic call, not the typed wrappers. The library opens
 * the connection on the first call, says hello, reconnects after a loss and retries idempotent
 * commands; this file only maps its results onto mdx_cli_reply_t.
 */
#include <stdio.h>
#include <string.h>

#include "client/cli/cli.h"
#include "memdex/client.h"

int mdx__conn_init(mdx_shell_t *sh)
{
    char addr[1100];
    if (sh->opt.socket) {
        if (strlen(sh->opt.socket) > 1000) {
            mdx__print_error("INVAL", "socket path too long");
            return MDX_EXIT_USAGE;
        }
        snprintf(addr, sizeof(addr), "unix:%s", sh->opt.socket);
    } else {
        if (strlen(sh->opt.host) > 1000) {
            mdx__print_error("INVAL", "host name too long");
            return MDX_EXIT_USAGE;
        }
        /* An IPv6 literal needs brackets in "host:port". */
        int v6 = strchr(sh->opt.host, ':') != NULL && sh->opt.host[0] != '[';
        snprintf(addr, sizeof(addr), v6 ? "[%s]:%d" : "%s:%d", sh->opt.host, sh->opt.port);
    }
    mdx_client_opts_t o;
    mdx_client_opts_init(&o);
    o.addr = addr;
    o.client_name = "memdex-cli";
    o.connect_timeout_ms = sh->opt.timeout_ms;
    o.read_timeout_ms = sh->opt.timeout_ms;
    o.write_timeout_ms = sh->opt.timeout_ms;
    /* One deadline per call: with --timeout 0 nothing bounds a call. */
    o.retry.deadline_ms = sh->opt.timeout_ms > 0 ? 2 * sh->opt.timeout_ms : 0;
    int rc = mdx_client_new(&o, &sh->client);
    if (rc) {
        char msg[1200];
        snprintf(msg, sizeof(msg), "cannot use address '%s'", addr);
        mdx__print_error(mdx_err_name(rc), msg);
        return rc == MDX_EINVAL ? MDX_EXIT_USAGE : MDX_EXIT_ERR;
    }
    return 0;
}

void mdx__conn_fini(mdx_shell_t *sh)
{
    mdx_client_free(sh->client);
    sh->client = NULL;
}

/* After a failed library call: what went wrong, in the CLI's terms. */
static void failed(mdx_shell_t *sh, int rc, mdx_cli_reply_t *r)
{
    mdx_client_t *c = sh->client;
    switch (mdx_client_err_kind(c)) {
    case MDX_CLIENT_ERR_SERVER:
        r->kind = MDX_CLI_SERVER;
        break;
    case MDX_CLIENT_ERR_TRANSPORT:
        r->kind = MDX_CLI_TRANSPORT;
        break;
    default:
        r->kind = MDX_CLI_LOCAL;
        break;
    }
    /* A server error at connect time (MAXCLIENTS, SHUTDOWN) also means no connection. */
    if (rc == MDX_EMAXCLIENTS || rc == MDX_ESHUTDOWN)
        r->kind = MDX_CLI_TRANSPORT;
    r->code = rc;
    snprintf(sh->name, sizeof(sh->name), "%s", mdx_client_err_name(c));
    r->name = sh->name;
    r->msg = mdx_client_errmsg(c);
    r->body = NULL;
    r->body_len = 0;
}

static void from_reply(mdx_shell_t *sh, int rc, const mdx_client_reply_t *rep, mdx_cli_reply_t *r)
{
    if (rc) {
        failed(sh, rc, r);
        return;
    }
    r->kind = MDX_CLI_OK;
    r->code = 0;
    r->name = "OK";
    r->msg = "";
    r->body = rep->body.ptr;
    r->body_len = rep->body.len;
}

void mdx__conn_call(mdx_shell_t *sh, const char *op, const uint8_t *args, size_t n,
                    mdx_cli_reply_t *r)
{
    mdx_client_reply_t rep;
    int rc = mdx_client_call(sh->client, op, args, n, &rep);
    from_reply(sh, rc, &rep, r);
}

int mdx__conn_queue(mdx_shell_t *sh, const char *op, const uint8_t *args, size_t n,
                    mdx_cli_reply_t *r)
{
    int rc = mdx_client_queue(sh->client, op, args, n);
    if (rc)
        failed(sh, rc, r);
    return rc;
}

int mdx__conn_flush(mdx_shell_t *sh, mdx_cli_reply_t *r)
{
    int rc = mdx_client_flush(sh->client);
    if (rc)
        failed(sh, rc, r);
    return rc;
}

void mdx__conn_next(mdx_shell_t *sh, mdx_cli_reply_t *r)
{
    mdx_client_reply_t rep;
    int rc = mdx_client_read_reply(sh->client, &rep);
    from_reply(sh, rc, &rep, r);
}

size_t mdx__conn_pending(const mdx_shell_t *sh)
{
    return mdx_client_pending(sh->client);
}
