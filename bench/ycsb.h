/*
 * YCSB's key generators and core workloads, reimplemented from YCSB's Java sources
 * (site.ycsb.generator.ZipfianGenerator, ScrambledZipfianGenerator, SkewedLatestGenerator,
 * AcknowledgedCounterGenerator, Utils.fnvhash64, workloads.CoreWorkload) so that the key
 * sequences have exactly YCSB's shape: the same formulas, the same constants (zipfian constant
 * 0.99, the precomputed zeta of the scrambled variant, 10^16 items), the same integer
 * truncations and the same quirks (the constructor's throw-away draw; eta recomputed with the
 * original item count). One deliberate difference: YCSB draws its uniform doubles from
 * ThreadLocalRandom, which cannot be seeded; here every draw comes from a bench_rng_t
 * (xoshiro256**, 53-bit doubles like Java's nextDouble), so a seed reproduces a run exactly.
 *
 * Single-threaded: the engine owns one bench_workload_t and calls it from its loop.
 */
#ifndef MDX_BENCH_YCSB_H
#define MDX_BENCH_YCSB_H

#include <stddef.h>
#include <stdint.h>

#include "bench/bench.h"

#define BENCH_ZIPFIAN_CONSTANT 0.99
#define BENCH_SCRAMBLED_ZETAN  26.46902820178302 /* zeta(10^16, 0.99), as YCSB hard-codes it */
#define BENCH_SCRAMBLED_ITEMS  10000000000000000LL

/** Seeds r exactly as bench_rng_seed() does (splitmix64 from seed). */
void bench_ycsb_rng_seed(bench_rng_t *r, uint64_t seed);

/** Utils.fnvhash64: FNV-1 over the 8 little-endian bytes of val, then Math.abs (so the result
 *  is non-negative except for INT64_MIN, which Java's abs leaves negative). */
int64_t bench_fnvhash64(int64_t val);

/** ZipfianGenerator (Gray et al., SIGMOD 1994), items in [min, max]. */
typedef struct {
    int64_t items, base, countforzeta;
    double theta, zeta2theta, alpha, zetan, eta;
    int64_t last;
} bench_zipf_t;

/** new ZipfianGenerator(min, max, theta, zetan); zetan < 0 computes zeta(max-min+1, theta)
 *  (a sum of that many terms: 10^6 items take a few milliseconds). Like the Java constructor,
 *  draws one value (so it consumes one double of rng). */
void bench_zipf_init(bench_zipf_t *z, int64_t min, int64_t max, double theta, double zetan,
                     bench_rng_t *rng);
/** nextLong(itemcount): grows zeta incrementally when itemcount rose since the last call. */
int64_t bench_zipf_next_n(bench_zipf_t *z, bench_rng_t *rng, int64_t itemcount);
/** nextValue(): nextLong(items). */
int64_t bench_zipf_next(bench_zipf_t *z, bench_rng_t *rng);
/** ZipfianGenerator.zetastatic(st, n, theta, initialsum). */
double bench_zeta(int64_t st, int64_t n, double theta, double initialsum);

/** ScrambledZipfianGenerator(min, max) with the zipfian constant 0.99: a zipfian over 10^16
 *  items (precomputed zeta), hashed with fnvhash64 and folded into [min, max]. */
typedef struct {
    bench_zipf_t gen;
    int64_t min, max, itemcount;
} bench_szipf_t;

void bench_szipf_init(bench_szipf_t *s, int64_t min, int64_t max, bench_rng_t *rng);
int64_t bench_szipf_next(bench_szipf_t *s, bench_rng_t *rng);

/** AcknowledgedCounterGenerator: next() hands out start, start+1, ...; last() is the highest
 *  value below which every value was acknowledged (start - 1 at first). The window of
 *  unacknowledged values is 2^20 as in YCSB; more is an error (-1 from ack). */
#define BENCH_ACK_WINDOW (1u << 20)
typedef struct {
    int64_t counter;
    int64_t limit;
    uint8_t *window;
} bench_ackctr_t;

