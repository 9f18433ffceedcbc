/*
 * Unit tests for protocol/request.c: mdx_request_decode and the op/argument tables.
 *
 * The schema of every op is written out again here, independently of the implementation, and
 * each op is decoded with its required arguments, with all its optional ones, in two argument
 * orders, checking every decoded value exactly. Every proper prefix of every valid payload is
 * decoded from the end of an exact-size heap block (ASan reports any over-read) and must fail
 * with MDX_EPROTO. Each documented error case has its code and message checked. A randomized
 * mutation test (seed printed; MDX_SEED replays) checks that decoding never misbehaves and that
 * whatever decodes re-encodes to the same request.
 */
#include "tests/unit/protocol/helpers.h"

#include "memdex/store.h"

/* u of "mode" and "kind" uses the engine's numbering, so the server can cast it. */
_Static_assert(MDX_PUT_UPSERT == 0 && MDX_PUT_INSERT == 1 && MDX_PUT_REPLACE == 2, "mode");
_Static_assert(MDX_INDEX_HASH == 0 && MDX_INDEX_SKIPLIST == 1, "kind");
_Static_assert(MDX_PROTO_MAX_STR == MDX_FIELD_MAX, "field names fit a STR argument");

#define BIT(a) (UINT64_C(1) << (a))

/* ---- the schema, as the protocol document states it ---- */

static const struct {
    const char *op;
    int idempotent;
    const char *required;
    const char *optional;
} schema[] = {
    {"hello", 1, "", "protocol client"},
    {"ping", 1, "", ""},
    {"create_collection", 0, "name", "capacity policy default_ttl_ms default_ttl"},
    {"drop_collection", 0, "name", ""},
    {"list_collections", 1, "", ""},
    {"create_index", 0, "coll name field kind", "unique"},
    {"drop_index", 0, "coll name", ""},
    {"list_indexes", 1, "coll", ""},
    {"put", 0, "coll key body", "mode ttl_ms keep_ttl ttl_class tags lease"},
    {"get", 1, "coll key", "with_tags"},
    {"mget", 1, "coll keys", "with_tags"},
    {"delete", 0, "coll key", ""},
    {"update", 0, "coll key", "set unset"},
    {"find", 1, "coll index", "eq ge gt le lt desc limit offset after"},
    {"count", 1, "coll index", "eq ge gt le lt"},
    {"scan", 1, "coll", "cursor limit"},
    {"ttl_set", 1, "coll key", "ttl_ms ttl_class"},
    {"ttl_get", 1, "coll key", ""},
    {"ttl_clear", 1, "coll key", ""},
    {"stats", 1, "", ""},
    {"snapshot", 0, "", ""},
    {"configure_collection", 1, "name", "capacity policy default_ttl_ms default_ttl"},
    {"invalidate", 0, "tags", "coll"},
    {"get_lease", 0, "coll key lease_ms", "with_tags"},
};
#define NOPS (sizeof schema / sizeof schema[0])

static int arg_by_name(const char *s, size_t n)
{
    for (int a = 0; a < MDX_ARG__COUNT; a++) {
        const char *an = mdx_arg_name((mdx_arg_t)a);
        if (strlen(an) == n && memcmp(an, s, n) == 0)
            return a;
    }
    return -1;
}

static uint64_t parse_mask(const char *list)
{
    uint64_t m = 0;
    while (*list) {
        size_t n = strcspn(list, " ");
        if (n) {
            int a = arg_by_name(list, n);
            assert_true(a >= 0);
            m |= BIT(a);
        }
        list += n + (list[n] == ' ');
    }
    return m;
}

/* ---- sample values, one per argument, with what decoding must give back ---- */

static const char *sample_str(mdx_arg_t a)
{
    switch (a) {
    case MDX_ARG_COLL:
        return "users";
    case MDX_ARG_NAME:
    case MDX_ARG_INDEX:
        return "by_age";
    case MDX_ARG_FIELD:
        return "age";
    case MDX_ARG_KIND:
        return "skiplist";
    case MDX_ARG_MODE:
        return "replace";
    case MDX_ARG_CLIENT:
        return "memdex-test/1.0";
    case MDX_ARG_TTL_CLASS:
        return "short";
    case MDX_ARG_POLICY:
        return "sieve";
    case MDX_ARG_DEFAULT_TTL:
        return "very_long";
    default:
        return NULL;
    }
}

static uint64_t sample_u(mdx_arg_t a)
{
    switch (a) {
    case MDX_ARG_KIND:
        return 1;
    case MDX_ARG_MODE:
        return 2;
    case MDX_ARG_TTL_MS:
        return 60000;
    case MDX_ARG_LIMIT:
        return 50;
    case MDX_ARG_OFFSET:
        return UINT64_C(1) << 40;
    case MDX_ARG_CURSOR:
        return UINT64_MAX;
    case MDX_ARG_PROTOCOL:
        return 1;
    case MDX_ARG_KEEP_TTL:
    case MDX_ARG_DESC:
    case MDX_ARG_WITH_TAGS:
        return 1;
    case MDX_ARG_CAPACITY:
        return 100000;
    case MDX_ARG_DEFAULT_TTL_MS:
        return 3600000;
    default:
        return 0;
    }
}

static void put_sample(mdx_buf_t *b, mdx_arg_t a)
{
    const char *s = sample_str(a);
    if (s) {
        put_cstr(b, s);
        return;
    }
    switch (a) {
    case MDX_ARG_KEY:
        put_cstr(b, "user:1");
        break;
    case MDX_ARG_KEYS:
        mdx_mp_put_array(b, 4);
        mdx_mp_put_int(b, 1);
        put_cstr(b, "two");
        mdx_mp_put_bin(b, "\x03", 1);
        mdx_mp_put_int(b, -4);
        break;
    case MDX_ARG_BODY:
        mdx_mp_put_map(b, 3);
        put_cstr(b, "name");
        put_cstr(b, "ann");
        put_cstr(b, "age");
        mdx_mp_put_int(b, 31);
        put_cstr(b, "tags");
        mdx_mp_put_array(b, 2);
        put_cstr(b, "a");
        mdx_mp_put_map(b, 0);
        break;
    case MDX_ARG_SET:
        mdx_mp_put_map(b, 1);
        put_cstr(b, "age");
        mdx_mp_put_int(b, 32);
        break;
    case MDX_ARG_UNSET:
        mdx_mp_put_array(b, 2);
        put_cstr(b, "tags");
        put_cstr(b, "nick");
        break;
    case MDX_ARG_EQ:
        mdx_mp_put_int(b, 31);
        break;
    case MDX_ARG_GE:
        mdx_mp_put_double(b, 1.5);
        break;
    case MDX_ARG_GT:
        mdx_mp_put_nil(b);
        break;
    case MDX_ARG_LE:
        put_cstr(b, "zz");
        break;
    case MDX_ARG_LT:
        mdx_mp_put_bin(b, "\xff", 1);
        break;
    case MDX_ARG_AFTER:
        mdx_mp_put_array(b, 2);
        mdx_mp_put_int(b, 31);
        put_cstr(b, "user:1");
        break;
    case MDX_ARG_KEEP_TTL:
    case MDX_ARG_DESC:
    case MDX_ARG_WITH_TAGS:
        mdx_mp_put_bool(b, 1);
        break;
    case MDX_ARG_TAGS:
        mdx_mp_put_array(b, 2);
        put_cstr(b, "team:7");
        put_cstr(b, "user:1");
        break;
    case MDX_ARG_UNIQUE:
        mdx_mp_put_bool(b, 0);
        break;
    default:
        mdx_mp_put_uint(b, sample_u(a));
        break;
    }
}

