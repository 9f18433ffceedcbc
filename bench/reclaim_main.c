/*
 * memdex-bench reclaim: options, the memdexd it starts, and the output (a table, or one JSON
 * object with --json) of the benchmark in reclaim.c. Every figure of a window is the median
 * over the rounds; the p99 ratio is the median of each round's p99 during reclaim over the
 * p99 of that round's two windows without reclaim, merged.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/reclaim.h"

#define MAX_ROUNDS 32

typedef struct {
    reclaim_cfg_t cfg;
    uint64_t slice_us; /* memdexd --reclaim-slice-us; 0: the server's default */
    int server_cpu, bench_cpu;
    const char *memdexd, *dir;
    int json, keep;
} opts_t;

/* Medians over the rounds of one window (or of the baseline, w < 0). */
typedef struct {
    double ops_s, p50, p99, p999, max, over5;
} wsum_t;

static double med(double *v, uint64_t n)
{
    return n ? bench_median(v, (size_t)n) : 0;
}

static void sum_window(const reclaim_case_t *cs, uint64_t n, int w, wsum_t *s)
{
    double v[6][MAX_ROUNDS];
    for (uint64_t i = 0; i < n; i++) {
        bench_window_t base, *x = (bench_window_t *)&cs[i].w[w < 0 ? 0 : w];
        if (w < 0) {
            if (reclaim_baseline(&cs[i], &base))
                return;
            x = &base;
        }
        v[0][i] = x->elapsed > 0 ? (double)x->ops / x->elapsed : 0;
        v[1][i] = (double)bench_hist_percentile(&x->get, 50) / 1e6;
        v[2][i] = (double)bench_hist_percentile(&x->get, 99) / 1e6;
        v[3][i] = (double)bench_hist_percentile(&x->get, 99.9) / 1e6;
        v[4][i] = (double)x->get.max / 1e6;
        v[5][i] = (double)x->stalls;
        if (w < 0)
            bench_window_fini(&base);
    }
    double *out[6] = {&s->ops_s, &s->p50, &s->p99, &s->p999, &s->max, &s->over5};
    for (int k = 0; k < 6; k++)
        *out[k] = med(v[k], n);
}

/* Per round: p99 during / p99 baseline, and the case's scalar figures. */
typedef struct {
    double ratio, reclaim_ms, first_ms, call_ms, load_s;
    double ratio_r[MAX_ROUNDS], reclaim_r[MAX_ROUNDS], max_r[MAX_ROUNDS];
    uint64_t removed;
} csum_t;

static void sum_case(const reclaim_case_t *cs, uint64_t n, csum_t *s)
{
    double v[5][MAX_ROUNDS];
    memset(s, 0, sizeof(*s));
    for (uint64_t i = 0; i < n; i++) {
        bench_window_t base;
        double b99 = 0;
        if (reclaim_baseline(&cs[i], &base) == 0)
            b99 = (double)bench_hist_percentile(&base.get, 99);
        bench_window_fini(&base);
        double d99 = (double)bench_hist_percentile(&cs[i].w[RECLAIM_DURING].get, 99);
        s->ratio_r[i] = v[0][i] = b99 > 0 ? d99 / b99 : 0;
        s->reclaim_r[i] = v[1][i] = cs[i].reclaim_ms;
        s->max_r[i] = (double)cs[i].w[RECLAIM_DURING].get.max / 1e6;
        v[2][i] = cs[i].first_ms;
        v[3][i] = cs[i].call_ms;
        v[4][i] = cs[i].load_s;
        s->removed = cs[i].removed;
    }
    double *out[5] = {&s->ratio, &s->reclaim_ms, &s->first_ms, &s->call_ms, &s->load_s};
    for (int k = 0; k < 5; k++)
        *out[k] = med(v[k], n);
}

static const char *const WNAME[RECLAIM__WINDOWS] = {"before", "reclaim", "after"};

