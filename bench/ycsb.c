/*
 * YCSB generators and core workloads (see ycsb.h for what is YCSB's and what is not). Each
 * function names the Java method it mirrors; comments mark where the Java semantics (long
 * wrap-around, truncating casts, Math.abs) are reproduced on purpose.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench/ycsb.h"

/* The seeding of bench_rng_seed() (bench.c), repeated so that this library does not need
 * bench.c, which holds memdex-bench's main(). */
void bench_ycsb_rng_seed(bench_rng_t *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) {
        uint64_t z = (seed += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        r->s[i] = z ^ (z >> 31);
    }
}

#define FNV_OFFSET_BASIS_64 0xCBF29CE484222325ULL
#define FNV_PRIME_64        1099511628211ULL

int64_t bench_fnvhash64(int64_t val)
{
    uint64_t hashval = FNV_OFFSET_BASIS_64;
    for (int i = 0; i < 8; i++) {
        uint64_t octet = (uint64_t)val & 0xff;
        val = val >> 8; /* Java's >> on a long: arithmetic (val is never negative here) */
        hashval ^= octet;
        hashval *= FNV_PRIME_64; /* long multiplication wraps in Java as in uint64 */
    }
    int64_t h = (int64_t)hashval;
    /* Math.abs(Long.MIN_VALUE) is Long.MIN_VALUE. */
    return h == INT64_MIN ? h : (h < 0 ? -h : h);
}

double bench_zeta(int64_t st, int64_t n, double theta, double initialsum)
{
    double sum = initialsum;
    for (int64_t i = st; i < n; i++)
        sum += 1 / pow((double)(i + 1), theta);
    return sum;
}

int64_t bench_zipf_next_n(bench_zipf_t *z, bench_rng_t *rng, int64_t itemcount)
{
    if (itemcount > z->countforzeta) {
        /* YCSB recomputes eta with the original item count (items), not itemcount. */
        z->zetan = bench_zeta(z->countforzeta, itemcount, z->theta, z->zetan);
        z->countforzeta = itemcount;
        z->eta = (1 - pow(2.0 / (double)z->items, 1 - z->theta)) / (1 - z->zeta2theta / z->zetan);
    }
    double u = bench_rng_unit(rng);
    double uz = u * z->zetan;
    if (uz < 1.0)
        return z->base;
    if (uz < 1.0 + pow(0.5, z->theta))
        return z->base + 1;
    /* (long) in Java truncates toward zero, as the C conversion does. */
    int64_t ret = z->base + (int64_t)((double)itemcount * pow(z->eta * u - z->eta + 1, z->alpha));
    z->last = ret;
    return ret;
}

int64_t bench_zipf_next(bench_zipf_t *z, bench_rng_t *rng)
{
    return bench_zipf_next_n(z, rng, z->items);
}

void bench_zipf_init(bench_zipf_t *z, int64_t min, int64_t max, double theta, double zetan,
                     bench_rng_t *rng)
{
    memset(z, 0, sizeof(*z));
    z->items = max - min + 1;
    z->base = min;
    z->theta = theta;
    z->zeta2theta = bench_zeta(0, 2, theta, 0);
    z->alpha = 1.0 / (1.0 - theta);
    z->zetan = zetan >= 0 ? zetan : bench_zeta(0, z->items, theta, 0);
    z->countforzeta = z->items;
    z->eta = (1 - pow(2.0 / (double)z->items, 1 - theta)) / (1 - z->zeta2theta / z->zetan);
    bench_zipf_next(z, rng); /* the Java constructor ends with nextValue() */
}

void bench_szipf_init(bench_szipf_t *s, int64_t min, int64_t max, bench_rng_t *rng)
{
    s->min = min;
    s->max = max;
    s->itemcount = max - min + 1;
    bench_zipf_init(&s->gen, 0, BENCH_SCRAMBLED_ITEMS, BENCH_ZIPFIAN_CONSTANT,
                    BENCH_SCRAMBLED_ZETAN, rng);
}

int64_t bench_szipf_next(bench_szipf_t *s, bench_rng_t *rng)
{
    int64_t ret = bench_zipf_next(&s->gen, rng);
    return s->min + bench_fnvhash64(ret) % s->itemcount; /* % keeps the sign, as in Java */
}

int bench_ackctr_init(bench_ackctr_t *a, int64_t start)
{
    a->counter = start;
    a->limit = start - 1;
    a->window = calloc(BENCH_ACK_WINDOW, 1);
    return a->window ? 0 : -1;
}

