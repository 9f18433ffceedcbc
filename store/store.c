/*
 * The store: options, the clock, error messages, the collection registry, key handling and
 * statistics. Collections live in a small array searched by name: a store has few of them and
 * a request names one, so a linear scan of short names costs less than hashing.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>

#include "common/alloc.h"
#include "memdex/snapshot.h"
#include "store/store_int.h"

static int64_t realtime_ms(void *data)
{
    (void)data;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int mdx__err(mdx_store_t *st, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->errmsg, sizeof(st->errmsg), fmt, ap);
    va_end(ap);
    return code;
}

const char *mdx_store_errmsg(const mdx_store_t *st)
{
    return st->errmsg;
}

int64_t mdx_store_now(const mdx_store_t *st)
{
    return st->opts.clock(st->opts.clock_data);
}

int mdx_store_new(const mdx_store_opts_t *opts, mdx_store_t **out)
{
    if (opts && opts->max_key > MDX_KEY_LIMIT)
        return MDX_EINVAL;
    mdx_store_t *st = mdx_calloc(1, sizeof(*st));
    if (!st)
        return MDX_ENOMEM;
    if (opts)
        st->opts = *opts;
    if (!st->opts.clock)
        st->opts.clock = realtime_ms;
    if (!st->opts.max_key)
        st->opts.max_key = MDX_DEFAULT_MAX_KEY;
    if (!st->opts.max_body)
        st->opts.max_body = MDX_DEFAULT_MAX_BODY;
    if (!st->opts.max_limit)
        st->opts.max_limit = MDX_DEFAULT_MAX_LIMIT;
    if ((unsigned)st->opts.policy > MDX_EVICT_LRU) {
        mdx_free(st);
        return MDX_EINVAL;
    }
    if (st->opts.policy == MDX_EVICT_DEFAULT)
        st->opts.policy = MDX_EVICT_S3FIFO;
    static const struct {
        const char *name;
        int64_t ms;
    } classes[] = {
        {"short", 60000}, {"medium", 600000}, {"long", 3600000}, {"very_long", 86400000}};
    for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
        (void)mdx_ttl_class_set(st, classes[i].name, classes[i].ms);
    mdx_buf_init(&st->cursor);
    *out = st;
    return 0;
}

static void coll_free(mdx_coll_t *c)
{
    mdx__coll_free_records(c);
    for (size_t i = 0; i < c->nindexes; i++)
        mdx__index_free(c, c->indexes[i]);
    mdx__tags_free(c);
    mdx__lease_free(c);
    mdx__ghost_free(&c->ghost);
    mdx_htab_fini(&c->primary);
    mdx_free(c->heap);
    mdx_free(c);
}

void mdx_store_free(mdx_store_t *st)
{
    if (!st)
        return;
    if (st->snap)
        mdx_snapshot_finish(st->snap, NULL); /* abandons it: the store is going away */
    for (size_t i = 0; i < st->ncolls; i++)
        coll_free(st->colls[i]);
    mdx_free(st->colls);
    mdx_buf_fini(&st->cursor);
    mdx_free(st);
}

int mdx__check_name(const char *name, size_t len)
{
    if (len == 0 || len > MDX_NAME_MAX)
        return MDX_EBADNAME;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '_' || ch == '-' || ch == '.';
        if (!ok)
            return MDX_EBADNAME;
    }
    return 0;
}

static int coll_index(const mdx_store_t *st, const char *name, size_t len)
{
    for (size_t i = 0; i < st->ncolls; i++) {
        const char *n = st->colls[i]->name;
        if (strncmp(n, name, len) == 0 && n[len] == '\0')
            return (int)i;
    }
    return -1;
}

int mdx_coll_find(mdx_store_t *st, const char *name, size_t len, mdx_coll_t **out)
{
    int i = len <= MDX_NAME_MAX ? coll_index(st, name, len) : -1;
    if (i < 0)
        return mdx__err(st, MDX_ENOCOLL, "no collection named '%.*s'",
                        (int)(len > MDX_NAME_MAX ? MDX_NAME_MAX : len), name);
    *out = st->colls[i];
    return 0;
}

