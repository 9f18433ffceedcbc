/*
 * Randomized model test of the engine: random puts (all modes, with and without TTL), deletes,
 * partial updates, gets, finds (random index, bounds, direction, limit, offset, cursor),
 * counts, index creation and drop, TTL changes and expiry steps under a fake clock, checked
 * against a naive reference model after every operation. Every few thousand operations every
 * index is checked against the records.
 *
 * MDX_SEED sets the seed (printed at start), MDX_MODEL_OPS the number of operations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/mp.h"
#include "index/value.h"
#include "store/store_int.h"

#define NKEYS    96
#define NFIELDS  4
#define MAXPAIRS 8

static const char *const FIELDS[NFIELDS] = {"a", "b", "c", "u"};

static uint64_t rng_state;
static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}
static unsigned rn(unsigned n)
{
    return (unsigned)(rnd() % n);
}

static int64_t fake_now = 1000000;
static int64_t fake_clock(void *data)
{
    (void)data;
    return fake_now;
}

/* ---- the model ---- */

typedef struct {
    char name[8];
    uint8_t enc[16]; /* msgpack-encoded value */
    size_t enc_len;
} pair_t;

typedef struct {
    int present;
    int64_t expires_at;
    pair_t pairs[MAXPAIRS];
    int npairs;
} mrec_t;

typedef struct {
    int live;
    char name[8];
    int field; /* index into FIELDS */
    mdx_index_kind_t kind;
    int unique;
} midx_t;

static mrec_t model[NKEYS];
static midx_t midx[4];
static int nmidx_slots = 4;
static int create_order[4], ncreated; /* live slots in creation order (the store's order) */

static uint8_t keybuf[NKEYS][16];
static size_t keylen[NKEYS];

static void make_keys(void)
{
    for (int k = 0; k < NKEYS; k++) {
        if (k < NKEYS / 2) {
            keylen[k] = mdx_mp_enc_int(keybuf[k], (int64_t)k * 7 - 100);
        } else {
            char s[8];
            int n = snprintf(s, sizeof(s), "k%02d", k);
            keylen[k] = mdx_key_str(keybuf[k], s, (size_t)n);
        }
    }
}

static int live(int k)
{
    return model[k].present && !(model[k].expires_at && model[k].expires_at <= fake_now);
}

/* Random field value; kinds: int, float, str, bool, nil, big uint, and rarely array or NaN. */
static size_t gen_value(uint8_t *out, int allow_bad)
{
    mdx_buf_t b;
    mdx_buf_init(&b);
    unsigned r = rn(allow_bad ? 100 : 94);
    if (r < 35)
        mdx_mp_put_int(&b, (int64_t)rn(11) - 5);
    else if (r < 50)
        mdx_mp_put_double(&b, (double)rn(11) / 2.0 - 2.5);
    else if (r < 75) {
        char s[4] = {'s', (char)('0' + rn(6)), 0};
        mdx_mp_put_str(&b, s, 2);
    } else if (r < 82)
        mdx_mp_put_bool(&b, (int)rn(2));
    else if (r < 88)
        mdx_mp_put_nil(&b);
    else if (r < 94)
        mdx_mp_put_uint(&b, UINT64_MAX - rn(3));
    else if (r < 98) {
        mdx_mp_put_array(&b, 1);
        mdx_mp_put_int(&b, 1);
    } else
        mdx_mp_put_double(&b, __builtin_nan(""));
    size_t n = b.len;
    memcpy(out, b.data, n);
    mdx_buf_fini(&b);
    return n;
}

static void gen_pairs(pair_t *pairs, int *np, int allow_bad)
{
    int n = 0;
    for (int f = 0; f < NFIELDS; f++) {
        if (rn(5) == 0)
            continue;
        strcpy(pairs[n].name, FIELDS[f]);
        pairs[n].enc_len = gen_value(pairs[n].enc, allow_bad);
        n++;
    }
    /* shuffle so field order varies */
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rn((unsigned)i + 1);
        pair_t t = pairs[i];
        pairs[i] = pairs[j];
        pairs[j] = t;
    }
    *np = n;
}