void bench_ackctr_fini(bench_ackctr_t *a)
{
    free(a->window);
    a->window = NULL;
}

int64_t bench_ackctr_next(bench_ackctr_t *a)
{
    return a->counter++;
}

int bench_ackctr_ack(bench_ackctr_t *a, int64_t v)
{
    const int64_t mask = BENCH_ACK_WINDOW - 1;
    if (a->window[v & mask])
        return -1; /* "Too many unacknowledged insertion keys." */
    a->window[v & mask] = 1;
    /* Move the contiguous acknowledged run over to limit (tryLock always succeeds here). */
    int64_t before_first = a->limit & mask;
    int64_t index;
    for (index = a->limit + 1; index != before_first; ++index) {
        int64_t slot = index & mask;
        if (!a->window[slot])
            break;
        a->window[slot] = 0;
    }
    a->limit = index - 1;
    return 0;
}

void bench_latest_init(bench_latest_t *l, bench_ackctr_t *basis, bench_rng_t *rng)
{
    l->basis = basis;
    /* new ZipfianGenerator(basis.lastValue()): items 0 .. lastValue-1 */
    bench_zipf_init(&l->zipf, 0, bench_ackctr_last(basis) - 1, BENCH_ZIPFIAN_CONSTANT, -1, rng);
    bench_latest_next(l, rng); /* the constructor's nextValue() */
}

int64_t bench_latest_next(bench_latest_t *l, bench_rng_t *rng)
{
    int64_t max = bench_ackctr_last(l->basis);
    return max - bench_zipf_next_n(&l->zipf, rng, max);
}

/* ---- workloads ---- */

const char *bench_op_name(bench_opkind_t k)
{
    static const char *const names[] = {"read", "update", "insert", "scan", "rmw"};
    return k < BENCH_OP__COUNT ? names[k] : "?";
}

/* Proportions in the order READ, UPDATE, INSERT, SCAN, READMODIFYWRITE (the order in which
 * CoreWorkload.createOperationGenerator adds them, which the choice depends on). The YCSB
 * ones are workloads/workloada..f of the YCSB distribution. */
static const bench_workload_def_t workloads[] = {
    {"ycsb-a", "YCSB A: read 50%, update 50%", {0.5, 0.5, 0, 0, 0}, BENCH_DIST_ZIPFIAN, 0, 0},
    {"ycsb-b", "YCSB B: read 95%, update 5%", {0.95, 0.05, 0, 0, 0}, BENCH_DIST_ZIPFIAN, 0, 0},
    {"ycsb-c", "YCSB C: read 100%", {1, 0, 0, 0, 0}, BENCH_DIST_ZIPFIAN, 0, 0},
    {"ycsb-d",
     "YCSB D: read 95%, insert 5%, latest",
     {0.95, 0, 0.05, 0, 0},
     BENCH_DIST_LATEST,
     0,
     0},
    {"ycsb-e",
     "YCSB E: scan 95% (uniform length 1..scan-max), insert 5%",
     {0, 0, 0.05, 0.95, 0},
     BENCH_DIST_ZIPFIAN,
     1,
     0},
    {"ycsb-f",
     "YCSB F: read 50%, read-modify-write 50%",
     {0.5, 0, 0, 0, 0.5},
     BENCH_DIST_ZIPFIAN,
     0,
     0},
    {"load",
     "load phase: insert records 0..N-1 in order",
     {0, 0, 1, 0, 0},
     BENCH_DIST_UNIFORM,
     0,
     1},
    {"get", "get by key", {1, 0, 0, 0, 0}, BENCH_DIST_UNIFORM, 0, 0},
    {"put", "put (replace) by key", {0, 1, 0, 0, 0}, BENCH_DIST_UNIFORM, 0, 0},
    {"range",
     "range on the ordered index (scan-length records)",
     {0, 0, 0, 1, 0},
     BENCH_DIST_UNIFORM,
     0,
     0},
};

const bench_workload_def_t *bench_workload_find(const char *name)
{
    for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++)
        if (strcmp(workloads[i].name, name) == 0)
            return &workloads[i];
    return NULL;
}

const char *bench_workload_names(void)
{
    return "get, put, range, load, ycsb-a, ycsb-b, ycsb-c, ycsb-d, ycsb-e, ycsb-f";
}