int mdx_coll_create(mdx_store_t *st, const char *name, mdx_coll_t **out)
{
    size_t len = strnlen(name, MDX_NAME_MAX + 1);
    if (mdx__check_name(name, len))
        return mdx__err(st, MDX_EBADNAME,
                        "bad collection name '%.*s': use 1 to %d of A-Z a-z 0-9 _ - .",
                        (int)(len > MDX_NAME_MAX ? MDX_NAME_MAX : len), name, MDX_NAME_MAX);
    if (coll_index(st, name, len) >= 0)
        return mdx__err(st, MDX_ECOLLEXISTS, "collection '%s' already exists", name);
    if (st->ncolls >= MDX_MAX_COLLECTIONS)
        return mdx__err(st, MDX_ETOOBIG, "too many collections (limit %d)", MDX_MAX_COLLECTIONS);
    if (st->ncolls == st->colls_cap) {
        size_t cap = st->colls_cap ? st->colls_cap * 2 : 8;
        mdx_coll_t **a = mdx_realloc(st->colls, cap * sizeof(*a));
        if (!a)
            return mdx__err(st, MDX_ENOMEM, "out of memory creating collection '%s'", name);
        st->colls = a;
        st->colls_cap = cap;
    }
    mdx_coll_t *c = mdx_calloc(1, sizeof(*c));
    if (!c)
        return mdx__err(st, MDX_ENOMEM, "out of memory creating collection '%s'", name);
    memcpy(c->name, name, len + 1);
    c->store = st;
    c->snap_idx = -1;
    c->mem = mdx_alloc_size(c); /* the collection's own block counts toward the limit */
    st->mem += c->mem;
    mdx_htab_init(&c->primary);
    mdx_htab_init(&c->tags);
    mdx_htab_init(&c->leases);
    st->colls[st->ncolls++] = c;
    if (out)
        *out = c;
    return 0;
}

static void add_counters(mdx_counters_t *to, const mdx_counters_t *from)
{
    to->puts += from->puts;
    to->gets += from->gets;
    to->deletes += from->deletes;
    to->updates += from->updates;
    to->finds += from->finds;
    to->counts += from->counts;
    to->scans += from->scans;
    to->hits += from->hits;
    to->misses += from->misses;
    to->expired += from->expired;
    to->errors += from->errors;
    to->evicted_memory += from->evicted_memory;
    to->evicted_capacity += from->evicted_capacity;
    to->invalidated += from->invalidated;
    to->invalidations += from->invalidations;
    to->oom += from->oom;
}

int mdx_coll_drop(mdx_store_t *st, const char *name)
{
    int i = coll_index(st, name, strnlen(name, MDX_NAME_MAX + 1));
    if (i < 0)
        return mdx__err(st, MDX_ENOCOLL, "no collection named '%.*s'", MDX_NAME_MAX, name);
    mdx_coll_t *c = st->colls[i];
    mdx__snap_coll_drop(c);
    add_counters(&st->dropped_ops, &c->ops);
    memmove(&st->colls[i], &st->colls[i + 1], (st->ncolls - (size_t)i - 1) * sizeof(*st->colls));
    st->ncolls--;
    if (st->expire_next > (size_t)i)
        st->expire_next--;
    st->mem -= c->mem;
    coll_free(c);
    return 0;
}

size_t mdx_coll_count(const mdx_store_t *st)
{
    return st->ncolls;
}

mdx_coll_t *mdx_coll_at(const mdx_store_t *st, size_t i)
{
    return i < st->ncolls ? st->colls[i] : NULL;
}

const char *mdx_coll_name(const mdx_coll_t *c)
{
    return c->name;
}

uint64_t mdx_coll_records(const mdx_coll_t *c)
{
    return mdx_htab_count(&c->primary);
}

/* ---- keys ---- */

int mdx__key_canon(const mdx_store_t *st, const uint8_t *key, size_t len, uint8_t *out,
                   size_t *out_len)
{
    const uint8_t *p = key;
    mdx_mp_tok_t t;
    if (!key || mdx_mp_read(&p, key + len, &t) || p != key + len)
        return MDX_EBADKEY;
    switch (t.type) {
    case MDX_MP_INT:
        *out_len = mdx_mp_enc_int(out, t.v.i);
        return 0;
    case MDX_MP_UINT:
        *out_len = mdx_mp_enc_uint(out, t.v.u);
        return 0;
    case MDX_MP_STR:
    case MDX_MP_BIN: {
        if (t.len > st->opts.max_key)
            return MDX_ETOOBIG;
        size_t h = t.type == MDX_MP_STR ? mdx_mp_enc_str_header(out, t.len)
                                        : mdx_mp_enc_bin_header(out, t.len);
        memcpy(out + h, t.v.ptr, t.len);
        *out_len = h + t.len;
        return 0;
    }
    default:
        return MDX_EBADKEY;
    }
}

int mdx__key_prep(mdx_coll_t *c, const uint8_t *key, size_t key_len, uint8_t *ckey, size_t *klen,
                  uint64_t *hash)
{
    int rc = mdx__key_canon(c->store, key, key_len, ckey, klen);
    if (rc == MDX_ETOOBIG)
        return mdx__err(c->store, rc, "key longer than %u bytes for collection '%s'",
                        c->store->opts.max_key, c->name);
    if (rc)
        return mdx__err(c->store, rc,
                        "key for collection '%s' must be one msgpack integer, string or binary",
                        c->name);
    *hash = mdx__key_hash(ckey, *klen);
    return 0;
}

uint64_t mdx__key_hash(const uint8_t *ckey, size_t len)
{
    return XXH3_64bits(ckey, len);
}

