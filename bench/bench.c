/*
 * memdex-bench: entry point and subcommand dispatch, plus the helpers the drivers share.
 *
 * Drivers: `embedded` (micro-benchmarks of the engine linked in-process, embedded.c), `net`
 * (memdexd, Redis and Tarantool over the network, net.c), `snapshot` (snapshot.c) and `cache`
 * (hit ratios of the cache tier and of Redis, cache.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "common/jemalloc_conf.h"

int bench_parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!s) {
        fprintf(stderr, "memdex-bench: %s needs a value\n", opt);
        return -1;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno == ERANGE) {
        fprintf(stderr, "memdex-bench: %s: '%s' is not a decimal number\n", opt, s);
        return -1;
    }
    if (v < min || v > max) {
        fprintf(stderr, "memdex-bench: %s: %llu is out of range (%llu to %llu)\n", opt, v,
                (unsigned long long)min, (unsigned long long)max);
        return -1;
    }
    *out = v;
    return 0;
}

static void usage(FILE *f)
{
    fputs("usage: memdex-bench <command> [options]\n"
          "\n"
          "commands:\n"
          "  embedded   micro-benchmarks of the engine linked in-process\n"
          "             (memdex-bench embedded --help for its options)\n"
          "  net        load generator for memdexd, Redis and Tarantool over the network\n"
          "             (memdex-bench net --help for its options)\n"
          "  snapshot   snapshot costs: engine save/load, memdexd latency and memory during\n"
          "             snapshots, Redis BGSAVE (memdex-bench snapshot --help)\n"
          "  cache      hit ratios of the eviction policies and of Redis's on YCSB C keys\n"
          "             (memdex-bench cache --help)\n"
          "  reclaim    memdexd GET latency while a mass of records expires or is invalidated\n"
          "             (memdex-bench reclaim --help)\n"
          "\n"
          "options:\n"
          "  -h, --help print this help\n",
          f);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return BENCH_EXIT_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return BENCH_EXIT_OK;
    }
    if (strcmp(argv[1], "embedded") == 0)
        return bench_embedded_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "net") == 0)
        return bench_net_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "snapshot") == 0)
        return bench_snapshot_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "cache") == 0)
        return bench_cache_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "reclaim") == 0)
        return bench_reclaim_main(argc - 1, argv + 1);
    fprintf(stderr, "memdex-bench: unknown command '%s' (try memdex-bench --help)\n", argv[1]);
    return BENCH_EXIT_USAGE;
}