static void print_case(const char *name, const reclaim_case_t *cs, uint64_t n, int inv)
{
    wsum_t ws;
    csum_t c;
    sum_case(cs, n, &c);
    for (int w = -1; w < RECLAIM__WINDOWS; w++) {
        sum_window(cs, n, w, &ws);
        printf("%-11s %-9s %8.0f %7.3f %7.3f %7.3f %7.3f %6.0f\n", w < 0 ? name : "",
               w < 0 ? "baseline" : WNAME[w], ws.ops_s, ws.p50, ws.p99, ws.p999, ws.max, ws.over5);
    }
    printf("  p99 reclaim/baseline %.2f (rounds:", c.ratio);
    for (uint64_t i = 0; i < n; i++)
        printf(" %.2f", c.ratio_r[i]);
    printf("); max during reclaim (rounds:");
    for (uint64_t i = 0; i < n; i++)
        printf(" %.1f", c.max_r[i]);
    printf(" ms)\n  reclaim took %.0f ms (rounds:", c.reclaim_ms);
    for (uint64_t i = 0; i < n; i++)
        printf(" %.0f", c.reclaim_r[i]);
    if (inv)
        printf(") after the reply; invalidate call %.3f ms, removed %llu", c.call_ms,
               (unsigned long long)c.removed);
    else
        printf(") from the expiry time, first record freed after %.0f ms; expired %llu", c.first_ms,
               (unsigned long long)c.removed);
    printf("; loading them %.1f s\n  memdexd's longest reclaim run (rounds:", c.load_s);
    for (uint64_t i = 0; i < n; i++)
        printf(" %.2f", (double)cs[i].max_run_us / 1000);
    printf(" ms), its most CPU time in one run (rounds:");
    for (uint64_t i = 0; i < n; i++)
        printf(" %.2f", (double)cs[i].max_cpu_us / 1000);
    printf(" ms)\n  memdexd's RSS once reclaimed (rounds:");
    for (uint64_t i = 0; i < n; i++)
        printf(" %.0f", cs[i].rss_kb / 1024.0);
    printf(" MiB)\n");
}

static void json_case(const char *name, const reclaim_case_t *cs, uint64_t n)
{
    wsum_t ws;
    csum_t c;
    sum_case(cs, n, &c);
    printf(", \"%s\": {", name);
    for (int w = -1; w < RECLAIM__WINDOWS; w++) {
        sum_window(cs, n, w, &ws);
        printf("\"%s\": {\"get_per_s\": %.0f, \"p50_ms\": %.4f, \"p99_ms\": %.4f, \"p999_ms\": "
               "%.4f, \"max_ms\": %.4f, \"over_5ms\": %.0f}, ",
               w < 0 ? "baseline" : WNAME[w], ws.ops_s, ws.p50, ws.p99, ws.p999, ws.max, ws.over5);
    }
    printf("\"p99_ratio\": %.3f, \"reclaim_ms\": %.1f, \"first_ms\": %.1f, \"call_ms\": %.4f, "
           "\"removed\": %llu, \"load_s\": %.2f, \"rounds\": [",
           c.ratio, c.reclaim_ms, c.first_ms, c.call_ms, (unsigned long long)c.removed, c.load_s);
    for (uint64_t i = 0; i < n; i++) {
        const bench_window_t *d = &cs[i].w[RECLAIM_DURING];
        printf("%s{\"p99_ratio\": %.3f, \"reclaim_ms\": %.1f, \"during_p99_ms\": %.4f, "
               "\"during_max_ms\": %.4f, \"during_over_5ms\": %llu, \"during_gets\": %llu, "
               "\"max_run_us\": %llu, \"max_cpu_us\": %llu, \"rss_kb\": %ld}",
               i ? ", " : "", c.ratio_r[i], c.reclaim_r[i],
               (double)bench_hist_percentile(&d->get, 99) / 1e6, c.max_r[i],
               (unsigned long long)d->stalls, (unsigned long long)d->ops,
               (unsigned long long)cs[i].max_run_us, (unsigned long long)cs[i].max_cpu_us,
               cs[i].rss_kb);
    }
    printf("]}");
}

static void usage(FILE *f)
{
    fputs("usage: memdex-bench reclaim [options]\n"
          "\n"
          "GET latency in memdexd while it frees a mass of records: records that all expire at\n"
          "once, and records of one invalidated tag. Windows before, during and after reclaim.\n"
          "\n"
          "  --hot N            records the GETs read, never expiring [100000]\n"
          "  --doomed N         records that expire, or are invalidated, per case [1000000]\n"
          "  --value-size B     bytes of the \"v\" field (the body is about B + 20) [80]\n"
          "  --connections N    closed-loop GET connections, one request in flight each [50]\n"
          "  --rounds N         rounds of each case, medians reported [3]\n"
          "  --baseline S       seconds of each window without reclaim [2]\n"
          "  --warmup S         seconds of GETs not counted before the first window [0.5]\n"
          "  --margin S         expiry: spare seconds planned after the load [1]\n"
          "  --cases LIST       expiry,invalidate (either or both) [both]\n"
          "  --slice-us N       memdexd --reclaim-slice-us [the server's default]\n"
          "  --server-cpu N     pin memdexd to CPU N [not pinned]\n"
          "  --bench-cpu N      pin memdex-bench to CPU N [not pinned]\n"
          "  --memdexd PATH     the server [memdexd next to memdex-bench]\n"
          "  --dir DIR          where the server's work directory goes [/tmp]\n"
          "  --keep             keep the work directory (the server's log)\n"
          "  --json             one JSON object on stdout\n",
          f);
}