void mdx__rec_pk(const void *rec, mdx_value_t *out)
{
    const mdx_rec_t *r = rec;
    const uint8_t *p = rec_key(r);
    mdx_mp_tok_t t;
    /* Canonical keys were validated on the way in. */
    (void)mdx_mp_read(&p, p + r->key_len, &t);
    (void)mdx_value_from_tok(&t, out);
}

static int key_eq(const mdx_hnode_t *n, const void *key)
{
    const mdx_rec_t *r = (const mdx_rec_t *)n;
    const struct {
        const uint8_t *p;
        size_t len;
    } *k = key;
    return r->key_len == k->len && memcmp(rec_key(r), k->p, k->len) == 0;
}

mdx_rec_t *mdx__rec_lookup(mdx_coll_t *c, const uint8_t *ckey, size_t len, uint64_t hash)
{
    struct {
        const uint8_t *p;
        size_t len;
    } k = {ckey, len};
    return (mdx_rec_t *)mdx_htab_find(&c->primary, hash, key_eq, &k);
}

void mdx__rec_view(const mdx_rec_t *r, mdx_rec_view_t *v)
{
    v->key = rec_key(r);
    v->key_len = r->key_len;
    v->body = rec_body(r);
    v->body_len = r->body_len;
    v->expires_at = r->expires_at;
}

size_t mdx_key_int(uint8_t out[9], int64_t v)
{
    return mdx_mp_enc_int(out, v);
}

size_t mdx_key_str(uint8_t *out, const char *s, size_t len)
{
    size_t h = mdx_mp_enc_str_header(out, (uint32_t)len);
    memcpy(out + h, s, len);
    return h + len;
}

/* ---- stats ---- */

void mdx_coll_stats(const mdx_coll_t *c, mdx_coll_stats_t *out)
{
    out->records = mdx_htab_count(&c->primary);
    out->memory = c->mem;
    out->ops = c->ops;
    out->capacity = c->opts.capacity;
    out->policy = mdx_coll_policy(c);
    out->pending = c->pending;
}

void mdx_store_stats(const mdx_store_t *st, mdx_store_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    out->collections = st->ncolls;
    out->ops = st->dropped_ops;
    for (size_t i = 0; i < st->ncolls; i++) {
        mdx_coll_stats_t cs;
        mdx_coll_stats(st->colls[i], &cs);
        out->records += cs.records;
        out->memory += cs.memory;
        out->pending += cs.pending;
        add_counters(&out->ops, &cs.ops);
    }
    out->maxmemory = st->opts.maxmemory;
    out->policy = st->opts.policy;
    out->allocated = mdx_alloc_used();
    out->allocator_bytes = mdx_alloc_allocator_bytes();
}

/* ---- TTL classes ---- */

int mdx_ttl_class_set(mdx_store_t *st, const char *name, int64_t ttl_ms)
{
    size_t len = strnlen(name, MDX_NAME_MAX + 1);
    if (mdx__check_name(name, len) || (len == 4 && memcmp(name, "none", 4) == 0))
        return mdx__err(st, MDX_EBADNAME, "bad ttl class name '%.*s'", MDX_NAME_MAX, name);
    if (ttl_ms <= 0)
        return mdx__err(st, MDX_EINVAL, "ttl class '%s' needs a ttl > 0 ms", name);
    size_t i = 0;
    while (i < st->nttl_classes && strcmp(st->ttl_classes[i].name, name) != 0)
        i++;
    if (i == MDX_TTL_CLASSES_MAX)
        return mdx__err(st, MDX_ETOOBIG, "too many ttl classes (limit %d)", MDX_TTL_CLASSES_MAX);
    if (i == st->nttl_classes) {
        memcpy(st->ttl_classes[i].name, name, len + 1);
        st->nttl_classes++;
    }
    st->ttl_classes[i].ttl_ms = ttl_ms;
    return 0;
}

int mdx_ttl_class_get(mdx_store_t *st, const char *name, size_t len, int64_t *ttl_ms)
{
    if (len == 4 && memcmp(name, "none", 4) == 0) {
        *ttl_ms = 0;
        return 0;
    }
    for (size_t i = 0; i < st->nttl_classes; i++) {
        const char *n = st->ttl_classes[i].name;
        if (strncmp(n, name, len) == 0 && n[len] == '\0') {
            *ttl_ms = st->ttl_classes[i].ttl_ms;
            return 0;
        }
    }
    return mdx__err(st, MDX_EINVAL, "unknown ttl class '%.*s'",
                    (int)(len > MDX_NAME_MAX ? MDX_NAME_MAX : len), name);
}

size_t mdx_ttl_class_count(const mdx_store_t *st)
{
    return st->nttl_classes;
}

const char *mdx_ttl_class_at(const mdx_store_t *st, size_t i, int64_t *ttl_ms)
{
    if (i >= st->nttl_classes)
        return NULL;
    if (ttl_ms)
        *ttl_ms = st->ttl_classes[i].ttl_ms;
    return st->ttl_classes[i].name;
}
