/*
 * The stats reply: server counters (uptime, connections, commands by op, errors by code), the
 * engine's records and memory, in total and per collection, and the snapshots (encoded by
 * server/snapshot.c). Commands and errors list only the ops and codes that occurred
 * (docs/protocol.md), in op and code order.
 */
#include <string.h>

#include "server/server.h"

#define PUT_LIT(out, s) mdx_mp_put_str((out), (s), sizeof(s) - 1)

void mdx_stats_encode(mdx_server_t *srv, mdx_buf_t *out)
{
    const mdx_srv_stats_t *s = &srv->stats;
    mdx_store_stats_t ss;
    mdx_store_stats(srv->store, &ss);

    mdx_mp_put_map(out, 8);
    PUT_LIT(out, "uptime_s");
    mdx_mp_put_uint(out, (uv_now(srv->loop) - s->start_ms) / 1000);

    PUT_LIT(out, "connections");
    mdx_mp_put_map(out, 3);
    PUT_LIT(out, "current");
    mdx_mp_put_uint(out, s->conn_current);
    PUT_LIT(out, "total");
    mdx_mp_put_uint(out, s->conn_total);
    PUT_LIT(out, "rejected");
    mdx_mp_put_uint(out, s->conn_rejected);

    uint32_t nops = 0;
    for (int op = 0; op < MDX_OP__COUNT; op++)
        nops += s->commands[op] != 0;
    PUT_LIT(out, "commands");
    mdx_mp_put_map(out, nops);
    for (int op = 0; op < MDX_OP__COUNT; op++) {
        if (!s->commands[op])
            continue;
        const char *name = mdx_op_name((mdx_op_t)op);
        mdx_mp_put_str(out, name, strlen(name));
        mdx_mp_put_uint(out, s->commands[op]);
    }

    uint32_t nerr = 0;
    for (int e = 1; e < MDX_ERRNO_MAX; e++)
        nerr += s->errors[e] != 0;
    PUT_LIT(out, "errors");
    mdx_mp_put_map(out, nerr);
    for (int e = 1; e < MDX_ERRNO_MAX; e++) {
        if (!s->errors[e])
            continue;
        const char *name = mdx_err_name(e);
        mdx_mp_put_str(out, name, strlen(name));
        mdx_mp_put_uint(out, s->errors[e]);
    }

    PUT_LIT(out, "records");
    mdx_mp_put_uint(out, ss.records);
    PUT_LIT(out, "memory");
    mdx_mp_put_uint(out, ss.memory);

    size_t n = mdx_coll_count(srv->store);
    PUT_LIT(out, "collections");
    mdx_mp_put_map(out, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        const mdx_coll_t *c = mdx_coll_at(srv->store, i);
        mdx_coll_stats_t cs;
        mdx_coll_stats(c, &cs);
        const char *name = mdx_coll_name(c);
        mdx_mp_put_str(out, name, strlen(name));
        mdx_mp_put_map(out, 2);
        PUT_LIT(out, "records");
        mdx_mp_put_uint(out, cs.records);
        PUT_LIT(out, "memory");
        mdx_mp_put_uint(out, cs.memory);
    }

    PUT_LIT(out, "snapshot");
    mdx_srv_snap_stats(srv, out);
}