static void encode_body(const pair_t *pairs, int n, mdx_buf_t *b)
{
    b->len = 0;
    mdx_mp_put_map(b, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        mdx_mp_put_str(b, pairs[i].name, strlen(pairs[i].name));
        mdx_buf_append(b, pairs[i].enc, pairs[i].enc_len);
    }
}

/* 1: value present, 0: absent or nil, <0: -error */
static int pairs_value(const pair_t *pairs, int n, int field, mdx_value_t *v)
{
    const pair_t *p = NULL;
    for (int i = 0; i < n; i++)
        if (strcmp(pairs[i].name, FIELDS[field]) == 0)
            p = &pairs[i];
    if (!p)
        return 0;
    mdx_mp_tok_t t;
    const uint8_t *q = p->enc;
    assert_int_equal(mdx_mp_read(&q, p->enc + p->enc_len, &t), 0);
    if (t.type == MDX_MP_NIL)
        return 0;
    int rc = mdx_value_from_tok(&t, v);
    return rc ? -rc : 1;
}

/* Expected result of writing `pairs` to key k (the model's validation order). */
static int expect_write(int k, const pair_t *pairs, int n)
{
    for (int j = 0; j < ncreated; j++) {
        int i = create_order[j];
        mdx_value_t v;
        int got = pairs_value(pairs, n, midx[i].field, &v);
        if (got < 0)
            return -got;
    }
    for (int i = 0; i < nmidx_slots; i++) {
        if (!midx[i].live || !midx[i].unique)
            continue;
        mdx_value_t v, w;
        if (pairs_value(pairs, n, midx[i].field, &v) != 1)
            continue;
        for (int o = 0; o < NKEYS; o++) {
            if (o == k || !live(o))
                continue;
            if (pairs_value(model[o].pairs, model[o].npairs, midx[i].field, &w) == 1 &&
                mdx_value_cmp(&v, &w) == 0)
                return MDX_EUNIQUE;
        }
    }
    return 0;
}

/* ---- checks ---- */

