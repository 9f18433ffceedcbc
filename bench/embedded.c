/*
 * `memdex-bench embedded`: micro-benchmarks of the engine linked in-process.
 *
 * Loads N records (integer keys 0..N-1, 100-byte msgpack map bodies) into one collection with a
 * hash index on "city" (1000 distinct values) and a skiplist index on "score" (a double, uniform
 * over a wide range), then runs R rounds; each round times one batch per operation and the
 * report gives the median over rounds of the nanoseconds per operation.
 *
 * What is and is not measured: keys, bodies and query bounds are generated and encoded before a
 * batch starts, so the batch times only the memdex calls (and a callback that reads each
 * result). Memory per record is the allocator's own count (jemalloc stats.allocated in release
 * builds) just before and just after the load, when nothing but the store allocates; the
 * benchmark's own arrays exist before the first reading and are not counted.
 *
 * Every result is checked once before timing (gets against the loaded bodies, range queries
 * against a full scan, counts against a sorted copy of the scores), and every timed range query
 * must return its 10 records: wrong answers fail the run instead of producing fast numbers.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "common/mp.h"
#include "memdex/store.h"

#define BODY_LEN     100
#define NCITIES      1000
#define SCORE_MAX    1e6
#define RANGE_LIMIT  10
#define RANGE_EXPECT 40      /* matches a range10 query expects: P(fewer than 10) is about 1e-9 */
#define SCAN_BUDGET  5000000 /* records scanned per round: the scan batch size is this / N */
#define CHECKS       200

#define COLL     "bench"
#define IX_CITY  "by_city"
#define IX_SCORE "by_score"

/* Targets at N = 1,000,000: reported, never enforced (timings on shared machines are noisy). */
#define TARGET_GET_NS     150.0
#define TARGET_PUT_NS     1500.0
#define TARGET_RANGE10_NS 1500.0
#define TARGET_COUNT_NS   1000.0
#define TARGET_SPEEDUP    1000.0
#define TARGET_BYTES      150.0

typedef struct {
    uint8_t len;
    uint8_t b[15];
} enc_key_t;

typedef struct {
    uint8_t lo[9], hi[9];
    double lo_d, hi_d;
} bounds_t;

typedef struct {
    uint64_t records, rounds, ops, seed;
    int json;
} opts_t;

/* ---- data generation ---- */

static void enc_f64(uint8_t out[9], double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    out[0] = 0xcb;
    for (int i = 0; i < 8; i++)
        out[1 + i] = (uint8_t)(u >> (56 - 8 * i));
}

static uint8_t *put_str(uint8_t *p, const char *s, size_t len)
{
    *p++ = (uint8_t)(0xa0 | len); /* fixstr: every string here is under 32 bytes */
    memcpy(p, s, len);
    return p + len;
}

/* {"name": "user-NNNNNNN", "age": 0..99, "city": "city-NNNN", "score": float64,
 *  "pad": 40 random letters}: exactly BODY_LEN bytes. */
static void make_body(uint8_t out[BODY_LEN], uint64_t id, bench_rng_t *r, double *score)
{
    char tmp[16];
    uint8_t *p = out;
    *p++ = 0x85;
    p = put_str(p, "name", 4);
    snprintf(tmp, sizeof tmp, "user-%07" PRIu64, id % 10000000);
    p = put_str(p, tmp, 12);
    p = put_str(p, "age", 3);
    *p++ = (uint8_t)bench_rng_below(r, 100); /* positive fixint */
    p = put_str(p, "city", 4);
    snprintf(tmp, sizeof tmp, "city-%04u", (unsigned)bench_rng_below(r, NCITIES));
    p = put_str(p, tmp, 9);
    p = put_str(p, "score", 5);
    *score = bench_rng_unit(r) * SCORE_MAX;
    enc_f64(p, *score);
    p += 9;
    p = put_str(p, "pad", 3);
    *p++ = 0xd9; /* str8 */
    *p++ = 40;
    for (int i = 0; i < 40; i++)
        *p++ = (uint8_t)('a' + bench_rng_below(r, 26));
    if (p != out + BODY_LEN) {
        fprintf(stderr, "memdex-bench: body layout is %td bytes, not %d\n", p - out, BODY_LEN);
        abort();
    }
}