static int parse_secs(const char *a, const char *v, double *out)
{
    char *end = NULL;
    double d = v ? strtod(v, &end) : 0;
    if (!v || *end || !(d >= 0) || d > 3600) {
        fprintf(stderr, "memdex-bench: reclaim: bad %s '%s'\n", a, v ? v : "");
        return -1;
    }
    *out = d;
    return 0;
}

static int parse_args(int argc, char **argv, opts_t *o)
{
    reclaim_cfg_t d = {100000, 1000000, 80,  50,    3,
                       2.0,    0.5,     1.0, 120.0, RECLAIM_EXPIRY | RECLAIM_INVALIDATE,
                       0,      0};
    memset(o, 0, sizeof(*o));
    o->cfg = d;
    o->server_cpu = o->bench_cpu = -1;
    o->dir = "/tmp";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t u;
        struct {
            const char *name;
            uint64_t min, max, *dst;
        } nums[] = {{"--hot", 1, 100000000, &o->cfg.hot},
                    {"--doomed", 1, 100000000, &o->cfg.doomed},
                    {"--value-size", 1, 1 << 20, &o->cfg.value_size},
                    {"--connections", 1, 1000, &o->cfg.conns},
                    {"--rounds", 1, MAX_ROUNDS, &o->cfg.rounds},
                    {"--slice-us", 10, 1000000, &o->slice_us}};
        size_t k = 0;
        for (; k < sizeof(nums) / sizeof(nums[0]) && strcmp(a, nums[k].name); k++)
            ;
        if (k < sizeof(nums) / sizeof(nums[0])) {
            if (bench_parse_u64(a, v, nums[k].min, nums[k].max, nums[k].dst))
                return BENCH_EXIT_USAGE;
            i++;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return -1;
        } else if (strcmp(a, "--baseline") == 0 || strcmp(a, "--warmup") == 0 ||
                   strcmp(a, "--margin") == 0) {
            double *dst = a[2] == 'b'   ? &o->cfg.baseline_s
                          : a[2] == 'w' ? &o->cfg.warmup_s
                                        : &o->cfg.margin_s;
            if (parse_secs(a, v, dst))
                return BENCH_EXIT_USAGE;
            i++;
        } else if (strcmp(a, "--server-cpu") == 0 || strcmp(a, "--bench-cpu") == 0) {
            if (bench_parse_u64(a, v, 0, 1023, &u))
                return BENCH_EXIT_USAGE;
            *(a[2] == 's' ? &o->server_cpu : &o->bench_cpu) = (int)u;
            i++;
        } else if (strcmp(a, "--cases") == 0 && v) {
            o->cfg.cases = (strstr(v, "expiry") ? RECLAIM_EXPIRY : 0) |
                           (strstr(v, "invalidate") ? RECLAIM_INVALIDATE : 0);
            if (!o->cfg.cases) {
                fprintf(stderr, "memdex-bench: reclaim: --cases: expiry, invalidate or both\n");
                return BENCH_EXIT_USAGE;
            }
            i++;
        } else if (strcmp(a, "--memdexd") == 0 && v) {
            o->memdexd = argv[++i];
        } else if (strcmp(a, "--dir") == 0 && v) {
            o->dir = argv[++i];
        } else if (strcmp(a, "--keep") == 0) {
            o->keep = 1;
        } else if (strcmp(a, "--json") == 0) {
            o->json = 1;
        } else {
            fprintf(stderr, "memdex-bench: reclaim: unknown option or missing value '%s'\n", a);
            return BENCH_EXIT_USAGE;
        }
    }
    return 0;
}