static mdx_store_t *st;
static mdx_coll_t *coll;
static uint64_t op_no;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            print_error("op %llu: ", (unsigned long long)op_no);                                   \
            print_error(__VA_ARGS__);                                                              \
            print_error(" (%s)\n", #cond);                                                         \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

static void check_key(int k)
{
    mdx_rec_view_t v;
    int rc = mdx_get(coll, keybuf[k], keylen[k], &v);
    if (!live(k)) {
        CHECK(rc == MDX_ENOTFOUND, "key %d should be absent, got rc %d", k, rc);
        return;
    }
    CHECK(rc == 0, "key %d should be present, rc %d", k, rc);
    mdx_buf_t b;
    mdx_buf_init(&b);
    encode_body(model[k].pairs, model[k].npairs, &b);
    CHECK(v.body_len == b.len && memcmp(v.body, b.data, b.len) == 0, "key %d body differs", k);
    CHECK(v.expires_at == model[k].expires_at, "key %d expiry %lld vs %lld", k,
          (long long)v.expires_at, (long long)model[k].expires_at);
    mdx_buf_fini(&b);
}

static void check_all_keys(void)
{
    for (int k = 0; k < NKEYS; k++)
        check_key(k);
}

static void check_indexes(void)
{
    for (size_t i = 0; i < coll->nindexes; i++)
        CHECK(mdx__index_verify(coll, coll->indexes[i]) == 0, "index %s inconsistent",
              coll->indexes[i]->name);
    size_t live_idx = 0;
    for (int i = 0; i < nmidx_slots; i++)
        live_idx += midx[i].live;
    CHECK(mdx_index_count(coll) == live_idx, "index count");
}

/* ---- operations ---- */

static void op_put(void)
{
    int k = (int)rn(NKEYS);
    pair_t pairs[MAXPAIRS];
    int n;
    gen_pairs(pairs, &n, 1);
    mdx_buf_t b;
    mdx_buf_init(&b);
    encode_body(pairs, n, &b);
    mdx_put_opts_t o = {.mode = (mdx_put_mode_t)rn(3),
                        .ttl_ms = rn(4) == 0 ? (int64_t)rn(50) + 1 : 0,
                        .keep_ttl = rn(6) == 0};
    int expect;
    if (live(k) && o.mode == MDX_PUT_INSERT)
        expect = MDX_EEXISTS;
    else if (!live(k) && o.mode == MDX_PUT_REPLACE)
        expect = MDX_ENOTFOUND;
    else
        expect = expect_write(k, pairs, n);
    int rc = mdx_put(coll, keybuf[k], keylen[k], b.data, b.len, &o);
    CHECK(rc == expect, "put key %d mode %d: rc %d (%s), expected %d", k, o.mode, rc,
          mdx_store_errmsg(st), expect);
    if (rc == 0) {
        int64_t exp = 0;
        if (o.keep_ttl && live(k))
            exp = model[k].expires_at;
        else if (o.ttl_ms)
            exp = fake_now + o.ttl_ms;
        model[k].present = 1;
        model[k].expires_at = exp;
        memcpy(model[k].pairs, pairs, sizeof(pairs));
        model[k].npairs = n;
    }
    mdx_buf_fini(&b);
}

static void op_del(void)
{
    int k = (int)rn(NKEYS);
    int rc = mdx_del(coll, keybuf[k], keylen[k]);
    CHECK(rc == (live(k) ? 0 : MDX_ENOTFOUND), "del key %d rc %d", k, rc);
    model[k].present = 0;
}

static void op_update(void)
{
    int k = (int)rn(NKEYS);
    pair_t set[MAXPAIRS];
    int nset;
    gen_pairs(set, &nset, 1);
    if (rn(3) == 0)
        nset = 0;
    int unset_f[NFIELDS], nunset = 0;
    for (int f = 0; f < NFIELDS; f++)
        if (rn(4) == 0)
            unset_f[nunset++] = f;
    mdx_buf_t sb, ub;
    mdx_buf_init(&sb);
    mdx_buf_init(&ub);
    if (nset)
        encode_body(set, nset, &sb);
    if (nunset) {
        mdx_mp_put_array(&ub, (uint32_t)nunset);
        for (int i = 0; i < nunset; i++)
            mdx_mp_put_str(&ub, FIELDS[unset_f[i]], 1);
    }
    /* model's new body */
    pair_t np[MAXPAIRS * 2];
    int nn = 0, expect;
    if (!live(k)) {
        expect = MDX_ENOTFOUND;
    } else {
        for (int i = 0; i < model[k].npairs; i++) {
            const pair_t *p = &model[k].pairs[i];
            int listed = 0;
            for (int j = 0; j < nset; j++)
                listed |= strcmp(set[j].name, p->name) == 0;
            for (int j = 0; j < nunset; j++)
                listed |= strcmp(FIELDS[unset_f[j]], p->name) == 0;
            if (!listed)
                np[nn++] = *p;
        }
        for (int j = 0; j < nset; j++)
            np[nn++] = set[j];
        expect = expect_write(k, np, nn);
    }
    int rc = mdx_update(coll, keybuf[k], keylen[k], nset ? sb.data : NULL, sb.len,
                        nunset ? ub.data : NULL, ub.len);
    CHECK(rc == expect, "update key %d: rc %d (%s) expected %d", k, rc, mdx_store_errmsg(st),
          expect);
    if (rc == 0) {
        CHECK(nn <= MAXPAIRS, "too many pairs");
        memcpy(model[k].pairs, np, sizeof(pair_t) * (size_t)nn);
        model[k].npairs = nn;
    }
    mdx_buf_fini(&sb);
    mdx_buf_fini(&ub);
}

static unsigned dropped_slots; /* slots dropped since the last find */

static void op_index(void)
{
    int slot = (int)rn((unsigned)nmidx_slots);
    midx_t *m = &midx[slot];
    if (m->live) {
        CHECK(mdx_index_drop(coll, m->name) == 0, "drop index %s", m->name);
        m->live = 0;
        dropped_slots |= 1u << slot;
        int j = 0;
        for (int i = 0; i < ncreated; i++)
            if (create_order[i] != slot)
                create_order[j++] = create_order[i];
        ncreated = j;
        return;
    }
    snprintf(m->name, sizeof(m->name), "ix%d", slot);
    m->field = (int)rn(NFIELDS);
    m->kind = (mdx_index_kind_t)rn(2);
    m->unique = rn(4) == 0;
    /* expected: BADFIELD/NAN if any live record holds a bad value, UNIQUE on duplicates;
     * records are visited in hash order, so when both kinds of error exist either may come */
    int badfield = 0, nan = 0, dup = 0;
    for (int k = 0; k < NKEYS; k++) {
        if (!live(k))
            continue;
        mdx_value_t v, w;
        int got = pairs_value(model[k].pairs, model[k].npairs, m->field, &v);
        badfield |= got == -MDX_EBADFIELD;
        nan |= got == -MDX_ENAN;
        if (got != 1 || !m->unique)
            continue;
        for (int o = k + 1; o < NKEYS; o++)
            if (live(o) && pairs_value(model[o].pairs, model[o].npairs, m->field, &w) == 1 &&
                mdx_value_cmp(&v, &w) == 0)
                dup = 1;
    }
    int rc = mdx_index_create(coll, m->name, FIELDS[m->field], m->kind, m->unique);
    if (!badfield && !nan && !dup) {
        CHECK(rc == 0, "create index: rc %d (%s)", rc, mdx_store_errmsg(st));
        m->live = 1;
        create_order[ncreated++] = slot;
    } else {
        /* records are indexed in hash order, so any of the present errors may come first */
        CHECK((badfield && rc == MDX_EBADFIELD) || (nan && rc == MDX_ENAN) ||
                  (dup && rc == MDX_EUNIQUE),
              "create index: rc %d, expected an error (badfield %d nan %d dup %d)", rc, badfield,
              nan, dup);
    }
}

typedef struct {
    int keys[NKEYS + 1];
    int n;
} collect_t;

static int key_of_view(const mdx_rec_view_t *v)
{
    for (int k = 0; k < NKEYS; k++)
        if (keylen[k] == v->key_len && memcmp(keybuf[k], v->key, v->key_len) == 0)
            return k;
    return -1;
}

static int collect_cb(void *data, const mdx_rec_view_t *v)
{
    collect_t *c = data;
    c->keys[c->n++] = key_of_view(v);
    return 0;
}

typedef struct {
    int k;
    mdx_value_t v, pk;
} ent_t;

static int ent_cmp(const void *a, const void *b)
{
    const ent_t *x = a, *y = b;
    int c = mdx_value_cmp(&x->v, &y->v);
    return c ? c : mdx_value_cmp(&x->pk, &y->pk);
}

static void key_value(int k, mdx_value_t *out)
{
    assert_int_equal(mdx_value_decode(keybuf[k], keylen[k], out), 0);
}

/* A query that the next find may continue with its cursor. */
static struct {
    int valid;
    int slot;
    uint8_t eq[16], lo[16], hi[16];
    mdx_query_t q;
    uint8_t cursor[64];
    size_t cursor_len;
} last;

static void op_find(int counting)
{
    int slot = (int)rn((unsigned)nmidx_slots);
    mdx_query_t q;
    uint8_t eqb[16], lob[16], hib[16];
    if (dropped_slots & (1u << last.slot))
        last.valid = 0;
    dropped_slots = 0;
    int cont = !counting && last.valid && rn(2) == 0 && midx[last.slot].live;
    if (cont) {
        slot = last.slot;
        q = last.q;
        q.after = last.cursor;
        q.after_len = last.cursor_len;
        q.offset = 0;
    } else {
        memset(&q, 0, sizeof(q));
        if (midx[slot].live == 0) {
            q.index = "nosuch";
            q.limit = 5;
            uint64_t cnt;
            int rc = counting ? mdx_count(coll, &q, &cnt)
                              : mdx_find(coll, &q, NULL, NULL, &(mdx_find_result_t){0});
            CHECK(rc == MDX_ENOINDEX, "query on a missing index: rc %d", rc);
            return;
        }
        q.index = midx[slot].name;
        if (midx[slot].kind == MDX_INDEX_HASH || rn(4) == 0) {
            q.eq_len = gen_value(eqb, 0);
            q.eq = eqb;
        } else {
            q.lo_kind = (mdx_bound_t)rn(3);
            q.hi_kind = (mdx_bound_t)rn(3);
            q.lo_len = gen_value(lob, 0);
            q.hi_len = gen_value(hib, 0);
            q.lo = lob;
            q.hi = hib;
        }
        q.desc = (int)rn(2);
        q.limit = rn(40) == 0 ? 0 : rn(12) + 1;
        q.offset = rn(3) == 0 ? rn(8) : 0;
    }
    const midx_t *m = &midx[slot];

    /* expected */
    ent_t ents[NKEYS];
    int n = 0;
    mdx_value_t eq, lo, hi;
    if (q.eq)
        assert_int_equal(mdx_value_decode(q.eq, q.eq_len, &eq), 0);
    if (q.lo_kind)
        assert_int_equal(mdx_value_decode(q.lo, q.lo_len, &lo), 0);
    if (q.hi_kind)
        assert_int_equal(mdx_value_decode(q.hi, q.hi_len, &hi), 0);
    for (int k = 0; k < NKEYS; k++) {
        if (!live(k))
            continue;
        mdx_value_t v;
        if (pairs_value(model[k].pairs, model[k].npairs, m->field, &v) != 1)
            continue;
        if (q.eq && mdx_value_cmp(&v, &eq) != 0)
            continue;
        if (q.lo_kind == MDX_BOUND_INCL && mdx_value_cmp(&v, &lo) < 0)
            continue;
        if (q.lo_kind == MDX_BOUND_EXCL && mdx_value_cmp(&v, &lo) <= 0)
            continue;
        if (q.hi_kind == MDX_BOUND_INCL && mdx_value_cmp(&v, &hi) > 0)
            continue;
        if (q.hi_kind == MDX_BOUND_EXCL && mdx_value_cmp(&v, &hi) >= 0)
            continue;
        ents[n].k = k;
        ents[n].v = v;
        if (q.eq) /* a hash group orders by key only: compare values as equal */
            ents[n].v = eq;
        key_value(k, &ents[n].pk);
        n++;
    }
    qsort(ents, (size_t)n, sizeof(ents[0]), ent_cmp);

    if (counting) {
        uint64_t cnt = 0;
        int rc = mdx_count(coll, &q, &cnt);
        CHECK(rc == 0, "count rc %d (%s)", rc, mdx_store_errmsg(st));
        CHECK(cnt == (uint64_t)n, "count %llu expected %d", (unsigned long long)cnt, n);
        return;
    }

    collect_t got = {{0}, 0};
    mdx_find_result_t res;
    int rc = mdx_find(coll, &q, collect_cb, &got, &res);
    if (q.limit == 0) {
        CHECK(rc == MDX_EBADLIMIT, "limit 0: rc %d", rc);
        last.valid = 0;
        return;
    }
    CHECK(rc == 0, "find rc %d (%s)", rc, mdx_store_errmsg(st));

    /* apply the cursor, direction, offset and limit to the model's sorted list */
    int order[NKEYS], no = 0;
    ent_t cur;
    if (q.after) {
        const uint8_t *p = q.after, *end = q.after + q.after_len;
        mdx_mp_tok_t t, a, b;
        assert_int_equal(mdx_mp_read(&p, end, &t), 0);
        assert_int_equal(mdx_mp_read(&p, end, &a), 0);
        assert_int_equal(mdx_mp_read(&p, end, &b), 0);
        assert_int_equal(mdx_value_from_tok(&a, &cur.v), 0);
        assert_int_equal(mdx_value_from_tok(&b, &cur.pk), 0);
    }
    for (int i = 0; i < n; i++) {
        int idx = q.desc ? n - 1 - i : i;
        if (q.after) {
            int c = ent_cmp(&ents[idx], &cur);
            if (q.desc ? c >= 0 : c <= 0)
                continue;
        }
        order[no++] = ents[idx].k;
    }
    int first = (int)(q.offset < (uint64_t)no ? q.offset : (uint64_t)no);
    int cnt = no - first < (int)q.limit ? no - first : (int)q.limit;
    CHECK(got.n == cnt, "find returned %d, expected %d", got.n, cnt);
    for (int i = 0; i < cnt; i++)
        CHECK(got.keys[i] == order[first + i], "find result %d: key %d expected %d", i, got.keys[i],
              order[first + i]);
    CHECK(res.returned == (uint64_t)cnt, "returned");
    CHECK(res.more == (first + cnt < no), "more flag %d", res.more);
    if (res.more) {
        CHECK(res.cursor_len > 0 && res.cursor_len <= sizeof(last.cursor), "cursor length");
        memcpy(last.cursor, res.cursor, res.cursor_len);
        last.cursor_len = res.cursor_len;
        last.q = q;
        last.slot = slot;
        if (!cont) {
            /* keep copies of the bounds for the continuation */
            memcpy(last.eq, eqb, sizeof(eqb));
            memcpy(last.lo, lob, sizeof(lob));
            memcpy(last.hi, hib, sizeof(hib));
            last.q.eq = q.eq ? last.eq : NULL;
            last.q.lo = q.lo ? last.lo : NULL;
            last.q.hi = q.hi ? last.hi : NULL;
        }
        last.valid = 1;
    } else {
        last.valid = 0;
    }
}

static void op_ttl(void)
{
    int k = (int)rn(NKEYS);
    unsigned r = rn(3);
    int rc;
    if (r == 0) {
        int64_t ttl = (int64_t)rn(60) + 1;
        rc = mdx_ttl_set(coll, keybuf[k], keylen[k], ttl);
        CHECK(rc == (live(k) ? 0 : MDX_ENOTFOUND), "ttl_set rc %d", rc);
        if (rc == 0)
            model[k].expires_at = fake_now + ttl;
    } else if (r == 1) {
        rc = mdx_ttl_clear(coll, keybuf[k], keylen[k]);
        CHECK(rc == (live(k) ? 0 : MDX_ENOTFOUND), "ttl_clear rc %d", rc);
        if (rc == 0)
            model[k].expires_at = 0;
    } else {
        int64_t rem = 0;
        rc = mdx_ttl_get(coll, keybuf[k], keylen[k], &rem);
        CHECK(rc == (live(k) ? 0 : MDX_ENOTFOUND), "ttl_get rc %d", rc);
        if (rc == 0)
            CHECK(rem == (model[k].expires_at ? model[k].expires_at - fake_now : -1),
                  "ttl_get remaining %lld", (long long)rem);
    }
}

static void op_clock(void)
{
    fake_now += rn(10);
    if (rn(3) == 0) {
        uint64_t freed = 0;
        mdx_store_expire(st, rn(4), 0, &freed);
    }
}

static void phase_check(void)
{
    check_indexes();
    uint64_t freed;
    while (mdx_store_expire(st, 0, 0, &freed))
        ;
    uint64_t nlive = 0;
    for (int k = 0; k < NKEYS; k++)
        nlive += (uint64_t)live(k);
    CHECK(mdx_coll_records(coll) == nlive, "records %llu expected %llu",
          (unsigned long long)mdx_coll_records(coll), (unsigned long long)nlive);
    check_indexes();
}

static void test_model_random_ops(void **state)
{
    (void)state;
    const char *s = getenv("MDX_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 0) : 0x5eed5eedULL;
    const char *o = getenv("MDX_MODEL_OPS");
    uint64_t ops = o ? strtoull(o, NULL, 0) : 200000;
    if (!seed)
        seed = 1;
    rng_state = seed;
    printf("model test: seed %llu (set MDX_SEED to repeat), %llu operations\n",
           (unsigned long long)seed, (unsigned long long)ops);
    fflush(stdout);

    mdx_store_opts_t opts = {.clock = fake_clock, .max_limit = 1000};
    assert_int_equal(mdx_store_new(&opts, &st), 0);
    assert_int_equal(mdx_coll_create(st, "m", &coll), 0);
    make_keys();

    for (op_no = 0; op_no < ops; op_no++) {
        unsigned r = rn(100);
        if (r < 30)
            op_put();
        else if (r < 40)
            op_del();
        else if (r < 52)
            op_update();
        else if (r < 70)
            op_find(0);
        else if (r < 78)
            op_find(1);
        else if (r < 86)
            op_ttl();
        else if (r < 97)
            op_clock();
        else if (r < 98 || mdx_index_count(st->colls[0]) == 0)
            op_index();
        else
            check_key((int)rn(NKEYS));
        check_all_keys();
        if (op_no % 2000 == 1999)
            phase_check();
    }
    phase_check();
    mdx_store_free(st);
    assert_int_equal(mdx_alloc_used(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_random_ops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