static void make_key(enc_key_t *k, uint64_t id)
{
    k->len = (uint8_t)mdx_key_int(k->b, (int64_t)id);
}

static void make_bounds(bounds_t *b, double lo, double hi)
{
    b->lo_d = lo;
    b->hi_d = hi;
    enc_f64(b->lo, lo);
    enc_f64(b->hi, hi);
}

/* A range expected to hold RANGE_EXPECT records, so a limit of 10 fills. */
static void make_range10(bounds_t *b, bench_rng_t *r, uint64_t n)
{
    double w = SCORE_MAX * RANGE_EXPECT / (double)n;
    if (w > SCORE_MAX)
        w = SCORE_MAX;
    double lo = bench_rng_unit(r) * (SCORE_MAX - w);
    make_bounds(b, lo, lo + w);
}

static void make_count_range(bounds_t *b, bench_rng_t *r)
{
    double x = bench_rng_unit(r) * SCORE_MAX, y = bench_rng_unit(r) * SCORE_MAX;
    make_bounds(b, x < y ? x : y, x < y ? y : x);
}

static void query_init(mdx_query_t *q, const char *index, const bounds_t *b, uint32_t limit)
{
    memset(q, 0, sizeof(*q));
    q->index = index;
    q->lo = b->lo;
    q->lo_len = 9;
    q->lo_kind = MDX_BOUND_INCL;
    q->hi = b->hi;
    q->hi_len = 9;
    q->hi_kind = MDX_BOUND_INCL;
    q->limit = limit;
}

/* ---- callbacks ---- */

typedef struct {
    uint64_t n;
    uint64_t sum; /* reads a byte of each result, as a user would */
} touch_t;

static int touch_cb(void *data, const mdx_rec_view_t *rec)
{
    touch_t *t = data;
    t->n++;
    t->sum += rec->body[rec->body_len - 1];
    return 0;
}

static int64_t key_id(const mdx_rec_view_t *rec)
{
    const uint8_t *p = rec->key;
    mdx_mp_tok_t t;
    if (mdx_mp_read(&p, rec->key + rec->key_len, &t) || t.type != MDX_MP_INT)
        return -1;
    return t.v.i;
}

typedef struct {
    double score;
    int64_t key;
} hit_t;

/* The first RANGE_LIMIT records of [lo, hi] in (score, key) order. */
typedef struct {
    double lo, hi;
    uint64_t matches, n;
    int bad; /* a record without a float score */
    hit_t top[RANGE_LIMIT];
} scan_acc_t;

static int hit_less(const hit_t *a, const hit_t *b)
{
    return a->score < b->score || (a->score == b->score && a->key < b->key);
}

static int scan_cb(void *data, const mdx_rec_view_t *rec)
{
    scan_acc_t *a = data;
    mdx_mp_tok_t t;
    if (!mdx_mp_map_find(rec->body, rec->body_len, "score", 5, &t, NULL, NULL) ||
        t.type != MDX_MP_FLOAT) {
        a->bad = 1;
        return 0;
    }
    if (t.v.f < a->lo || t.v.f > a->hi)
        return 0;
    a->matches++;
    hit_t h = {t.v.f, key_id(rec)};
    if (a->n == RANGE_LIMIT && !hit_less(&h, &a->top[RANGE_LIMIT - 1]))
        return 0;
    uint64_t i = a->n < RANGE_LIMIT ? a->n++ : RANGE_LIMIT - 1;
    while (i > 0 && hit_less(&h, &a->top[i - 1])) {
        a->top[i] = a->top[i - 1];
        i--;
    }
    a->top[i] = h;
    return 0;
}

typedef struct {
    uint64_t n;
    int64_t keys[RANGE_LIMIT];
} collect_t;

static int collect_cb(void *data, const mdx_rec_view_t *rec)
{
    collect_t *c = data;
    if (c->n < RANGE_LIMIT)
        c->keys[c->n] = key_id(rec);
    c->n++;
    return 0;
}

/* ---- the store ---- */

typedef struct {
    mdx_store_t *st;
    mdx_coll_t *c;
} env_t;