int bench_reclaim_main(int argc, char **argv)
{
    opts_t o;
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc < 0 ? BENCH_EXIT_OK : rc;
    signal(SIGPIPE, SIG_IGN);
    if (bench_pin_cpu(o.bench_cpu))
        fprintf(stderr, "memdex-bench: reclaim: cannot pin to CPU %d: %s\n", o.bench_cpu,
                strerror(errno));

    char work[1024], data[1100], log[1100], path[1100], listen[32], slice[24];
    snprintf(work, sizeof(work), "%s/mdx-reclaimbench-XXXXXX", o.dir);
    if (!mkdtemp(work)) {
        fprintf(stderr, "memdex-bench: reclaim: cannot create a directory in %s: %s\n", o.dir,
                strerror(errno));
        return BENCH_EXIT_FAIL;
    }
    snprintf(data, sizeof(data), "%s/data", work);
    snprintf(log, sizeof(log), "%s/memdexd.log", work);
    mkdir(data, 0755);
    bench_sibling_path("memdexd", path, sizeof(path));
    int port = bench_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    snprintf(slice, sizeof(slice), "%llu", (unsigned long long)o.slice_us);
    const char *const argv_m[] = {o.memdexd ? o.memdexd : path,
                                  "--listen",
                                  listen,
                                  "--data-dir",
                                  data,
                                  "--snapshot-rules",
                                  "off",
                                  "--snapshot-on-shutdown",
                                  "no",
                                  o.slice_us ? "--reclaim-slice-us" : NULL,
                                  slice,
                                  NULL};
    fprintf(stderr, "memdexd (%s)...\n", argv_m[0]);
    pid_t pid = bench_spawn(argv_m, log, port, o.server_cpu);
    reclaim_res_t r;
    char err[512] = "";
    rc = BENCH_EXIT_FAIL;
    if (pid > 0) {
        fprintf(stderr, "memdexd pid %d\n", (int)pid);
        o.cfg.server_pid = (int)pid;
        rc = reclaim_run(&o.cfg, port, &r, err, sizeof(err)) ? BENCH_EXIT_FAIL : BENCH_EXIT_OK;
        if (rc)
            fprintf(stderr, "memdex-bench: reclaim: %s\n", err);
        long rss = bench_proc_kb(pid, "status", "VmHWM:");
        bench_stop(pid);
        uint64_t n = r.rounds_done;
        const reclaim_cfg_t *c = &o.cfg;
        if (o.json) {
            printf("{\"hot\": %llu, \"doomed\": %llu, \"value_size\": %llu, \"connections\": "
                   "%llu, \"rounds\": %llu, \"baseline_s\": %.1f, \"reclaim_slice_us\": %llu, "
                   "\"hot_load_s\": %.2f, \"peak_rss_kb\": %ld, \"ok\": %s",
                   (unsigned long long)c->hot, (unsigned long long)c->doomed,
                   (unsigned long long)c->value_size, (unsigned long long)c->conns,
                   (unsigned long long)n, c->baseline_s, (unsigned long long)o.slice_us,
                   r.hot_load_s, rss, rc ? "false" : "true");
            if (r.exp && n)
                json_case("expiry", r.exp, n);
            if (r.inv && n)
                json_case("invalidate", r.inv, n);
            printf("}\n");
        } else {
            printf("memdexd reclaim: %llu hot records read by %llu connections, %llu records "
                   "reclaimed per case, body about %llu bytes, skiplist index; reclaim_slice_us "
                   "%s; medians of %llu rounds; peak RSS %.0f MiB\n",
                   (unsigned long long)c->hot, (unsigned long long)c->conns,
                   (unsigned long long)c->doomed, (unsigned long long)c->value_size + 20,
                   o.slice_us ? slice : "default", (unsigned long long)n, rss / 1024.0);
            printf("%-11s %-9s %8s %7s %7s %7s %7s %6s\n", "case", "window", "GET/s", "p50", "p99",
                   "p99.9", "max ms", ">5ms");
            if (r.exp && n)
                print_case("expiry", r.exp, n, 0);
            if (r.inv && n)
                print_case("invalidate", r.inv, n, 1);
        }
        reclaim_res_fini(&o.cfg, &r);
    }
    if (o.keep) {
        fprintf(stderr, "work directory kept: %s\n", work);
        return rc;
    }
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", work);
    if (system(cmd) != 0)
        fprintf(stderr, "memdex-bench: reclaim: could not remove %s\n", work);
    return rc;
}
