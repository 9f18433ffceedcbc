/*
 * The stats reply: server counters (uptime, connections, commands by op, errors by code), the
 * engine's records and memory, in total and per collection, and the snapshots (encoded by
 * server/snapshot.c). Commands and errors list only the ops and codes that occurred
 * (docs/protocol.md), in op and code order. The cache counters (gets, hits, misses, hit_ratio,
 * evictions by cause, expired, invalidated, oom, pending) have the same keys in the totals and
 * in each collection: one table writes both.
 */
#include <stddef.h>
#include <string.h>

#include "server/server.h"

#define PUT_LIT(out, s) mdx_mp_put_str((out), (s), sizeof(s) - 1)

static const struct {
    const char *name;
    size_t off;
} counters[] = {
    {"gets", offsetof(mdx_counters_t, gets)},
    {"hits", offsetof(mdx_counters_t, hits)},
    {"misses", offsetof(mdx_counters_t, misses)},
    {"evicted_memory", offsetof(mdx_counters_t, evicted_memory)},
    {"evicted_capacity", offsetof(mdx_counters_t, evicted_capacity)},
    {"expired", offsetof(mdx_counters_t, expired)},
    {"invalidated", offsetof(mdx_counters_t, invalidated)},
    {"invalidations", offsetof(mdx_counters_t, invalidations)},
    {"oom", offsetof(mdx_counters_t, oom)},
};
#define NCOUNTERS (sizeof(counters) / sizeof(counters[0]))
#define NCACHE    (NCOUNTERS + 3) /* the counters, hit_ratio, pending, policy */

static void put_cstr(mdx_buf_t *out, const char *s)
{
    mdx_mp_put_str(out, s, strlen(s));
}

/* The cache keys shared by the totals and each collection (NCACHE of them). */
static void put_cache(mdx_buf_t *out, const mdx_counters_t *ops, uint64_t pending,
                      mdx_evict_policy_t policy)
{
    for (size_t i = 0; i < NCOUNTERS; i++) {
        uint64_t v;
        memcpy(&v, (const char *)ops + counters[i].off, sizeof(v));
        put_cstr(out, counters[i].name);
        mdx_mp_put_uint(out, v);
    }
    uint64_t lookups = ops->hits + ops->misses;
    PUT_LIT(out, "hit_ratio");
    mdx_mp_put_double(out, lookups ? (double)ops->hits / (double)lookups : 0.0);
    PUT_LIT(out, "pending");
    mdx_mp_put_uint(out, pending);
    PUT_LIT(out, "policy");
    put_cstr(out, mdx_evict_policy_name(policy));
}

void mdx_stats_encode(mdx_server_t *srv, mdx_buf_t *out)
{
    const mdx_srv_stats_t *s = &srv->stats;
    mdx_store_stats_t ss;
    mdx_store_stats(srv->store, &ss);

    mdx_mp_put_map(out, 10 + NCACHE);
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
    PUT_LIT(out, "maxmemory");
    mdx_mp_put_uint(out, ss.maxmemory);
    put_cache(out, &ss.ops, ss.pending, ss.policy);

    size_t n = mdx_coll_count(srv->store);
    PUT_LIT(out, "collections");
    mdx_mp_put_map(out, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        const mdx_coll_t *c = mdx_coll_at(srv->store, i);
        mdx_coll_stats_t cs;
        mdx_coll_stats(c, &cs);
        const char *name = mdx_coll_name(c);
        mdx_mp_put_str(out, name, strlen(name));
        mdx_mp_put_map(out, 3 + NCACHE);
        PUT_LIT(out, "records");
        mdx_mp_put_uint(out, cs.records);
        PUT_LIT(out, "memory");
        mdx_mp_put_uint(out, cs.memory);
        PUT_LIT(out, "capacity");
        mdx_mp_put_uint(out, cs.capacity);
        put_cache(out, &cs.ops, cs.pending, cs.policy);
    }

    PUT_LIT(out, "reclaim");
    mdx_mp_put_map(out, 4);
    PUT_LIT(out, "runs");
    mdx_mp_put_uint(out, s->reclaim_runs);
    PUT_LIT(out, "freed");
    mdx_mp_put_uint(out, s->reclaim_freed);
    PUT_LIT(out, "max_us");
    mdx_mp_put_uint(out, s->reclaim_max_us);
    PUT_LIT(out, "max_cpu_us");
    mdx_mp_put_uint(out, s->reclaim_max_cpu_us);

    PUT_LIT(out, "snapshot");
    mdx_srv_snap_stats(srv, out);
}