static int fail(env_t *e, const char *what, int rc)
{
    fprintf(stderr, "memdex-bench: %s failed: %s: %s\n", what, mdx_err_name(rc),
            e->st ? mdx_store_errmsg(e->st) : mdx_strerror(rc));
    return BENCH_EXIT_FAIL;
}

/* A full-scan answer to the range query: every record is visited and its body decoded. */
static int scan_range(env_t *e, const bounds_t *b, scan_acc_t *a)
{
    memset(a, 0, sizeof(*a));
    a->lo = b->lo_d;
    a->hi = b->hi_d;
    uint64_t cur = 0;
    do {
        int rc = mdx_scan(e->c, cur, MDX_DEFAULT_MAX_LIMIT, scan_cb, a, &cur);
        if (rc)
            return rc;
    } while (cur != 0);
    return 0;
}

static size_t lower_bound(const double *v, size_t n, double x, int strict)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] < x || (strict && v[mid] == x))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Checks results against the loaded data before anything is timed. scores[i] is record i's
 * score; it is sorted in place. */
static int verify(env_t *e, const opts_t *o, const uint8_t *bodies, double *scores, bench_rng_t *r)
{
    uint64_t n = o->records;
    for (int i = 0; i < CHECKS; i++) {
        uint64_t id = bench_rng_below(r, n);
        enc_key_t k;
        mdx_rec_view_t v;
        make_key(&k, id);
        int rc = mdx_get(e->c, k.b, k.len, &v);
        if (rc)
            return fail(e, "get", rc);
        if (v.body_len != BODY_LEN || memcmp(v.body, bodies + id * BODY_LEN, BODY_LEN) != 0) {
            fprintf(stderr, "memdex-bench: get of key %" PRIu64 " returned a wrong body\n", id);
            return BENCH_EXIT_FAIL;
        }
    }
    for (size_t i = 0; i < mdx_index_count(e->c); i++) {
        mdx_index_info_t info;
        if (mdx_index_info(e->c, i, &info) == 0 && info.entries != n) {
            fprintf(stderr, "memdex-bench: index %s holds %" PRIu64 " entries, not %" PRIu64 "\n",
                    info.name, info.entries, n);
            return BENCH_EXIT_FAIL;
        }
    }
    qsort(scores, n, sizeof(*scores), cmp_double);
    for (int i = 0; i < CHECKS; i++) {
        bounds_t b;
        mdx_query_t q;
        uint64_t got;
        make_count_range(&b, r);
        query_init(&q, IX_SCORE, &b, 0);
        int rc = mdx_count(e->c, &q, &got);
        if (rc)
            return fail(e, "count", rc);
        uint64_t want = lower_bound(scores, n, b.hi_d, 1) - lower_bound(scores, n, b.lo_d, 0);
        if (got != want) {
            fprintf(stderr,
                    "memdex-bench: count of [%.17g, %.17g] is %" PRIu64 ", expected %" PRIu64 "\n",
                    b.lo_d, b.hi_d, got, want);
            return BENCH_EXIT_FAIL;
        }
    }
    /* Full scans are slow on big collections: a few suffice to cross-check find. */
    int scans = n > 100000 ? 3 : 20;
    for (int i = 0; i < scans; i++) {
        bounds_t b;
        mdx_query_t q;
        mdx_find_result_t res;
        collect_t got = {0};
        scan_acc_t want;
        make_range10(&b, r, n);
        query_init(&q, IX_SCORE, &b, RANGE_LIMIT);
        int rc = mdx_find(e->c, &q, collect_cb, &got, &res);
        if (rc)
            return fail(e, "find", rc);
        if ((rc = scan_range(e, &b, &want)))
            return fail(e, "scan", rc);
        int ok = !want.bad && got.n == want.n && res.returned == got.n &&
                 res.more == (want.matches > want.n);
        for (uint64_t j = 0; ok && j < got.n; j++)
            ok = got.keys[j] == want.top[j].key;
        if (!ok) {
            fprintf(stderr,
                    "memdex-bench: find on [%.17g, %.17g] returned %" PRIu64
                    " records that differ from a full scan's %" PRIu64 "\n",
                    b.lo_d, b.hi_d, got.n, want.n);
            return BENCH_EXIT_FAIL;
        }
    }
    return BENCH_EXIT_OK;
}

/* ---- timed batches: each returns ns per operation, or a negative value on failure ---- */