int bench_workload_init(bench_workload_t *w, const bench_workload_def_t *def, bench_dist_t dist,
                        int64_t records, uint64_t expected_ops, uint32_t scan_len,
                        uint32_t scan_max, uint64_t seed)
{
    memset(w, 0, sizeof(*w));
    w->def = def;
    w->dist = dist;
    w->records = records;
    w->scan_len = scan_len;
    w->scan_max = scan_max;
    bench_ycsb_rng_seed(&w->rng, seed);
    if (bench_ackctr_init(&w->inserts, def->load ? 0 : records))
        return -1;
    double sum = 0;
    for (int k = 0; k < BENCH_OP__COUNT; k++)
        sum += def->prop[k];
    for (int k = 0; k < BENCH_OP__COUNT; k++) {
        if (def->prop[k] > 0) {
            w->kinds[w->nkinds] = (bench_opkind_t)k;
            w->cum[w->nkinds] = def->prop[k] / sum;
            w->nkinds++;
        }
    }
    if (def->load || records <= 0)
        return 0;
    if (dist == BENCH_DIST_ZIPFIAN) {
        /* CoreWorkload: expectednewkeys = (int)(opcount * insertproportion * 2.0) */
        int64_t expected_new =
            (int64_t)((double)expected_ops * (def->prop[BENCH_OP_INSERT] / sum) * 2.0);
        bench_szipf_init(&w->szipf, 0, records + expected_new, &w->rng);
    } else if (dist == BENCH_DIST_LATEST) {
        bench_latest_init(&w->latest, &w->inserts, &w->rng);
    }
    return 0;
}

void bench_workload_fini(bench_workload_t *w)
{
    bench_ackctr_fini(&w->inserts);
}

/* CoreWorkload.nextKeynum: draw until the key has been inserted (acknowledged). */
static int64_t next_keynum(bench_workload_t *w)
{
    int64_t last = bench_ackctr_last(&w->inserts);
    int64_t k;
    switch (w->dist) {
    case BENCH_DIST_ZIPFIAN:
        do
            k = (int32_t)bench_szipf_next(&w->szipf, &w->rng); /* .intValue() */
        while (k > last);
        return k;
    case BENCH_DIST_LATEST:
        do
            k = (int32_t)bench_latest_next(&w->latest, &w->rng);
        while (k > last);
        return k;
    case BENCH_DIST_UNIFORM:
    default:
        /* UniformLongGenerator(insertstart, insertstart + insertcount - 1) */
        return (int64_t)bench_rng_below(&w->rng, (uint64_t)w->records);
    }
}

void bench_workload_next(bench_workload_t *w, bench_opdesc_t *op)
{
    memset(op, 0, sizeof(*op));
    if (w->def->load) {
        op->kind = BENCH_OP_INSERT;
        op->keynum = bench_ackctr_next(&w->inserts);
        return;
    }
    /* DiscreteGenerator.nextString */
    double val = bench_rng_unit(&w->rng);
    op->kind = w->kinds[w->nkinds - 1];
    for (int i = 0; i < w->nkinds; i++) {
        if (val < w->cum[i]) {
            op->kind = w->kinds[i];
            break;
        }
        val -= w->cum[i];
    }
    switch (op->kind) {
    case BENCH_OP_INSERT:
        op->keynum = bench_ackctr_next(&w->inserts);
        break;
    case BENCH_OP_SCAN:
        op->keynum = next_keynum(w);
        op->scan_len = w->def->scan_uniform ? 1 + (uint32_t)bench_rng_below(&w->rng, w->scan_max)
                                            : w->scan_len;
        op->acked = bench_ackctr_last(&w->inserts);
        break;
    default:
        op->keynum = next_keynum(w);
        break;
    }
}

void bench_workload_ack(bench_workload_t *w, int64_t keynum)
{
    (void)bench_ackctr_ack(&w->inserts, keynum);
}

size_t bench_key_name(int64_t keynum, char out[32])
{
    int64_t h = bench_fnvhash64(keynum);
    char digits[24];
    size_t n = 0;
    uint64_t u = h < 0 ? (uint64_t)0 - (uint64_t)h : (uint64_t)h;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t len = 0;
    memcpy(out, "user", 4);
    len = 4;
    if (h < 0)
        out[len++] = '-';
    while (n)
        out[len++] = digits[--n];
    out[len] = '\0';
    return len;
}
