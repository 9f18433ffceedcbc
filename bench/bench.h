/*
 * memdex-bench: shared pieces of the benchmark drivers (clock, PRNG, option parsing, medians).
 *
 * Every driver is a subcommand `memdex-bench <name> [options]` with its own main-like entry
 * point. Drivers print a readable table, or one JSON object on stdout with --json, and return
 * 0 on success, 2 on a usage error and 1 when the benchmark itself failed (a store error or a
 * wrong result: a benchmark that measures wrong answers measures nothing).
 */
#ifndef MDX_BENCH_H
#define MDX_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define BENCH_EXIT_OK    0
#define BENCH_EXIT_FAIL  1
#define BENCH_EXIT_USAGE 2

/** Monotonic nanoseconds (CLOCK_MONOTONIC). */
static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/** xoshiro256** seeded through splitmix64: fast, fixed-seed, reproducible across runs. */
typedef struct {
    uint64_t s[4];
} bench_rng_t;

void bench_rng_seed(bench_rng_t *r, uint64_t seed);

static inline uint64_t bench_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t bench_rng_next(bench_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t out = bench_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = bench_rotl(s[3], 45);
    return out;
}

/** Uniform in [0, n) (n > 0). The modulo bias is below n / 2^64: nothing for our n. */
static inline uint64_t bench_rng_below(bench_rng_t *r, uint64_t n)
{
    return bench_rng_next(r) % n;
}

/** Uniform double in [0, 1). */
static inline double bench_rng_unit(bench_rng_t *r)
{
    return (double)(bench_rng_next(r) >> 11) * 0x1p-53;
}

/** Parses a decimal unsigned integer in [min, max] (the whole string, no sign, no spaces).
 *  Returns 0, or -1 after printing an error that names the option. */
int bench_parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out);

/** Median of n values (n > 0); sorts v in place. */
double bench_median(double *v, size_t n);

/** Subcommands. argv[0] is the subcommand name. */
int bench_embedded_main(int argc, char **argv);
int bench_net_main(int argc, char **argv);
int bench_snapshot_main(int argc, char **argv);
int bench_cache_main(int argc, char **argv);
int bench_reclaim_main(int argc, char **argv);

#endif