static double batch_get(env_t *e, const enc_key_t *keys, uint64_t ops, uint64_t *sink)
{
    mdx_rec_view_t v;
    uint64_t sum = 0;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < ops; i++) {
        int rc = mdx_get(e->c, keys[i].b, keys[i].len, &v);
        if (rc)
            return -fail(e, "get", rc);
        sum += v.body[v.body_len - 1];
    }
    uint64_t t1 = bench_now_ns();
    *sink += sum;
    return (double)(t1 - t0) / (double)ops;
}

static double batch_put(env_t *e, const enc_key_t *keys, const uint8_t *bodies, uint64_t ops)
{
    mdx_put_opts_t po = {.mode = MDX_PUT_REPLACE, .ttl_ms = 0, .keep_ttl = 0};
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < ops; i++) {
        int rc = mdx_put(e->c, keys[i].b, keys[i].len, bodies + i * BODY_LEN, BODY_LEN, &po);
        if (rc)
            return -fail(e, "put", rc);
    }
    uint64_t t1 = bench_now_ns();
    return (double)(t1 - t0) / (double)ops;
}

static double batch_range10(env_t *e, const bounds_t *b, uint64_t ops, uint64_t *sink)
{
    mdx_find_result_t res;
    touch_t t = {0, 0};
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < ops; i++) {
        mdx_query_t q;
        query_init(&q, IX_SCORE, &b[i], RANGE_LIMIT);
        int rc = mdx_find(e->c, &q, touch_cb, &t, &res);
        if (rc)
            return -fail(e, "find", rc);
    }
    uint64_t t1 = bench_now_ns();
    if (t.n != ops * RANGE_LIMIT) {
        fprintf(stderr,
                "memdex-bench: range queries returned %" PRIu64 " records, expected %" PRIu64 "\n",
                t.n, ops * RANGE_LIMIT);
        return -BENCH_EXIT_FAIL;
    }
    *sink += t.sum;
    return (double)(t1 - t0) / (double)ops;
}

static double batch_count(env_t *e, const bounds_t *b, uint64_t ops, uint64_t *sink)
{
    uint64_t sum = 0, got;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < ops; i++) {
        mdx_query_t q;
        query_init(&q, IX_SCORE, &b[i], 0);
        int rc = mdx_count(e->c, &q, &got);
        if (rc)
            return -fail(e, "count", rc);
        sum += got;
    }
    uint64_t t1 = bench_now_ns();
    *sink += sum;
    return (double)(t1 - t0) / (double)ops;
}

static double batch_scan(env_t *e, const bounds_t *b, uint64_t ops, uint64_t *sink)
{
    scan_acc_t a;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < ops; i++) {
        int rc = scan_range(e, &b[i], &a);
        if (rc)
            return -fail(e, "scan", rc);
        if (a.n != RANGE_LIMIT || a.bad) {
            fprintf(stderr, "memdex-bench: a full scan found %" PRIu64 " of %d records\n", a.n,
                    RANGE_LIMIT);
            return -BENCH_EXIT_FAIL;
        }
        *sink += a.matches;
    }
    uint64_t t1 = bench_now_ns();
    return (double)(t1 - t0) / (double)ops;
}

/* ---- report ---- */

enum { M_GET, M_PUT, M_RANGE10, M_COUNT, M_SCAN, M_COUNT_OF };

static const char *const metric_name[M_COUNT_OF] = {"get_ns", "put_ns", "range10_ns", "count_ns",
                                                    "scan_range10_ns"};

typedef struct {
    double median[M_COUNT_OF], min[M_COUNT_OF], max[M_COUNT_OF];
    double load_s, speedup;
    double bytes_per_record, store_bytes_per_record, bytes_per_record_end;
    uint64_t scan_ops;
} result_t;

typedef struct {
    const char *name;
    double value, target;
    int at_least; /* target is a minimum, not a maximum */
} target_t;

