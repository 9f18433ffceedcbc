/*
 * bench_hist: a log-linear latency histogram (the HdrHistogram layout, fixed precision).
 *
 * Values below 2^7 have a bucket each (exact). Above, every power of two [2^k, 2^(k+1)) is cut
 * into 128 equal buckets, so a bucket is at most 1/128 of its lower bound wide and the bucket's
 * midpoint, which is what a percentile reports, is within 1/256 (0.4%) of any value in it: the
 * "at most 1% relative error" the benchmarks promise, with room to spare. The whole uint64
 * range fits in 7,424 buckets (58 KiB); recording is a clz, a shift and an increment.
 * min, max and the sum are kept exactly.
 */
#ifndef MDX_BENCH_HIST_H
#define MDX_BENCH_HIST_H

#include <stddef.h>
#include <stdint.h>

#define BENCH_HIST_SUB_BITS 7
#define BENCH_HIST_SUB      (1u << BENCH_HIST_SUB_BITS)
#define BENCH_HIST_BUCKETS  ((64 - BENCH_HIST_SUB_BITS + 1) * BENCH_HIST_SUB)

typedef struct {
    uint64_t *counts; /* BENCH_HIST_BUCKETS */
    uint64_t n;
    uint64_t min, max;
    double sum;
} bench_hist_t;

/** Returns 0, or -1 when out of memory. */
int bench_hist_init(bench_hist_t *h);
/** Frees the buckets; h may have failed init (counts NULL). */
void bench_hist_fini(bench_hist_t *h);
void bench_hist_reset(bench_hist_t *h);

/** Bucket index of v; exposed for the tests. */
static inline size_t bench_hist_index(uint64_t v)
{
    if (v < BENCH_HIST_SUB)
        return (size_t)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - BENCH_HIST_SUB_BITS;
    return (size_t)(shift + 1) * BENCH_HIST_SUB + (size_t)((v >> shift) - BENCH_HIST_SUB);
}

static inline void bench_hist_record(bench_hist_t *h, uint64_t v)
{
    h->counts[bench_hist_index(v)]++;
    if (h->n == 0 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->n++;
    h->sum += (double)v;
}

/** Adds every count of src to dst. */
void bench_hist_merge(bench_hist_t *dst, const bench_hist_t *src);

/** The value at percentile p (0 < p <= 100): the midpoint of the bucket holding the
 *  ceil(p/100 * n)-th smallest value, clamped to [min, max]. 0 for an empty histogram. */
uint64_t bench_hist_percentile(const bench_hist_t *h, double p);

/** Mean of the recorded values (exact); 0 when empty. */
double bench_hist_mean(const bench_hist_t *h);

#endif