/* Encodes [id, op, args] with the arguments of mask, in enum order or reversed, and `extra`
 * (already-encoded pairs) at the end. Returns the mark of the frame in b. */
static size_t build(mdx_buf_t *b, uint64_t id, const char *op, uint64_t mask, int reversed,
                    const uint8_t *extra, size_t extra_len, uint32_t extra_pairs)
{
    size_t mark = rq_begin(b, id, op, (uint32_t)__builtin_popcountll(mask) + extra_pairs);
    for (int i = 0; i < MDX_ARG__COUNT; i++) {
        int a = reversed ? MDX_ARG__COUNT - 1 - i : i;
        if (mask & BIT(a)) {
            mdx_req_arg(b, (mdx_arg_t)a);
            put_sample(b, (mdx_arg_t)a);
        }
    }
    mdx_buf_append(b, extra, extra_len);
    rq_end(b, mark);
    return mark;
}

static uint8_t *sample_bytes(mdx_arg_t a, size_t *len)
{
    mdx_buf_t v;
    mdx_buf_init(&v);
    put_sample(&v, a);
    *len = v.len;
    return v.data;
}

/* Decodes the payload from an exact-size heap copy. */
static int decode(const uint8_t *pl, size_t len, mdx_request_t *req, char *err, size_t errlen)
{
    uint8_t *copy = tail_copy(pl, len);
    int rc = mdx_request_decode(copy, len, req, err, errlen);
    /* Views must point into the payload: re-aim them at the original for the caller. */
    if (rc == 0)
        for (int a = 0; a < MDX_ARG__COUNT; a++) {
            mdx_argval_t *v = &req->args[a];
            if (v->raw) {
                CK(v->raw >= copy && v->raw + v->raw_len <= copy + len);
                v->raw = pl + (v->raw - copy);
            }
            if (v->str) {
                CK((const uint8_t *)v->str >= copy &&
                   (const uint8_t *)v->str + v->len <= copy + len);
                v->str = (const char *)pl + ((const uint8_t *)v->str - copy);
            }
        }
    tail_free(copy, len);
    return rc;
}

static void check_decoded(const mdx_request_t *req, uint64_t id, mdx_op_t op, uint64_t mask)
{
    CKI(req->id, id);
    CKI(req->op, op);
    CK(req->present == mask);
    size_t base = strlen(ctx);
    for (int a = 0; a < MDX_ARG__COUNT; a++) {
        const mdx_argval_t *v = &req->args[a];
        CKI(mdx_req_has(req, (mdx_arg_t)a), (mask >> a) & 1);
        if (!(mask & BIT(a))) {
            CK(v->raw == NULL && v->raw_len == 0 && v->str == NULL && v->len == 0 && v->u == 0);
            continue;
        }
        size_t elen;
        uint8_t *exp = sample_bytes((mdx_arg_t)a, &elen);
        snprintf(ctx + strlen(ctx), sizeof ctx - strlen(ctx), " [arg %s]",
                 mdx_arg_name((mdx_arg_t)a));
        CKI(v->raw_len, elen);
        CK(memcmp(v->raw, exp, elen) == 0);
        const char *s = sample_str((mdx_arg_t)a);
        if (s) {
            CKI(v->len, strlen(s));
            CK(memcmp(v->str, s, v->len) == 0);
        } else {
            CK(v->str == NULL);
        }
        CK(v->u == sample_u((mdx_arg_t)a));
        mdx_free(exp);
        ctx[base] = '\0';
    }
}

/* The argument sets each op is tried with, all valid. */
static size_t valid_masks(size_t op, uint64_t out[4])
{
    uint64_t req = parse_mask(schema[op].required), opt = parse_mask(schema[op].optional);
    uint64_t range =
        BIT(MDX_ARG_EQ) | BIT(MDX_ARG_GE) | BIT(MDX_ARG_GT) | BIT(MDX_ARG_LE) | BIT(MDX_ARG_LT);
    size_t n = 0;
    if (op == MDX_OP_UPDATE) {
        out[n++] = req | BIT(MDX_ARG_SET);
        out[n++] = req | BIT(MDX_ARG_UNSET);
        out[n++] = req | opt;
    } else if (op == MDX_OP_FIND || op == MDX_OP_COUNT) {
        out[n++] = req;
        out[n++] = req | (opt & ~(BIT(MDX_ARG_EQ) | BIT(MDX_ARG_GT) | BIT(MDX_ARG_LT)));
        out[n++] = req | (opt & ~(range & ~BIT(MDX_ARG_EQ)));
        out[n++] = req | BIT(MDX_ARG_GT) | BIT(MDX_ARG_LT);
    } else if (op == MDX_OP_TTL_SET) { /* exactly one of ttl_ms, ttl_class */
        out[n++] = req | BIT(MDX_ARG_TTL_MS);
        out[n++] = req | BIT(MDX_ARG_TTL_CLASS);
    } else if (op == MDX_OP_PUT) { /* ttl_ms and ttl_class exclude each other */
        out[n++] = req;
        out[n++] = req | (opt & ~BIT(MDX_ARG_TTL_CLASS));
        out[n++] = req | (opt & ~BIT(MDX_ARG_TTL_MS));
    } else if (op == MDX_OP_CREATE_COLLECTION || op == MDX_OP_CONFIGURE_COLLECTION) {
        if (op == MDX_OP_CREATE_COLLECTION)
            out[n++] = req;
        else /* configure needs one option at least */
            out[n++] = req | BIT(MDX_ARG_CAPACITY);
        out[n++] = req | (opt & ~BIT(MDX_ARG_DEFAULT_TTL));
        out[n++] = req | (opt & ~BIT(MDX_ARG_DEFAULT_TTL_MS));
    } else {
        out[n++] = req;
        if (opt)
            out[n++] = req | opt;
    }
    return n;
}

/* ---- tables ---- */

static void op_and_arg_tables_match_the_documented_schema(void **state)
{
    (void)state;
    assert_int_equal(NOPS, MDX_OP__COUNT);
    for (size_t i = 0; i < NOPS; i++) {
        snprintf(ctx, sizeof ctx, "op %s", schema[i].op);
        CKS(mdx_op_name((mdx_op_t)i), schema[i].op);
        CKI(mdx_op_idempotent((mdx_op_t)i), schema[i].idempotent);
        uint64_t req = parse_mask(schema[i].required);
        CK(mdx_op_required((mdx_op_t)i) == req);
        CK(mdx_op_allowed((mdx_op_t)i) == (req | parse_mask(schema[i].optional)));
    }
    snprintf(ctx, sizeof ctx, "out of range");
    CK(mdx_op_name(MDX_OP__COUNT) == NULL);
    CK(mdx_op_name((mdx_op_t)-1) == NULL);
    CKI(mdx_op_required(MDX_OP__COUNT), 0);
    CKI(mdx_op_allowed(MDX_OP__COUNT), 0);
    CK(mdx_arg_name(MDX_ARG__COUNT) == NULL);
    CKS(mdx_arg_name(MDX_ARG_TTL_MS), "ttl_ms");
    CKS(mdx_arg_name(MDX_ARG_CLIENT), "client");
}

/* ---- valid requests ---- */