static size_t targets(const result_t *r, target_t *t)
{
    size_t n = 0;
    t[n++] = (target_t){"get_ns", r->median[M_GET], TARGET_GET_NS, 0};
    t[n++] = (target_t){"put_ns", r->median[M_PUT], TARGET_PUT_NS, 0};
    t[n++] = (target_t){"range10_ns", r->median[M_RANGE10], TARGET_RANGE10_NS, 0};
    t[n++] = (target_t){"count_ns", r->median[M_COUNT], TARGET_COUNT_NS, 0};
    t[n++] = (target_t){"range_speedup", r->speedup, TARGET_SPEEDUP, 1};
    t[n++] = (target_t){"bytes_per_record", r->bytes_per_record, TARGET_BYTES, 0};
    return n;
}

static int target_met(const target_t *t)
{
    return t->at_least ? t->value >= t->target : t->value <= t->target;
}

static void print_json(const opts_t *o, const result_t *r)
{
    printf("{\"bench\":\"embedded\",\"records\":%" PRIu64 ",\"rounds\":%" PRIu64 ",\"ops\":%" PRIu64
           ",\"scan_ops\":%" PRIu64 ",\"seed\":%" PRIu64
           ",\"body_bytes\":%d,\"load_s\":%.3f,\"load_records_per_s\":%.0f",
           o->records, o->rounds, o->ops, r->scan_ops, o->seed, BODY_LEN, r->load_s,
           (double)o->records / r->load_s);
    for (int m = 0; m < M_COUNT_OF; m++)
        printf(",\"%s\":%.1f", metric_name[m], r->median[m]);
    printf(",\"range_speedup\":%.0f,\"bytes_per_record\":%.1f,\"store_bytes_per_record\":%.1f,"
           "\"bytes_per_record_end\":%.1f",
           r->speedup, r->bytes_per_record, r->store_bytes_per_record, r->bytes_per_record_end);
    const char *sep = "";
    printf(",\"min\":{");
    for (int m = 0; m < M_COUNT_OF; m++, sep = ",")
        printf("%s\"%s\":%.1f", sep, metric_name[m], r->min[m]);
    sep = "";
    printf("},\"max\":{");
    for (int m = 0; m < M_COUNT_OF; m++, sep = ",")
        printf("%s\"%s\":%.1f", sep, metric_name[m], r->max[m]);
    target_t t[8];
    size_t nt = targets(r, t);
    sep = "";
    printf("},\"targets_missed\":[");
    for (size_t i = 0; i < nt; i++)
        if (!target_met(&t[i])) {
            printf("%s\"%s\"", sep, t[i].name);
            sep = ",";
        }
    printf("]}\n");
}

static void print_table(const opts_t *o, const result_t *r)
{
    printf("memdex-bench embedded: %" PRIu64 " records, %d-byte bodies, %" PRIu64
           " rounds of %" PRIu64 " ops (full scans: %" PRIu64 " per round), seed %" PRIu64 "\n\n",
           o->records, BODY_LEN, o->rounds, o->ops, r->scan_ops, o->seed);
    printf("load: %.3f s, %.0f records/s\n\n", r->load_s, (double)o->records / r->load_s);
    printf("%-24s %12s %12s %12s\n", "ns per operation", "median", "min", "max");
    for (int m = 0; m < M_COUNT_OF; m++)
        printf("%-24s %12.1f %12.1f %12.1f\n", metric_name[m], r->median[m], r->min[m], r->max[m]);
    printf("\n%-24s %12.0f\n", "range_speedup", r->speedup);
    printf("%-24s %12.1f   (allocator stats, after load)\n", "bytes_per_record",
           r->bytes_per_record);
    printf("%-24s %12.1f   (store's own accounting)\n", "store_bytes_per_record",
           r->store_bytes_per_record);
    printf("%-24s %12.1f   (allocator stats, after the puts)\n", "bytes_per_record_end",
           r->bytes_per_record_end);
    target_t t[8];
    size_t nt = targets(r, t);
    printf("\ntargets (at 1,000,000 records; timings on shared machines are noisy):\n");
    for (size_t i = 0; i < nt; i++)
        printf("  %-22s %12.1f  %s %8.0f  %s\n", t[i].name, t[i].value,
               t[i].at_least ? ">=" : "<=", t[i].target, target_met(&t[i]) ? "ok" : "MISSED");
}

/* ---- driver ---- */

#define USAGE                                                                                      \
    "usage: memdex-bench embedded --records N [--rounds R] [--ops K] [--seed S] [--json]\n"

