/*
 * memdex-bench net: option parsing and output for the network load generator (the engine is
 * net_engine.c, the protocols net_memdex.c, net_redis.c, net_tarantool.c).
 *
 * Prints one readable table (or one JSON object with --json) and returns 0 when every operation
 * succeeded, 1 when the run failed or any operation got a wrong or error reply (a benchmark
 * that measures failures measures nothing), 2 on a usage error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "bench/net.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: memdex-bench net --server memdex|redis|tarantool [options]\n"
            "\n"
            "Drives a server over the network from one thread (epoll, non-blocking sockets).\n"
            "\n"
            "  --server NAME        memdex, redis or tarantool (required)\n"
            "  --addr HOST:PORT     where it listens [127.0.0.1 and 7711 / 6379 / 3301]\n"
            "  --workload NAME      %s [get]\n"
            "  --connections N      connections [50]\n"
            "  --pipeline N         operations in flight per connection [1]\n"
            "  --duration S         measured seconds (fractions allowed) [10]\n"
            "  --warmup S           seconds run before measuring [0]\n"
            "  --ops N              stop after N operations instead of a duration\n"
            "  --rate R             open loop at R operations/s in all (latency from each\n"
            "                       operation's scheduled time); default: closed loop\n"
            "  --records N          load: records to insert [1000000]; other workloads use\n"
            "                       the records the server holds\n"
            "  --value-size B       bytes of each record's value [100]\n"
            "  --dist NAME          uniform, zipfian or latest [the workload's: YCSB's for\n"
            "                       ycsb-*, uniform for get/put/range]\n"
            "  --scan-length N      records per range for the range workload [10]\n"
            "  --scan-max N         ycsb-e: range length uniform in 1..N [100]\n"
            "  --expected-ops N     sizes the scrambled zipfian key space as YCSB's\n"
            "                       operationcount does [--ops, else the record count]\n"
            "  --seed N             seed of the key and operation choices [1]\n"
            "  --reset              empty the data set first (load always does)\n"
            "  --json               print one JSON object instead of the table\n",
            bench_workload_names());
}

static int parse_seconds(const char *opt, const char *s, double *out)
{
    if (!s) {
        fprintf(stderr, "memdex-bench: %s needs a value\n", opt);
        return -1;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno || !(v >= 0) || v > 1e6) {
        fprintf(stderr, "memdex-bench: %s: '%s' is not a number of seconds\n", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

static const char *dist_name(bench_dist_t d)
{
    return d == BENCH_DIST_ZIPFIAN ? "zipfian" : d == BENCH_DIST_LATEST ? "latest" : "uniform";
}

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

static void print_table(const net_cfg_t *cfg, const net_result_t *r)
{
    printf("memdex-bench net: %s at %s:%d, %s\n", cfg->drv->name, cfg->host, cfg->port,
           cfg->workload->summary);
    printf("  %lld records before (%lld after), %u-byte values, %s keys, %u connections x "
           "pipeline %u, %s",
           (long long)r->records_before, (long long)r->records_after, cfg->value_size,
           dist_name(cfg->dist), cfg->conns, cfg->pipeline,
           cfg->rate > 0 ? "open loop" : "closed loop");
    if (cfg->rate > 0)
        printf(" at %.0f ops/s (%llu sent late)", cfg->rate, (unsigned long long)r->late);
    printf(", %.2f s measured\n\n", r->elapsed_s);
    printf("%-8s %10s %12s %9s %9s %9s %9s %9s %8s\n", "op", "count", "ops/s", "p50 us", "p90 us",
           "p99 us", "p99.9 us", "max us", "errors");
    uint64_t total_failed = 0;
    for (int k = 0; k < BENCH_OP__COUNT; k++) {
        total_failed += r->failed[k];
        if (!r->issued[k])
            continue;
        const bench_hist_t *h = &r->hist[k];
        printf("%-8s %10llu %12.0f %9.1f %9.1f %9.1f %9.1f %9.1f %8llu\n",
               bench_op_name((bench_opkind_t)k), (unsigned long long)r->measured[k],
               r->elapsed_s > 0 ? (double)r->measured[k] / r->elapsed_s : 0,
               us(bench_hist_percentile(h, 50)), us(bench_hist_percentile(h, 90)),
               us(bench_hist_percentile(h, 99)), us(bench_hist_percentile(h, 99.9)), us(h->max),
               (unsigned long long)r->failed[k]);
    }
    const bench_hist_t *h = &r->all;
    printf("%-8s %10llu %12.0f %9.1f %9.1f %9.1f %9.1f %9.1f %8llu\n", "all",
           (unsigned long long)h->n, r->elapsed_s > 0 ? (double)h->n / r->elapsed_s : 0,
           us(bench_hist_percentile(h, 50)), us(bench_hist_percentile(h, 90)),
           us(bench_hist_percentile(h, 99)), us(bench_hist_percentile(h, 99.9)), us(h->max),
           (unsigned long long)total_failed);
}

static void json_hist(const bench_hist_t *h)
{
    printf("\"p50_us\": %.2f, \"p90_us\": %.2f, \"p99_us\": %.2f, \"p999_us\": %.2f, "
           "\"max_us\": %.2f, \"mean_us\": %.2f",
           us(bench_hist_percentile(h, 50)), us(bench_hist_percentile(h, 90)),
           us(bench_hist_percentile(h, 99)), us(bench_hist_percentile(h, 99.9)), us(h->max),
           bench_hist_mean(h) / 1000.0);
}

static void print_json(const net_cfg_t *cfg, const net_result_t *r)
{
    uint64_t issued = 0, ok = 0, failed = 0;
    for (int k = 0; k < BENCH_OP__COUNT; k++) {
        issued += r->issued[k];
        ok += r->ok[k];
        failed += r->failed[k];
    }
    printf("{\"server\": \"%s\", \"addr\": \"%s:%d\", \"workload\": \"%s\", \"dist\": \"%s\", "
           "\"connections\": %u, \"pipeline\": %u, \"mode\": \"%s\", \"rate\": %.0f, "
           "\"value_size\": %u, \"records_before\": %lld, \"records_after\": %lld, "
           "\"elapsed_s\": %.3f, \"issued\": %llu, \"ok\": %llu, \"failed\": %llu, "
           "\"late\": %llu, \"ops_per_sec\": %.1f, ",
           cfg->drv->name, cfg->host, cfg->port, cfg->workload->name, dist_name(cfg->dist),
           cfg->conns, cfg->pipeline, cfg->rate > 0 ? "open" : "closed", cfg->rate, cfg->value_size,
           (long long)r->records_before, (long long)r->records_after, r->elapsed_s,
           (unsigned long long)issued, (unsigned long long)ok, (unsigned long long)failed,
           (unsigned long long)r->late, r->elapsed_s > 0 ? (double)r->all.n / r->elapsed_s : 0);
    json_hist(&r->all);
    printf(", \"ops\": {");
    int first = 1;
    for (int k = 0; k < BENCH_OP__COUNT; k++) {
        if (!r->issued[k])
            continue;
        printf("%s\"%s\": {\"issued\": %llu, \"ok\": %llu, \"failed\": %llu, \"measured\": %llu, "
               "\"ops_per_sec\": %.1f, ",
               first ? "" : ", ", bench_op_name((bench_opkind_t)k),
               (unsigned long long)r->issued[k], (unsigned long long)r->ok[k],
               (unsigned long long)r->failed[k], (unsigned long long)r->measured[k],
               r->elapsed_s > 0 ? (double)r->measured[k] / r->elapsed_s : 0);
        json_hist(&r->hist[k]);
        printf("}");
        first = 0;
    }
    printf("}}\n");
}

int bench_net_main(int argc, char **argv)
{
    net_cfg_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.conns = 50;
    cfg.pipeline = 1;
    cfg.duration_s = 10;
    cfg.records = 1000000;
    cfg.value_size = 100;
    cfg.scan_len = 10;
    cfg.scan_max = 100;
    cfg.seed = 1;
    cfg.workload = bench_workload_find("get");
    const char *server = NULL, *addr = NULL, *dist = NULL;
    int json = 0;
    uint64_t v;

    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(o, "-h") == 0 || strcmp(o, "--help") == 0) {
            usage(stdout);
            return BENCH_EXIT_OK;
        } else if (strcmp(o, "--json") == 0) {
            json = 1;
        } else if (strcmp(o, "--reset") == 0) {
            cfg.reset = 1;
        } else if (strcmp(o, "--server") == 0 && val) {
            server = argv[++i];
        } else if (strcmp(o, "--addr") == 0 && val) {
            addr = argv[++i];
        } else if (strcmp(o, "--dist") == 0 && val) {
            dist = argv[++i];
        } else if (strcmp(o, "--workload") == 0 && val) {
            cfg.workload = bench_workload_find(argv[++i]);
            if (!cfg.workload) {
                fprintf(stderr, "memdex-bench: unknown workload '%s' (one of %s)\n", argv[i],
                        bench_workload_names());
                return BENCH_EXIT_USAGE;
            }
        } else if (strcmp(o, "--duration") == 0) {
            if (parse_seconds(o, val, &cfg.duration_s))
                return BENCH_EXIT_USAGE;
            i++;
        } else if (strcmp(o, "--warmup") == 0) {
            if (parse_seconds(o, val, &cfg.warmup_s))
                return BENCH_EXIT_USAGE;
            i++;
        } else if (strcmp(o, "--connections") == 0) {
            if (bench_parse_u64(o, val, 1, 10000, &v))
                return BENCH_EXIT_USAGE;
            cfg.conns = (uint32_t)v;
            i++;
        } else if (strcmp(o, "--pipeline") == 0) {
            if (bench_parse_u64(o, val, 1, 4096, &v))
                return BENCH_EXIT_USAGE;
            cfg.pipeline = (uint32_t)v;
            i++;
        } else if (strcmp(o, "--ops") == 0) {
            if (bench_parse_u64(o, val, 1, UINT64_MAX / 2, &cfg.ops))
                return BENCH_EXIT_USAGE;
            i++;
        } else if (strcmp(o, "--rate") == 0) {
            if (bench_parse_u64(o, val, 1, 100000000, &v))
                return BENCH_EXIT_USAGE;
            cfg.rate = (double)v;
            i++;
        } else if (strcmp(o, "--records") == 0) {
            if (bench_parse_u64(o, val, 2, 1000000000, &v))
                return BENCH_EXIT_USAGE;
            cfg.records = (int64_t)v;
            i++;
        } else if (strcmp(o, "--value-size") == 0) {
            if (bench_parse_u64(o, val, 1, 1 << 20, &v))
                return BENCH_EXIT_USAGE;
            cfg.value_size = (uint32_t)v;
            i++;
        } else if (strcmp(o, "--scan-length") == 0) {
            if (bench_parse_u64(o, val, 1, NET_MAX_SCAN, &v))
                return BENCH_EXIT_USAGE;
            cfg.scan_len = (uint32_t)v;
            i++;
        } else if (strcmp(o, "--scan-max") == 0) {
            if (bench_parse_u64(o, val, 1, NET_MAX_SCAN, &v))
                return BENCH_EXIT_USAGE;
            cfg.scan_max = (uint32_t)v;
            i++;
        } else if (strcmp(o, "--expected-ops") == 0) {
            if (bench_parse_u64(o, val, 0, UINT64_MAX / 4, &cfg.expected_ops))
                return BENCH_EXIT_USAGE;
            i++;
        } else if (strcmp(o, "--seed") == 0) {
            if (bench_parse_u64(o, val, 0, UINT64_MAX, &cfg.seed))
                return BENCH_EXIT_USAGE;
            i++;
        } else {
            fprintf(stderr, "memdex-bench: net: unknown option or missing value '%s'\n", o);
            return BENCH_EXIT_USAGE;
        }
    }
    if (!server) {
        fprintf(stderr, "memdex-bench: net needs --server (memdex, redis or tarantool)\n");
        return BENCH_EXIT_USAGE;
    }
    if (strcmp(server, "memdex") == 0)
        cfg.drv = &net_drv_memdex;
    else if (strcmp(server, "redis") == 0)
        cfg.drv = &net_drv_redis;
    else if (strcmp(server, "tarantool") == 0)
        cfg.drv = &net_drv_tarantool;
    else {
        fprintf(stderr, "memdex-bench: unknown server '%s'\n", server);
        return BENCH_EXIT_USAGE;
    }
    cfg.dist = cfg.workload->dist;
    if (dist) {
        if (strcmp(dist, "uniform") == 0)
            cfg.dist = BENCH_DIST_UNIFORM;
        else if (strcmp(dist, "zipfian") == 0)
            cfg.dist = BENCH_DIST_ZIPFIAN;
        else if (strcmp(dist, "latest") == 0)
            cfg.dist = BENCH_DIST_LATEST;
        else {
            fprintf(stderr, "memdex-bench: unknown distribution '%s'\n", dist);
            return BENCH_EXIT_USAGE;
        }
    }
    char host[256];
    snprintf(host, sizeof(host), "127.0.0.1");
    cfg.port = cfg.drv->default_port;
    if (addr) {
        const char *colon = strrchr(addr, ':');
        if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof(host)) {
            fprintf(stderr, "memdex-bench: --addr: '%s' is not HOST:PORT\n", addr);
            return BENCH_EXIT_USAGE;
        }
        if (bench_parse_u64("--addr port", colon + 1, 1, 65535, &v))
            return BENCH_EXIT_USAGE;
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = '\0';
        if (host[0] == '[' && host[strlen(host) - 1] == ']') {
            memmove(host, host + 1, strlen(host));
            host[strlen(host) - 1] = '\0';
        }
        cfg.port = (int)v;
    }
    cfg.host = host;
    if (!cfg.expected_ops)
        cfg.expected_ops = cfg.ops;

    net_result_t r;
    if (net_result_init(&r)) {
        fprintf(stderr, "memdex-bench: out of memory\n");
        return BENCH_EXIT_FAIL;
    }
    char err[512] = "";
    int rc = net_run(&cfg, &r, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "memdex-bench: net: %s\n", err);
        net_result_fini(&r);
        return BENCH_EXIT_FAIL;
    }
    if (json)
        print_json(&cfg, &r);
    else
        print_table(&cfg, &r);
    uint64_t failed = 0;
    for (int k = 0; k < BENCH_OP__COUNT; k++)
        failed += r.failed[k];
    if (failed)
        fprintf(stderr, "memdex-bench: net: %llu operations failed\n", (unsigned long long)failed);
    net_result_fini(&r);
    return failed ? BENCH_EXIT_FAIL : BENCH_EXIT_OK;
}