static void every_op_decodes_to_exact_values(void **state)
{
    (void)state;
    mdx_buf_t b;
    mdx_buf_init(&b);
    uint64_t id = 1;
    for (size_t op = 0; op < NOPS; op++) {
        uint64_t masks[4];
        size_t nm = valid_masks(op, masks);
        for (size_t m = 0; m < nm; m++)
            for (int rev = 0; rev < 2; rev++) {
                /* ids of every encoded width, up to 2^64-1 */
                id = id * 37 + 11;
                uint64_t rid = (m == 1 && rev) ? UINT64_MAX
                               : op * 3 < 64   ? id % (UINT64_C(1) << (op * 3))
                                               : id;
                b.len = 0;
                size_t mark = build(&b, rid, schema[op].op, masks[m], rev, NULL, 0, 0);
                size_t len;
                const uint8_t *pl = rq_payload(&b, mark, &len);
                snprintf(ctx, sizeof ctx, "%s, args %#" PRIx64 "%s", schema[op].op, masks[m],
                         rev ? " reversed" : "");
                mdx_request_t req;
                char err[256] = "untouched";
                CKI(decode(pl, len, &req, err, sizeof err), 0);
                CKS(err, "");
                check_decoded(&req, rid, (mdx_op_t)op, masks[m]);
            }
    }
    mdx_buf_fini(&b);
}

static void scalar_key_and_uint_variants_decode(void **state)
{
    (void)state;
    /* [9, "find", {"coll": "c", "index": "i", "eq": V}] for every scalar V, and the same as
     * the key of a get; a UINT at both ends of its range. */
    static const struct {
        const char *hex;
        int scalar, key;
    } vals[] = {
        {"c0", 1, 0},
        {"c2", 1, 0},
        {"c3", 1, 0},
        {"00", 1, 1},
        {"e0", 1, 1},
        {"d3"
         "8000000000000000",
         1, 1},
        {"cf"
         "ffffffffffffffff",
         1, 1},
        {"ca"
         "3fc00000",
         1, 0},
        {"cb"
         "3ff8000000000000",
         1, 0},
        {"a0", 1, 1},
        {"d9"
         "03"
         "616263",
         1, 1},
        {"c4"
         "00",
         1, 1},
        {"c5"
         "0002"
         "0102",
         1, 1},
        {"90", 0, 0},
        {"80", 0, 0},
        {"d4"
         "01"
         "00",
         0, 0},
    };
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        uint8_t v[32];
        size_t vl = strlen(vals[i].hex) / 2;
        for (size_t j = 0; j < vl; j++)
            sscanf(vals[i].hex + 2 * j, "%2hhx", &v[j]);
        for (int as_key = 0; as_key < 2; as_key++) {
            mdx_buf_t b;
            mdx_buf_init(&b);
            mdx_buf_t x;
            mdx_buf_init(&x);
            put_cstr(&x, as_key ? "key" : "eq");
            mdx_buf_append(&x, v, vl);
            size_t mark = as_key ? build(&b, 9, "get", BIT(MDX_ARG_COLL), 0, x.data, x.len, 1)
                                 : build(&b, 9, "find", BIT(MDX_ARG_COLL) | BIT(MDX_ARG_INDEX), 0,
                                         x.data, x.len, 1);
            size_t len;
            const uint8_t *pl = rq_payload(&b, mark, &len);
            snprintf(ctx, sizeof ctx, "%s %s", as_key ? "key" : "eq", vals[i].hex);
            mdx_request_t req;
            char err[256];
            int ok = as_key ? vals[i].key : vals[i].scalar;
            CKI(decode(pl, len, &req, err, sizeof err), ok ? 0 : MDX_EBADARGS);
            if (ok) {
                mdx_arg_t a = as_key ? MDX_ARG_KEY : MDX_ARG_EQ;
                CKI(req.args[a].raw_len, vl);
                CK(memcmp(req.args[a].raw, v, vl) == 0);
            }
            mdx_buf_fini(&b);
            mdx_buf_fini(&x);
        }
    }
}

/* ---- prefixes ---- */

static void every_proper_prefix_fails_with_proto_and_echoes_a_complete_id(void **state)
{
    (void)state;
    mdx_buf_t b;
    mdx_buf_init(&b);
    for (size_t op = 0; op < NOPS; op++) {
        uint64_t masks[4];
        size_t nm = valid_masks(op, masks);
        for (size_t m = 0; m < nm; m++) {
            uint64_t id = 300 + op; /* encoded as cd 01 xx: 3 bytes */
            b.len = 0;
            size_t mark = build(&b, id, schema[op].op, masks[m], 0, NULL, 0, 0);
            size_t len;
            const uint8_t *pl = rq_payload(&b, mark, &len);
            for (size_t k = 0; k < len; k++) {
                snprintf(ctx, sizeof ctx, "%s args %#" PRIx64 ": prefix %zu of %zu", schema[op].op,
                         masks[m], k, len);
                mdx_request_t req;
                char err[256] = "";
                CKI(decode(pl, k, &req, err, sizeof err), MDX_EPROTO);
                CK(err[0] != '\0');
                CKI(req.id, k >= 4 ? id : 0); /* 93 cd 01 xx */
            }
        }
    }
    mdx_buf_fini(&b);
}

/* ---- error cases ---- */

/* Decodes a payload given as hex (spaces ignored) and checks code, id and message. */
static void expect_hex(const char *hex, int code, uint64_t id, const char *msg)
{
    uint8_t buf[1024];
    size_t n = 0;
    for (const char *h = hex; *h;) {
        if (*h == ' ') {
            h++;
            continue;
        }
        assert_true(n < sizeof buf);
        sscanf(h, "%2hhx", &buf[n++]);
        h += 2;
    }
    snprintf(ctx, sizeof ctx, "payload %s", hex);
    mdx_request_t req;
    char err[256];
    CKI(decode(buf, n, &req, err, sizeof err), code);
    CKI(req.id, id);
    if (msg)
        CKS(err, msg);
}

static void malformed_envelopes_are_proto_errors(void **state)
{
    (void)state;
    /* [7, "ping", {}] is 93 07 a4 70696e67 80 */
    expect_hex("93 07 a4 70696e67 80", 0, 7, "");
    expect_hex("80", MDX_EPROTO, 0, "request must be an array [id, op, args], not a map");
    expect_hex("c1", MDX_EPROTO, 0, "malformed msgpack at the start of the request");
    expect_hex("07", MDX_EPROTO, 0, "request must be an array [id, op, args], not an integer");
    expect_hex("92 07 a4 70696e67", MDX_EPROTO, 7,
               "request must be an array of 3 elements [id, op, args], not 2");
    expect_hex("94 07 a4 70696e67 80 c0", MDX_EPROTO, 7,
               "request must be an array of 3 elements [id, op, args], not 4");
    expect_hex("90", MDX_EPROTO, 0, "request must be an array of 3 elements [id, op, args], not 0");
    expect_hex("93 ff a4 70696e67 80", MDX_EPROTO, 0,
               "request id must be a non-negative integer, not a negative integer");
    expect_hex("93 a1 31 a4 70696e67 80", MDX_EPROTO, 0,
               "request id must be a non-negative integer, not a string");
    expect_hex("93 cb 3ff0000000000000 a4 70696e67 80", MDX_EPROTO, 0,
               "request id must be a non-negative integer, not a float");
    expect_hex("93 c1", MDX_EPROTO, 0, "malformed msgpack in the request id");
    expect_hex("93 07 05 80", MDX_EPROTO, 7, "op must be a string, not an integer");
    expect_hex("93 07 c4 04 70696e67 80", MDX_EPROTO, 7, "op must be a string, not a binary");
    expect_hex("93 07 a4 70696e", MDX_EPROTO, 7, "malformed msgpack in the op");
    expect_hex("93 07 a4 70696e67 90", MDX_EPROTO, 7, "args must be a map, not an array");
    expect_hex("93 07 a4 70696e67 c0", MDX_EPROTO, 7, "args must be a map, not nil");
    expect_hex("93 07 a4 70696e67", MDX_EPROTO, 7, "malformed msgpack in the args");
    expect_hex("93 07 a4 70696e67 80 c0", MDX_EPROTO, 7, "trailing bytes after the request (1)");
    expect_hex("93 07 a4 70696e67 80 00 00 00", MDX_EPROTO, 7,
               "trailing bytes after the request (3)");
    /* uint64 max as the id */
    expect_hex("93 cf ffffffffffffffff a4 70696e67 80", 0, UINT64_MAX, "");
    /* reserved byte 0xc1 inside an argument value */
    expect_hex("93 07 a3 676574 82 a4 636f6c6c a1 63 a3 6b6579 c1", MDX_EPROTO, 7,
               "malformed msgpack, or nesting deeper than 32, in args entry 1");
    /* a key that is a container, truncated */
    expect_hex("93 07 a4 70696e67 81 92 01", MDX_EPROTO, 7,
               "malformed msgpack, or nesting deeper than 32, in args entry 0");
}