static void usage(FILE *f)
{
    fputs(USAGE
          "\n"
          "Loads N records (100-byte msgpack bodies, integer keys) into a collection with a\n"
          "hash index on \"city\" and a skiplist index on \"score\", then reports the median\n"
          "over R rounds of nanoseconds per get, put (replace), range query of 10 records,\n"
          "count of a range, and the same range query answered by a full scan; plus load\n"
          "speed and memory per record beyond the body.\n"
          "\n"
          "  --records N  records to load (100 to 100000000; required)\n"
          "  --rounds R   rounds, the median is reported (1 to 1000; default 5)\n"
          "  --ops K      operations per batch (1000 to 100000000; default 200000)\n"
          "  --seed S     PRNG seed (default 1)\n"
          "  --json       print one JSON object instead of a table\n"
          "  -h, --help   print this help\n",
          f);
}

static int parse_opts(int argc, char **argv, opts_t *o, int *help)
{
    *o = (opts_t){0, 5, 200000, 1, 0};
    *help = 0;
    int have_records = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            *help = 1;
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            o->json = 1;
            continue;
        }
        uint64_t *dst, min, max;
        if (strcmp(a, "--records") == 0) {
            dst = &o->records, min = 100, max = 100000000;
            have_records = 1;
        } else if (strcmp(a, "--rounds") == 0) {
            dst = &o->rounds, min = 1, max = 1000;
        } else if (strcmp(a, "--ops") == 0) {
            dst = &o->ops, min = 1000, max = 100000000;
        } else if (strcmp(a, "--seed") == 0) {
            dst = &o->seed, min = 0, max = UINT64_MAX;
        } else {
            fprintf(stderr, "memdex-bench embedded: unknown option '%s' (see --help)\n", a);
            return -1;
        }
        if (bench_parse_u64(a, val, min, max, dst))
            return -1;
        i++;
    }
    if (!have_records) {
        fprintf(stderr, "memdex-bench embedded: --records N is required (see --help)\n");
        return -1;
    }
    return 0;
}

static int setup(env_t *e)
{
    int rc;
    if ((rc = mdx_store_new(NULL, &e->st)))
        return fail(e, "store_new", rc);
    if ((rc = mdx_coll_create(e->st, COLL, &e->c)))
        return fail(e, "coll_create", rc);
    if ((rc = mdx_index_create(e->c, IX_CITY, "city", MDX_INDEX_HASH, 0)))
        return fail(e, "index_create", rc);
    if ((rc = mdx_index_create(e->c, IX_SCORE, "score", MDX_INDEX_SKIPLIST, 0)))
        return fail(e, "index_create", rc);
    return 0;
}

static double per_record(size_t after, size_t before, uint64_t n)
{
    return ((double)after - (double)before) / (double)n - BODY_LEN;
}