int bench_ackctr_init(bench_ackctr_t *a, int64_t start);
void bench_ackctr_fini(bench_ackctr_t *a);
int64_t bench_ackctr_next(bench_ackctr_t *a);
int bench_ackctr_ack(bench_ackctr_t *a, int64_t v);
static inline int64_t bench_ackctr_last(const bench_ackctr_t *a)
{
    return a->limit;
}

/** SkewedLatestGenerator over an acknowledged counter: last() - zipfian.nextLong(last()). */
typedef struct {
    bench_zipf_t zipf;
    bench_ackctr_t *basis;
} bench_latest_t;

void bench_latest_init(bench_latest_t *l, bench_ackctr_t *basis, bench_rng_t *rng);
int64_t bench_latest_next(bench_latest_t *l, bench_rng_t *rng);

/* ---- workloads ---- */

typedef enum {
    BENCH_OP_READ,   /* get by key */
    BENCH_OP_UPDATE, /* put (replace) an existing key */
    BENCH_OP_INSERT, /* put a new key (also the load phase) */
    BENCH_OP_SCAN,   /* range query on the secondary ordered index */
    BENCH_OP_RMW,    /* read, then put the same key (YCSB read-modify-write) */
    BENCH_OP__COUNT
} bench_opkind_t;

/** "read", "update", ... */
const char *bench_op_name(bench_opkind_t k);

typedef enum { BENCH_DIST_UNIFORM, BENCH_DIST_ZIPFIAN, BENCH_DIST_LATEST } bench_dist_t;

typedef struct {
    const char *name;             /* "ycsb-a", "get", "load", ... */
    const char *summary;          /* for the table header */
    double prop[BENCH_OP__COUNT]; /* operation proportions */
    bench_dist_t dist;            /* the workload's own request distribution */
    int scan_uniform;             /* scan length uniform in [1, scan_max]; else fixed */
    int load;                     /* the load phase: insert 0..records-1 in order */
} bench_workload_def_t;

/** Looks a workload up by name ("ycsb-a".."ycsb-f", "load", "get", "put", "range"); NULL when
 *  unknown. */
const bench_workload_def_t *bench_workload_find(const char *name);
/** Names of every workload, for --help. */
const char *bench_workload_names(void);

/** One operation to perform. */
typedef struct {
    bench_opkind_t kind;
    int64_t keynum;    /* the record (for a scan: the index value to start at) */
    uint32_t scan_len; /* SCAN: records asked for */
    int64_t acked;     /* SCAN: highest acknowledged keynum when issued (to check the count) */
} bench_opdesc_t;

typedef struct {
    const bench_workload_def_t *def;
    bench_dist_t dist;
    int64_t records; /* recordcount: keys 0..records-1 exist */
    uint32_t scan_len, scan_max;
    bench_rng_t rng;
    bench_ackctr_t inserts; /* transactioninsertkeysequence (also the load sequence) */
    bench_szipf_t szipf;
    bench_latest_t latest;
    double cum[BENCH_OP__COUNT];
    int nkinds;
    bench_opkind_t kinds[BENCH_OP__COUNT];
} bench_workload_t;

/** Sets up a workload over `records` existing records. dist overrides the workload's own
 *  distribution (pass def->dist to keep it). expected_ops sizes the scrambled zipfian's key
 *  space as CoreWorkload does (records + 2 * expected inserts). scan_len is the length of a
 *  fixed-length scan, scan_max the upper end of a uniform one. Returns 0 or -1 (no memory). */
int bench_workload_init(bench_workload_t *w, const bench_workload_def_t *def, bench_dist_t dist,
                        int64_t records, uint64_t expected_ops, uint32_t scan_len,
                        uint32_t scan_max, uint64_t seed);
void bench_workload_fini(bench_workload_t *w);
/** The next operation (CoreWorkload.doTransaction's choice of op and key, or doInsert's). */
void bench_workload_next(bench_workload_t *w, bench_opdesc_t *op);
/** Tells the workload an insert completed (successfully or not, as YCSB does). */
void bench_workload_ack(bench_workload_t *w, int64_t keynum);

/** CoreWorkload.buildKeyName with insertorder=hashed, zeropadding=1: "user" followed by the
 *  decimal fnvhash64(keynum). Writes at most 24 bytes plus a NUL; returns the length. */
size_t bench_key_name(int64_t keynum, char out[32]);

#endif