static void huge_element_counts_fail_at_once(void **state)
{
    (void)state;
    expect_hex("dd ffffffff 07", MDX_EPROTO, 7,
               "request must be an array of 3 elements [id, op, args], not 4294967295");
    expect_hex("dd 00000003 07 a4 70696e67 80", 0, 7, ""); /* a long header for 3 is fine */
    expect_hex("93 07 a4 70696e67 df ffffffff 80", MDX_EPROTO, 7,
               "args claims 4294967295 entries but only 1 bytes follow");
    /* mget keys: array32 of 4 billion, str32 of 4 GiB, map32 of 4 billion pairs */
    expect_hex("93 07 a4 6d676574 82 a4 636f6c6c a1 63 a4 6b657973 dd ffffffff 01", MDX_EPROTO, 7,
               "malformed msgpack, or nesting deeper than 32, in args entry 1");
    expect_hex("93 07 a4 70696e67 81 db ffffffff 00", MDX_EPROTO, 7,
               "malformed msgpack, or nesting deeper than 32, in args entry 0");
    expect_hex("93 07 a3 707574 81 a4 626f6479 df ffffffff", MDX_EPROTO, 7,
               "malformed msgpack, or nesting deeper than 32, in args entry 0");
}

/* [5, "put", {"coll": "c", "key": 1, "body": V}] where V is `depth` nested containers. */
static void nested_put(mdx_buf_t *b, unsigned depth, int maps)
{
    size_t mark = rq_begin(b, 5, "put", 3);
    mdx_req_arg(b, MDX_ARG_COLL);
    put_cstr(b, "c");
    mdx_req_arg(b, MDX_ARG_KEY);
    mdx_mp_put_int(b, 1);
    mdx_req_arg(b, MDX_ARG_BODY);
    for (unsigned i = 0; i < depth; i++) {
        if (maps || i == 0) {
            mdx_mp_put_map(b, 1);
            put_cstr(b, "a");
        } else {
            mdx_mp_put_array(b, 1);
        }
    }
    mdx_mp_put_nil(b);
    rq_end(b, mark);
}

static void nesting_is_bounded_without_recursion(void **state)
{
    (void)state;
    for (int maps = 0; maps < 2; maps++) {
        /* request array + args map + 30 = 32 containers: accepted; one more: refused. */
        static const unsigned depths[] = {30, 31, 10000, 100000};
        for (size_t i = 0; i < 4; i++) {
            mdx_buf_t b;
            mdx_buf_init(&b);
            nested_put(&b, depths[i], maps);
            size_t len;
            const uint8_t *pl = rq_payload(&b, 0, &len);
            snprintf(ctx, sizeof ctx, "body nested %u deep (%s)", depths[i],
                     maps ? "maps" : "arrays");
            mdx_request_t req;
            char err[256];
            int rc = decode(pl, len, &req, err, sizeof err);
            CKI(rc, depths[i] <= 30 ? 0 : MDX_EPROTO);
            CKI(req.id, 5);
            if (rc)
                CKS(err, "malformed msgpack, or nesting deeper than 32, in args entry 2");
            else
                CKI(req.args[MDX_ARG_BODY].raw_len,
                    len - (size_t)(req.args[MDX_ARG_BODY].raw - pl));
            mdx_buf_fini(&b);
        }
    }
    /* A whole payload that is nothing but 10,000 nested arrays. */
    uint8_t *deep = malloc(10001);
    assert_non_null(deep);
    memset(deep, 0x91, 10000);
    deep[10000] = 0xc0;
    mdx_request_t req;
    char err[256];
    snprintf(ctx, sizeof ctx, "10,000 nested arrays");
    CKI(decode(deep, 10001, &req, err, sizeof err), MDX_EPROTO);
    CKS(err, "request must be an array of 3 elements [id, op, args], not 1");
    memset(deep, 0x93, 10000); /* arrays of 3, each the first element of the next */
    CKI(decode(deep, 10001, &req, err, sizeof err), MDX_EPROTO);
    CKS(err, "request id must be a non-negative integer, not an array");
    free(deep);
}