static int run(const opts_t *o, env_t *e, result_t *res)
{
    uint64_t n = o->records, ops = o->ops, sink = 0;
    int rc = BENCH_EXIT_FAIL;
    bench_rng_t rng;
    bench_rng_seed(&rng, o->seed);

    uint64_t scan_ops = SCAN_BUDGET / n;
    scan_ops = scan_ops < 3 ? 3 : scan_ops > ops ? ops : scan_ops;
    res->scan_ops = scan_ops;

    enc_key_t *keys = malloc(ops * sizeof(*keys));
    uint8_t *bodies = malloc(n * BODY_LEN);
    uint8_t *put_bodies = malloc(ops * BODY_LEN);
    double *scores = malloc(n * sizeof(*scores));
    bounds_t *ranges = malloc(ops * sizeof(*ranges));
    bounds_t *counts = malloc(ops * sizeof(*counts));
    double *samples[M_COUNT_OF];
    for (int m = 0; m < M_COUNT_OF; m++)
        samples[m] = malloc(o->rounds * sizeof(double));
    int oom = !keys || !bodies || !put_bodies || !scores || !ranges || !counts;
    for (int m = 0; m < M_COUNT_OF; m++)
        oom |= !samples[m];
    if (oom) {
        fprintf(stderr, "memdex-bench: out of memory preparing %" PRIu64 " records\n", n);
        goto out;
    }
    for (uint64_t i = 0; i < n; i++)
        make_body(bodies + i * BODY_LEN, i, &rng, &scores[i]);
    for (uint64_t i = 0; i < ops; i++) {
        make_range10(&ranges[i], &rng, n);
        make_count_range(&counts[i], &rng);
    }
    if (setup(e))
        goto out;

    /* Load. The load time includes encoding each integer key (a few ns of each insert). */
    mdx_store_stats_t s0, s1, s2;
    mdx_store_stats(e->st, &s0);
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        enc_key_t k;
        make_key(&k, i);
        int prc = mdx_put(e->c, k.b, k.len, bodies + i * BODY_LEN, BODY_LEN, NULL);
        if (prc) {
            fail(e, "put (load)", prc);
            goto out;
        }
    }
    res->load_s = (double)(bench_now_ns() - t0) / 1e9;
    mdx_store_stats(e->st, &s1);
    res->bytes_per_record = per_record(s1.allocator_bytes, s0.allocator_bytes, n);
    res->store_bytes_per_record = per_record(s1.memory, s0.memory, n);

    if (verify(e, o, bodies, scores, &rng))
        goto out;

    for (uint64_t round = 0; round < o->rounds; round++) {
        double v[M_COUNT_OF];
        for (uint64_t i = 0; i < ops; i++)
            make_key(&keys[i], bench_rng_below(&rng, n));
        if ((v[M_GET] = batch_get(e, keys, ops, &sink)) < 0 ||
            (v[M_RANGE10] = batch_range10(e, ranges, ops, &sink)) < 0 ||
            (v[M_COUNT] = batch_count(e, counts, ops, &sink)) < 0)
            goto out;
        /* Each round scans with other ranges from the same pool. */
        const bounds_t *scan_ranges = ranges + (round * scan_ops) % (ops - scan_ops + 1);
        if ((v[M_SCAN] = batch_scan(e, scan_ranges, scan_ops, &sink)) < 0)
            goto out;
        /* New city and score for each replaced record, so both indexes move. */
        for (uint64_t i = 0; i < ops; i++) {
            double unused;
            uint64_t id = bench_rng_below(&rng, n);
            make_key(&keys[i], id);
            make_body(put_bodies + i * BODY_LEN, id, &rng, &unused);
        }
        if ((v[M_PUT] = batch_put(e, keys, put_bodies, ops)) < 0)
            goto out;
        for (int m = 0; m < M_COUNT_OF; m++)
            samples[m][round] = v[m];
    }
    mdx_store_stats(e->st, &s2);
    res->bytes_per_record_end = per_record(s2.allocator_bytes, s0.allocator_bytes, n);
    if (mdx_coll_records(e->c) != n) {
        fprintf(stderr, "memdex-bench: %" PRIu64 " records after the run, expected %" PRIu64 "\n",
                mdx_coll_records(e->c), n);
        goto out;
    }
    for (int m = 0; m < M_COUNT_OF; m++) {
        res->median[m] = bench_median(samples[m], o->rounds);
        res->min[m] = samples[m][0];
        res->max[m] = samples[m][o->rounds - 1];
    }
    res->speedup = res->median[M_SCAN] / res->median[M_RANGE10];
    /* The sink keeps the reads from being optimized away; it is never 0 in practice. */
    rc = sink == 0 ? BENCH_EXIT_FAIL : BENCH_EXIT_OK;
out:
    free(keys);
    free(bodies);
    free(put_bodies);
    free(scores);
    free(ranges);
    free(counts);
    for (int m = 0; m < M_COUNT_OF; m++)
        free(samples[m]);
    return rc;
}

int bench_embedded_main(int argc, char **argv)
{
    opts_t o;
    int help;
    if (parse_opts(argc, argv, &o, &help)) {
        fputs(USAGE, stderr);
        return BENCH_EXIT_USAGE;
    }
    if (help) {
        usage(stdout);
        return BENCH_EXIT_OK;
    }
    env_t e = {NULL, NULL};
    result_t res;
    memset(&res, 0, sizeof(res));
    int rc = run(&o, &e, &res);
    mdx_store_free(e.st);
    if (rc)
        return rc;
    if (o.json)
        print_json(&o, &res);
    else
        print_table(&o, &res);
    return BENCH_EXIT_OK;
}
