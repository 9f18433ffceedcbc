/*
 * The log-linear histogram (see hist.h for the layout and its error bound).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench/hist.h"

int bench_hist_init(bench_hist_t *h)
{
    memset(h, 0, sizeof(*h));
    h->counts = calloc(BENCH_HIST_BUCKETS, sizeof(*h->counts));
    return h->counts ? 0 : -1;
}

void bench_hist_fini(bench_hist_t *h)
{
    free(h->counts);
    h->counts = NULL;
}

void bench_hist_reset(bench_hist_t *h)
{
    memset(h->counts, 0, BENCH_HIST_BUCKETS * sizeof(*h->counts));
    h->n = h->min = h->max = 0;
    h->sum = 0;
}

void bench_hist_merge(bench_hist_t *dst, const bench_hist_t *src)
{
    if (src->n == 0)
        return;
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    if (dst->n == 0 || src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    dst->n += src->n;
    dst->sum += src->sum;
}

/* Lowest value and width of bucket i (the inverse of bench_hist_index). */
static void bucket_range(size_t i, uint64_t *lo, uint64_t *width)
{
    if (i < BENCH_HIST_SUB) {
        *lo = i;
        *width = 1;
        return;
    }
    unsigned shift = (unsigned)(i / BENCH_HIST_SUB) - 1;
    uint64_t sub = i % BENCH_HIST_SUB;
    *lo = (BENCH_HIST_SUB + sub) << shift;
    *width = (uint64_t)1 << shift;
}

uint64_t bench_hist_percentile(const bench_hist_t *h, double p)
{
    if (h->n == 0)
        return 0;
    double r = ceil(p / 100.0 * (double)h->n);
    uint64_t rank = r < 1 ? 1 : (r > (double)h->n ? h->n : (uint64_t)r);
    uint64_t seen = 0;
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t lo, width;
            bucket_range(i, &lo, &width);
            uint64_t mid = lo + width / 2;
            if (mid < h->min)
                mid = h->min;
            if (mid > h->max)
                mid = h->max;
            return mid;
        }
    }
    return h->max;
}

double bench_hist_mean(const bench_hist_t *h)
{
    return h->n ? h->sum / (double)h->n : 0;
}