static void unknown_op_echoes_the_id(void **state)
{
    (void)state;
    /* [42, "frobnicate", {}] */
    expect_hex("93 2a aa 66726f626e6963617465 80", MDX_EUNKNOWNOP, 42,
               "unknown operation 'frobnicate'");
    expect_hex("93 2a a0 80", MDX_EUNKNOWNOP, 42, "unknown operation ''");
    /* case matters; bytes that are not printable ASCII are escaped */
    expect_hex("93 2a a4 50494e47 80", MDX_EUNKNOWNOP, 42, "unknown operation 'PING'");
    expect_hex("93 2a a4 01c3a927 80", MDX_EUNKNOWNOP, 42,
               "unknown operation '\\x01\\xc3\\xa9\\x27'");
    /* an unknown op outranks bad arguments, a malformed payload outranks both */
    expect_hex("93 2a a3 666f6f 81 a5 626f677573 c0", MDX_EUNKNOWNOP, 42,
               "unknown operation 'foo'");
    expect_hex("93 2a a3 666f6f 81 a5 626f677573 c1", MDX_EPROTO, 42, NULL);
    /* a long name is cut in the message */
    mdx_buf_t b;
    mdx_buf_init(&b);
    char name[300];
    memset(name, 'x', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    size_t mark = rq_begin(&b, 3, name, 0);
    rq_end(&b, mark);
    size_t len;
    const uint8_t *pl = rq_payload(&b, mark, &len);
    mdx_request_t req;
    char err[256], exp[256];
    snprintf(exp, sizeof exp, "unknown operation '%.64s...'", name);
    snprintf(ctx, sizeof ctx, "long op name");
    CKI(decode(pl, len, &req, err, sizeof err), MDX_EUNKNOWNOP);
    CKS(err, exp);
    mdx_buf_fini(&b);
}

/* Decodes op with the arguments in mask (samples) plus `extra` pairs, expecting code/msg. */
static void expect_args(size_t op, uint64_t mask, const uint8_t *extra, size_t extra_len,
                        uint32_t extra_pairs, int code, const char *msg)
{
    mdx_buf_t b;
    mdx_buf_init(&b);
    size_t mark = build(&b, 77, schema[op].op, mask, 0, extra, extra_len, extra_pairs);
    size_t len;
    const uint8_t *pl = rq_payload(&b, mark, &len);
    mdx_request_t req;
    char err[256];
    CKI(decode(pl, len, &req, err, sizeof err), code);
    CKI(req.id, 77);
    if (msg)
        CKS(err, msg);
    mdx_buf_fini(&b);
}

static void missing_required_arguments_are_named(void **state)
{
    (void)state;
    for (size_t op = 0; op < NOPS; op++) {
        uint64_t masks[4];
        valid_masks(op, masks);
        uint64_t req = parse_mask(schema[op].required);
        for (int a = 0; a < MDX_ARG__COUNT; a++) {
            if (!(req & BIT(a)))
                continue;
            char msg[128];
            snprintf(msg, sizeof msg, "'%s' needs argument '%s'", schema[op].op,
                     mdx_arg_name((mdx_arg_t)a));
            snprintf(ctx, sizeof ctx, "%s without %s", schema[op].op, mdx_arg_name((mdx_arg_t)a));
            expect_args(op, masks[0] & ~BIT(a), NULL, 0, 0, MDX_EBADARGS, msg);
        }
    }
}

static void arguments_an_op_does_not_take_are_refused(void **state)
{
    (void)state;
    for (size_t op = 0; op < NOPS; op++) {
        uint64_t masks[4];
        valid_masks(op, masks);
        uint64_t allowed = mdx_op_allowed((mdx_op_t)op);
        for (int a = 0; a < MDX_ARG__COUNT; a++) {
            if (allowed & BIT(a))
                continue;
            mdx_buf_t x;
            mdx_buf_init(&x);
            mdx_req_arg(&x, (mdx_arg_t)a);
            put_sample(&x, (mdx_arg_t)a);
            char msg[128];
            snprintf(msg, sizeof msg, "'%s' does not take argument '%s'", schema[op].op,
                     mdx_arg_name((mdx_arg_t)a));
            snprintf(ctx, sizeof ctx, "%s with %s", schema[op].op, mdx_arg_name((mdx_arg_t)a));
            expect_args(op, masks[0], x.data, x.len, 1, MDX_EBADARGS, msg);
            mdx_buf_fini(&x);
        }
    }
}

static void unknown_duplicate_and_nonstring_argument_names_are_refused(void **state)
{
    (void)state;
    uint64_t get = BIT(MDX_ARG_COLL) | BIT(MDX_ARG_KEY);
    snprintf(ctx, sizeof ctx, "duplicate");
    expect_args(MDX_OP_GET, get,
                (const uint8_t *)"\xa4"
                                 "coll\xa1x",
                7, 1, MDX_EBADARGS, "argument 'coll' given twice");
    snprintf(ctx, sizeof ctx, "duplicate with another type");
    expect_args(MDX_OP_GET, get, (const uint8_t *)"\xa3key\x05", 5, 1, MDX_EBADARGS,
                "argument 'key' given twice");
    snprintf(ctx, sizeof ctx, "unknown");
    expect_args(MDX_OP_GET, get,
                (const uint8_t *)"\xa5"
                                 "bogus\xc0",
                7, 1, MDX_EBADARGS, "unknown argument 'bogus'");
    snprintf(ctx, sizeof ctx, "unknown, odd bytes");
    expect_args(MDX_OP_GET, get,
                (const uint8_t *)"\xa3"
                                 "c\n\xff\xc0",
                5, 1, MDX_EBADARGS, "unknown argument 'c\\x0a\\xff'");
    snprintf(ctx, sizeof ctx, "prefix of a name");
    expect_args(MDX_OP_GET, get,
                (const uint8_t *)"\xa3"
                                 "col\xc0",
                5, 1, MDX_EBADARGS, "unknown argument 'col'");
    snprintf(ctx, sizeof ctx, "integer name");
    expect_args(MDX_OP_GET, get, (const uint8_t *)"\x01\x02", 2, 1, MDX_EBADARGS,
                "argument names must be strings, not an integer");
    snprintf(ctx, sizeof ctx, "array name");
    expect_args(MDX_OP_GET, get, (const uint8_t *)"\x91\x01\x02", 3, 1, MDX_EBADARGS,
                "argument names must be strings, not an array");
    snprintf(ctx, sizeof ctx, "binary name");
    expect_args(MDX_OP_GET, get,
                (const uint8_t *)"\xc4\x04"
                                 "coll\xa1x",
                8, 1, MDX_EBADARGS, "argument names must be strings, not a binary");
    /* the first problem in wire order is reported; a later malformed value outranks it */
    snprintf(ctx, sizeof ctx, "first problem wins");
    expect_args(MDX_OP_GET, get,
                (const uint8_t *)"\xa5"
                                 "bogus\xc0\xa4"
                                 "coll\xa1x",
                14, 2, MDX_EBADARGS, "unknown argument 'bogus'");
    snprintf(ctx, sizeof ctx, "malformed value outranks");
    expect_args(MDX_OP_GET, get,
                (const uint8_t *)"\xa5"
                                 "bogus\xc0\xa4"
                                 "coll\xc1",
                13, 2, MDX_EPROTO, "malformed msgpack, or nesting deeper than 32, in args entry 3");
}

static void update_needs_set_or_unset(void **state)
{
    (void)state;
    snprintf(ctx, sizeof ctx, "update with neither");
    expect_args(MDX_OP_UPDATE, BIT(MDX_ARG_COLL) | BIT(MDX_ARG_KEY), NULL, 0, 0, MDX_EBADARGS,
                "'update' needs argument 'set' or 'unset' (or both)");
}

static void cache_arguments_that_exclude_each_other_are_refused(void **state)
{
    (void)state;
    static const struct {
        size_t op;
        const char *args;
        const char *msg; /* NULL: accepted */
    } cases[] = {
        {MDX_OP_PUT, "coll key body ttl_ms ttl_class",
         "arguments 'ttl_ms' and 'ttl_class' cannot be combined"},
        {MDX_OP_PUT, "coll key body ttl_class tags keep_ttl", NULL},
        {MDX_OP_TTL_SET, "coll key ttl_ms ttl_class",
         "arguments 'ttl_ms' and 'ttl_class' cannot be combined"},
        {MDX_OP_TTL_SET, "coll key", "'ttl_set' needs argument 'ttl_ms' or 'ttl_class'"},
        {MDX_OP_CREATE_COLLECTION, "name default_ttl_ms default_ttl",
         "arguments 'default_ttl_ms' and 'default_ttl' cannot be combined"},
        {MDX_OP_CONFIGURE_COLLECTION, "name capacity default_ttl_ms default_ttl",
         "arguments 'default_ttl_ms' and 'default_ttl' cannot be combined"},
        {MDX_OP_CONFIGURE_COLLECTION, "name",
         "'configure_collection' needs at least one of 'capacity', 'policy', 'default_ttl_ms' "
         "or 'default_ttl'"},
        {MDX_OP_CONFIGURE_COLLECTION, "name policy", NULL},
        {MDX_OP_CONFIGURE_COLLECTION, "name default_ttl", NULL},
        {MDX_OP_INVALIDATE, "coll", "'invalidate' needs argument 'tags'"},
        {MDX_OP_INVALIDATE, "tags", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(ctx, sizeof ctx, "%s with %s", schema[cases[i].op].op, cases[i].args);
        expect_args(cases[i].op, parse_mask(cases[i].args), NULL, 0, 0,
                    cases[i].msg ? MDX_EBADARGS : 0, cases[i].msg ? cases[i].msg : "");
    }
}

static void range_bounds_that_exclude_each_other_are_refused(void **state)
{
    (void)state;
    static const struct {
        const char *args;
        const char *msg;
    } cases[] = {
        {"eq ge", "argument 'eq' cannot be combined with 'ge'"},
        {"eq gt", "argument 'eq' cannot be combined with 'gt'"},
        {"eq le", "argument 'eq' cannot be combined with 'le'"},
        {"eq lt", "argument 'eq' cannot be combined with 'lt'"},
        {"eq gt le", "argument 'eq' cannot be combined with 'gt'"},
        {"ge gt", "arguments 'ge' and 'gt' cannot be combined"},
        {"le lt", "arguments 'le' and 'lt' cannot be combined"},
        {"ge gt le lt", "arguments 'ge' and 'gt' cannot be combined"},
        {"ge le", NULL},
        {"gt lt", NULL},
        {"ge lt", NULL},
        {"gt le", NULL},
        {"eq", NULL},
        {"", NULL},
    };
    for (size_t op = MDX_OP_FIND; op <= MDX_OP_COUNT; op++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            snprintf(ctx, sizeof ctx, "%s with %s", schema[op].op, cases[i].args);
            uint64_t m = parse_mask(schema[op].required) | parse_mask(cases[i].args);
            expect_args(op, m, NULL, 0, 0, cases[i].msg ? MDX_EBADARGS : 0,
                        cases[i].msg ? cases[i].msg : "");
        }
}

/* An op that takes argument a. */
static size_t host_op(mdx_arg_t a)
{
    for (size_t op = 0; op < NOPS; op++)
        if (mdx_op_allowed((mdx_op_t)op) & BIT(a))
            return op;
    fail();
    return 0;
}

#define TAG8   "6161616161616161"
#define TAG32  TAG8 TAG8 TAG8 TAG8
#define TAG128 TAG32 TAG32 TAG32 TAG32
#define TAGS4  "a1 61 a1 62 a1 63 a1 64 "
#define TAGS16 TAGS4 TAGS4 TAGS4 TAGS4

static void mistyped_values_are_refused_with_the_argument_named(void **state)
{
    (void)state;
    static char s255[256 * 2 + 8], s256[257 * 2 + 8];
    strcpy(s255, "d9ff");
    strcpy(s256, "da0100");
    for (int i = 0; i < 255; i++)
        strcat(s255, "61");
    for (int i = 0; i < 256; i++)
        strcat(s256, "61");
    static const struct {
        mdx_arg_t arg;
        const char *hex; /* the value */
        const char *msg; /* NULL: accepted */
    } cases[] = {
        {MDX_ARG_COLL, "05", "argument 'coll' must be a string, not an integer"},
        {MDX_ARG_COLL, "c4 01 61", "argument 'coll' must be a string, not a binary"},
        {MDX_ARG_COLL, "a0", "argument 'coll' must be 1 to 255 bytes long, not 0"},
        {MDX_ARG_COLL, NULL /* s255 */, NULL},
        {MDX_ARG_COLL, NULL /* s256 */, "argument 'coll' must be 1 to 255 bytes long, not 256"},
        {MDX_ARG_NAME, "c0", "argument 'name' must be a string, not nil"},
        {MDX_ARG_FIELD, "91 a1 61", "argument 'field' must be a string, not an array"},
        {MDX_ARG_CLIENT, "c3", "argument 'client' must be a string, not a boolean"},
        {MDX_ARG_MODE, "a6 696e73657274", NULL},   /* "insert" */
        {MDX_ARG_MODE, "a6 757073657274", NULL},   /* "upsert" */
        {MDX_ARG_MODE, "a7 7265706c616365", NULL}, /* "replace" */
        {MDX_ARG_MODE, "a7 7570736572747a",
         "argument 'mode' must be \"upsert\", \"insert\" or \"replace\""},
        {MDX_ARG_KIND, "a4 68617368", NULL}, /* "hash" */
        {MDX_ARG_KIND, "a5 6274726565", "argument 'kind' must be \"hash\" or \"skiplist\""},
        {MDX_ARG_KEY, "c0", "argument 'key' must be an integer, string or binary, not nil"},
        {MDX_ARG_KEY, "cb 3ff8000000000000",
         "argument 'key' must be an integer, string or binary, not a float"},
        {MDX_ARG_KEY, "91 01", "argument 'key' must be an integer, string or binary, not an array"},
        {MDX_ARG_KEY, "80", "argument 'key' must be an integer, string or binary, not a map"},
        {MDX_ARG_KEY, "c3", "argument 'key' must be an integer, string or binary, not a boolean"},
        {MDX_ARG_KEY, "d4 01 00",
         "argument 'key' must be an integer, string or binary, not an extension"},
        {MDX_ARG_KEY, "a0", NULL},
        {MDX_ARG_KEYS, "90", "argument 'keys' must hold 1 to 10000 keys, not 0"},
        {MDX_ARG_KEYS, "a1 61", "argument 'keys' must be an array of keys, not a string"},
        {MDX_ARG_KEYS, "93 01 a1 61 c0",
         "argument 'keys' element 2 must be an integer, string or binary, not nil"},
        {MDX_ARG_KEYS, "92 91 01 01",
         "argument 'keys' element 0 must be an integer, string or binary, not an array"},
        {MDX_ARG_KEYS, "91 cf ffffffffffffffff", NULL},
        {MDX_ARG_BODY, "90", "argument 'body' must be a map, not an array"},
        {MDX_ARG_BODY, "c0", "argument 'body' must be a map, not nil"},
        {MDX_ARG_BODY, "81 01 02", NULL}, /* string keys are the engine's check */
        {MDX_ARG_SET, "a1 61", "argument 'set' must be a map, not a string"},
        {MDX_ARG_EQ, "90",
         "argument 'eq' must be nil, a boolean, a number, a string or a binary, "
         "not an array"},
        {MDX_ARG_GE, "80",
         "argument 'ge' must be nil, a boolean, a number, a string or a binary, not a map"},
        {MDX_ARG_LT, "c7 01 05 00",
         "argument 'lt' must be nil, a boolean, a number, a string or a binary, not an extension"},
        {MDX_ARG_LIMIT, "a1 61", "argument 'limit' must be a non-negative integer, not a string"},
        {MDX_ARG_LIMIT, "ff",
         "argument 'limit' must be a non-negative integer, not a negative integer"},
        {MDX_ARG_LIMIT, "ca 3f800000",
         "argument 'limit' must be a non-negative integer, not a float"},
        {MDX_ARG_LIMIT, "c0", "argument 'limit' must be a non-negative integer, not nil"},
        {MDX_ARG_OFFSET, "00", NULL},
        {MDX_ARG_TTL_MS, "d3 ffffffffffffffff",
         "argument 'ttl_ms' must be a non-negative integer, not a negative integer"},
        {MDX_ARG_CURSOR, "c3", "argument 'cursor' must be a non-negative integer, not a boolean"},
        {MDX_ARG_PROTOCOL, "a1 31",
         "argument 'protocol' must be a non-negative integer, not a string"},
        {MDX_ARG_DESC, "01", "argument 'desc' must be a boolean, not an integer"},
        {MDX_ARG_UNIQUE, "c0", "argument 'unique' must be a boolean, not nil"},
        {MDX_ARG_KEEP_TTL, "a4 74727565", "argument 'keep_ttl' must be a boolean, not a string"},
        {MDX_ARG_AFTER, "80", "argument 'after' must be an array, not a map"},
        {MDX_ARG_AFTER, "90", NULL},
        {MDX_ARG_UNSET, "a1 61", "argument 'unset' must be an array of strings, not a string"},
        {MDX_ARG_UNSET, "92 a1 61 01",
         "argument 'unset' element 1 must be a string, not an integer"},
        {MDX_ARG_UNSET, "91 c4 01 61", "argument 'unset' element 0 must be a string, not a binary"},
        {MDX_ARG_UNSET, "90", NULL},
        {MDX_ARG_TTL_CLASS, "01", "argument 'ttl_class' must be a string, not an integer"},
        {MDX_ARG_TTL_CLASS, "a0", "argument 'ttl_class' must be 1 to 255 bytes long, not 0"},
        {MDX_ARG_POLICY, "c3", "argument 'policy' must be a string, not a boolean"},
        {MDX_ARG_DEFAULT_TTL, "91 a1 61", "argument 'default_ttl' must be a string, not an array"},
        {MDX_ARG_CAPACITY, "ff",
         "argument 'capacity' must be a non-negative integer, not a negative integer"},
        {MDX_ARG_CAPACITY, "a1 31",
         "argument 'capacity' must be a non-negative integer, not a string"},
        {MDX_ARG_DEFAULT_TTL_MS, "cb 3ff8000000000000",
         "argument 'default_ttl_ms' must be a non-negative integer, not a float"},
        {MDX_ARG_WITH_TAGS, "01", "argument 'with_tags' must be a boolean, not an integer"},
        {MDX_ARG_TAGS, "a1 61", "argument 'tags' must be an array of strings, not a string"},
        {MDX_ARG_TAGS, "80", "argument 'tags' must be an array of strings, not a map"},
        {MDX_ARG_TAGS, "92 a1 61 01", "argument 'tags' element 1 must be a string, not an integer"},
        {MDX_ARG_TAGS, "91 c4 01 61", "argument 'tags' element 0 must be a string, not a binary"},
        {MDX_ARG_TAGS, "92 a1 61 a0",
         "argument 'tags' element 1 must be 1 to 128 bytes long, not 0"},
        {MDX_ARG_TAGS, "90", NULL},
        {MDX_ARG_TAGS, "91 d9 80" TAG128, NULL},
        {MDX_ARG_TAGS, "91 d9 81" TAG128 "61",
         "argument 'tags' element 0 must be 1 to 128 bytes long, not 129"},
        {MDX_ARG_TAGS, "dc 0010" TAGS16, NULL},
        {MDX_ARG_TAGS, "dc 0011" TAGS16 "a1 61",
         "argument 'tags' must hold at most 16 tags, not 17"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *hex = cases[i].hex;
        if (!hex)
            hex = cases[i].msg ? s256 : s255;
        mdx_arg_t a = cases[i].arg;
        size_t op = host_op(a);
        uint64_t masks[4];
        valid_masks(op, masks);
        mdx_buf_t x;
        mdx_buf_init(&x);
        mdx_req_arg(&x, a);
        for (const char *h = hex; *h;) {
            if (*h == ' ') {
                h++;
                continue;
            }
            uint8_t c;
            sscanf(h, "%2hhx", &c);
            mdx_buf_append(&x, &c, 1);
            h += 2;
        }
        snprintf(ctx, sizeof ctx, "%s: %s = %.40s", schema[op].op, mdx_arg_name(a), hex);
        uint64_t m = masks[0] & ~BIT(a);
        expect_args(op, m, x.data, x.len, 1, cases[i].msg ? MDX_EBADARGS : 0,
                    cases[i].msg ? cases[i].msg : "");
        mdx_buf_fini(&x);
    }
}

static void mode_and_kind_decode_to_the_engine_numbering(void **state)
{
    (void)state;
    static const char *const modes[] = {"upsert", "insert", "replace"};
    static const char *const kinds[] = {"hash", "skiplist"};
    for (int k = 0; k < 2; k++)
        for (unsigned i = 0; i < (k ? 2u : 3u); i++) {
            const char *v = k ? kinds[i] : modes[i];
            mdx_arg_t a = k ? MDX_ARG_KIND : MDX_ARG_MODE;
            size_t op = k ? MDX_OP_CREATE_INDEX : MDX_OP_PUT;
            uint64_t m = parse_mask(schema[op].required) & ~BIT(a);
            mdx_buf_t b, x;
            mdx_buf_init(&b);
            mdx_buf_init(&x);
            mdx_req_arg(&x, a);
            put_cstr(&x, v);
            size_t mark = build(&b, 1, schema[op].op, m, 0, x.data, x.len, 1);
            size_t len;
            const uint8_t *pl = rq_payload(&b, mark, &len);
            mdx_request_t req;
            snprintf(ctx, sizeof ctx, "%s %s", mdx_arg_name(a), v);
            CKI(decode(pl, len, &req, NULL, 0), 0);
            CKI(req.args[a].u, i);
            CKI(req.args[a].len, strlen(v));
            mdx_buf_fini(&b);
            mdx_buf_fini(&x);
        }
}

static void mget_takes_up_to_the_key_limit(void **state)
{
    (void)state;
    for (unsigned n = MDX_MAX_MGET_KEYS - 1; n <= MDX_MAX_MGET_KEYS + 1; n++) {
        mdx_buf_t b;
        mdx_buf_init(&b);
        size_t mark = rq_begin(&b, 8, "mget", 2);
        mdx_req_arg(&b, MDX_ARG_COLL);
        put_cstr(&b, "c");
        mdx_req_arg(&b, MDX_ARG_KEYS);
        mdx_mp_put_array(&b, n);
        for (unsigned i = 0; i < n; i++)
            mdx_mp_put_uint(&b, i * 1000u);
        rq_end(&b, mark);
        size_t len;
        const uint8_t *pl = rq_payload(&b, mark, &len);
        mdx_request_t req;
        char err[256];
        snprintf(ctx, sizeof ctx, "mget of %u keys", n);
        if (n <= MDX_MAX_MGET_KEYS) {
            CKI(decode(pl, len, &req, err, sizeof err), 0);
        } else {
            CKI(decode(pl, len, &req, err, sizeof err), MDX_EBADARGS);
            CKS(err, "argument 'keys' must hold 1 to 10000 keys, not 10001");
        }
        mdx_buf_fini(&b);
    }
}

static void error_buffer_may_be_small_or_absent(void **state)
{
    (void)state;
    static const uint8_t bad[] = {0x93, 0x2a, 0xa3, 'f', 'o', 'o', 0x80};
    mdx_request_t req;
    char err[8];
    memset(err, 'z', sizeof err);
    snprintf(ctx, sizeof ctx, "small errbuf");
    CKI(mdx_request_decode(bad, sizeof bad, &req, err, sizeof err), MDX_EUNKNOWNOP);
    CKS(err, "unknown");
    CKI(mdx_request_decode(bad, sizeof bad, &req, NULL, 0), MDX_EUNKNOWNOP);
    CKI(req.id, 42);
    err[0] = 'q';
    CKI(mdx_request_decode(bad, sizeof bad, &req, err, 0), MDX_EUNKNOWNOP);
    CK(err[0] == 'q');
}

/* ---- mutations ---- */

/* Re-encodes a decoded request from its views and checks it decodes to the same thing. */
static void check_round_trip(const mdx_request_t *req)
{
    mdx_buf_t b;
    mdx_buf_init(&b);
    size_t mark =
        rq_begin(&b, req->id, mdx_op_name(req->op), (uint32_t)__builtin_popcountll(req->present));
    for (int a = 0; a < MDX_ARG__COUNT; a++)
        if (mdx_req_has(req, (mdx_arg_t)a)) {
            mdx_req_arg(&b, (mdx_arg_t)a);
            mdx_buf_append(&b, req->args[a].raw, req->args[a].raw_len);
        }
    rq_end(&b, mark);
    size_t len;
    const uint8_t *pl = rq_payload(&b, mark, &len);
    mdx_request_t again;
    char err[256];
    CKI(mdx_request_decode(pl, len, &again, err, sizeof err), 0);
    CKI(again.id, req->id);
    CKI(again.op, req->op);
    CK(again.present == req->present);
    for (int a = 0; a < MDX_ARG__COUNT; a++) {
        CKI(again.args[a].raw_len, req->args[a].raw_len);
        CK(again.args[a].raw_len == 0 ||
           memcmp(again.args[a].raw, req->args[a].raw, req->args[a].raw_len) == 0);
        CKI(again.args[a].u, req->args[a].u);
        CKI(again.args[a].len, req->args[a].len);
    }
    mdx_buf_fini(&b);
}

static void mutated_frames_never_misbehave(void **state)
{
    (void)state;
    static const uint8_t interesting[] = {
        0x00, 0x01, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xca,
        0xcb, 0xcc, 0xcf, 0xd3, 0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff, 0x03, 0x10, 0x20};
    uint64_t seed = test_seed(0xc0ffee), rs = seed ? seed : 1;
    /* The corpus: one valid frame per op and argument set. */
    mdx_buf_t corpus;
    mdx_buf_init(&corpus);
    size_t starts[64], n = 0;
    for (size_t op = 0; op < NOPS; op++) {
        uint64_t masks[4];
        size_t nm = valid_masks(op, masks);
        for (size_t m = 0; m < nm; m++) {
            starts[n++] = corpus.len;
            build(&corpus, op * 1000 + m, schema[op].op, masks[m], (int)(m & 1), NULL, 0, 0);
        }
    }
    starts[n] = corpus.len;
    uint8_t *mut = malloc(4096);
    assert_non_null(mut);
    unsigned decoded_ok = 0, codes[4] = {0, 0, 0, 0};
    for (unsigned iter = 0; iter < 200000; iter++) {
        size_t which = (size_t)(rnd(&rs) % n);
        size_t len = starts[which + 1] - starts[which];
        memcpy(mut, corpus.data + starts[which], len);
        unsigned nmut = 1 + (unsigned)(rnd(&rs) % 4);
        for (unsigned k = 0; k < nmut; k++) {
            uint64_t r = rnd(&rs);
            size_t at = (size_t)(r >> 16) % (len ? len : 1);
            switch (r % 7) {
            case 0: /* flip a bit (the header too) */
                if (len)
                    mut[at] ^= (uint8_t)(1u << ((r >> 8) % 8));
                break;
            case 1:
            case 2: /* an interesting byte */
                if (len)
                    mut[at] = interesting[(r >> 8) % sizeof interesting];
                break;
            case 3: /* insert a byte */
                if (len < 4000) {
                    memmove(mut + at + 1, mut + at, len - at);
                    mut[at] = interesting[(r >> 8) % sizeof interesting];
                    len++;
                }
                break;
            case 4: /* delete a byte */
                if (len) {
                    memmove(mut + at, mut + at + 1, len - at - 1);
                    len--;
                }
                break;
            case 5: /* truncate */
                len = at;
                break;
            case 6: { /* splice in a chunk of another frame */
                size_t other = (size_t)(rnd(&rs) % n);
                size_t olen = starts[other + 1] - starts[other];
                size_t from = (size_t)(rnd(&rs) % olen), cnt = 1 + (size_t)(rnd(&rs) % 16);
                if (cnt > olen - from)
                    cnt = olen - from;
                if (at + cnt > 4000)
                    break;
                memcpy(mut + at, corpus.data + starts[other] + from, cnt);
                if (at + cnt > len)
                    len = at + cnt;
                break;
            }
            }
        }
        /* Keep the frame header honest half the time, so payload decoding gets exercised. */
        if ((rnd(&rs) & 1) && len >= 4) {
            size_t pl = len - 4;
            mut[0] = (uint8_t)(pl >> 24);
            mut[1] = (uint8_t)(pl >> 16);
            mut[2] = (uint8_t)(pl >> 8);
            mut[3] = (uint8_t)pl;
        }
        char hex[128];
        hexdump(hex, sizeof hex, mut, len);
        snprintf(ctx, sizeof ctx, "seed %" PRIu64 ", iteration %u, frame %s", seed, iter, hex);
        uint8_t *buf = tail_copy(mut, len);
        const uint8_t *pl;
        size_t plen;
        long r = mdx_frame_next(buf, len, 1 << 16, &pl, &plen);
        CK(r == 0 || r == -MDX_EFRAMETOOBIG || (r >= 4 && (size_t)r <= len));
        if (r > 0) {
            CKI(plen, (size_t)r - 4);
            CK(pl == buf + 4);
            /* The payload alone at the end of its own block: no over-read goes unseen. */
            uint8_t *own = tail_copy(pl, plen);
            mdx_request_t req;
            char err[96];
            memset(err, 0x55, sizeof err);
            int rc = mdx_request_decode(own, plen, &req, err, sizeof err);
            CK(rc == 0 || rc == MDX_EPROTO || rc == MDX_EUNKNOWNOP || rc == MDX_EBADARGS);
            CK(memchr(err, '\0', sizeof err) != NULL);
            for (const char *c = err; *c; c++)
                CK(*c >= 0x20 && *c < 0x7f); /* one line of printable ASCII */
            CK((rc == 0) == (err[0] == '\0'));
            if (rc == 0) {
                decoded_ok++;
                CK((req.present & ~mdx_op_allowed(req.op)) == 0);
                CK((mdx_op_required(req.op) & ~req.present) == 0);
                check_round_trip(&req);
            }
            codes[rc == 0 ? 0 : rc == MDX_EPROTO ? 1 : rc == MDX_EUNKNOWNOP ? 2 : 3]++;
            tail_free(own, plen);
        }
        tail_free(buf, len);
    }
    print_message("decoded: ok %u, PROTO %u, UNKNOWNOP %u, BADARGS %u\n", codes[0], codes[1],
                  codes[2], codes[3]);
    /* The mutations must reach every outcome, or the test tests little. */
    CK(decoded_ok > 0 && codes[1] > 0 && codes[2] > 0 && codes[3] > 0);
    free(mut);
    mdx_buf_fini(&corpus);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(op_and_arg_tables_match_the_documented_schema),
        cmocka_unit_test(every_op_decodes_to_exact_values),
        cmocka_unit_test(scalar_key_and_uint_variants_decode),
        cmocka_unit_test(every_proper_prefix_fails_with_proto_and_echoes_a_complete_id),
        cmocka_unit_test(malformed_envelopes_are_proto_errors),
        cmocka_unit_test(huge_element_counts_fail_at_once),
        cmocka_unit_test(nesting_is_bounded_without_recursion),
        cmocka_unit_test(unknown_op_echoes_the_id),
        cmocka_unit_test(missing_required_arguments_are_named),
        cmocka_unit_test(arguments_an_op_does_not_take_are_refused),
        cmocka_unit_test(unknown_duplicate_and_nonstring_argument_names_are_refused),
        cmocka_unit_test(update_needs_set_or_unset),
        cmocka_unit_test(range_bounds_that_exclude_each_other_are_refused),
        cmocka_unit_test(cache_arguments_that_exclude_each_other_are_refused),
        cmocka_unit_test(mistyped_values_are_refused_with_the_argument_named),
        cmocka_unit_test(mode_and_kind_decode_to_the_engine_numbering),
        cmocka_unit_test(mget_takes_up_to_the_key_limit),
        cmocka_unit_test(error_buffer_may_be_small_or_absent),
        cmocka_unit_test(mutated_frames_never_misbehave),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
