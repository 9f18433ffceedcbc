/*
 * Request decoding: one frame payload in, a validated mdx_request_t of views out.
 *
 * The decoder makes a single pass over the payload and never recurses: each argument value is
 * skipped with mdx_mp_skip (iterative, depth-bounded, and a container header that claims more
 * elements than bytes remain fails at once), then type-checked within the bytes just proven
 * well formed. Errors are ranked so the code a client sees does not depend on the order of the
 * arguments: a payload that is not a well-formed envelope is MDX_EPROTO even when an earlier
 * argument was already wrong, so semantic errors (MDX_EUNKNOWNOP, then MDX_EBADARGS) are only
 * recorded and the pass goes on; the first one recorded is returned if the payload turns out
 * well formed. Nothing is allocated and the payload is never written.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/mp.h"
#include "memdex/protocol.h"

_Static_assert(MDX_ARG__COUNT <= 64, "mdx_request_t.present holds one bit per argument");
_Static_assert(MDX_PROTO_MAX_DEPTH <= MDX_MP_MAX_DEPTH, "the reader's depth bound");

typedef enum {
    T_STR,
    T_KEY,
    T_KEYS,
    T_MAP,
    T_SCALAR,
    T_UINT,
    T_BOOL,
    T_ARRAY,
    T_STRARRAY,
    T_TAGS
} ty_t;

static const struct {
    const char *name;
    uint8_t len;
    uint8_t idem;
} ops[MDX_OP__COUNT] = {
#define XX(e, nm, idem) {nm, sizeof(nm) - 1, idem},
    MDX_OP_MAP(XX)
#undef XX
};

static const struct {
    const char *name;
    uint8_t len;
    uint8_t type;
} args[MDX_ARG__COUNT] = {
#define XX(e, nm, ty) {nm, sizeof(nm) - 1, T_##ty},
    MDX_ARG_MAP(XX)
#undef XX
};

#define B(a)  (UINT64_C(1) << MDX_ARG_##a)
#define RANGE (B(EQ) | B(GE) | B(GT) | B(LE) | B(LT))
/* The cache options of a collection (create_collection, configure_collection). */
#define COLL_OPTS (B(CAPACITY) | B(POLICY) | B(DEFAULT_TTL_MS) | B(DEFAULT_TTL))

static const uint64_t required[MDX_OP__COUNT] = {
    [MDX_OP_CREATE_COLLECTION] = B(NAME),
    [MDX_OP_DROP_COLLECTION] = B(NAME),
    [MDX_OP_CREATE_INDEX] = B(COLL) | B(NAME) | B(FIELD) | B(KIND),
    [MDX_OP_DROP_INDEX] = B(COLL) | B(NAME),
    [MDX_OP_LIST_INDEXES] = B(COLL),
    [MDX_OP_PUT] = B(COLL) | B(KEY) | B(BODY),
    [MDX_OP_GET] = B(COLL) | B(KEY),
    [MDX_OP_MGET] = B(COLL) | B(KEYS),
    [MDX_OP_DELETE] = B(COLL) | B(KEY),
    [MDX_OP_UPDATE] = B(COLL) | B(KEY),
    [MDX_OP_FIND] = B(COLL) | B(INDEX),
    [MDX_OP_COUNT] = B(COLL) | B(INDEX),
    [MDX_OP_SCAN] = B(COLL),
    [MDX_OP_TTL_SET] = B(COLL) | B(KEY),
    [MDX_OP_TTL_GET] = B(COLL) | B(KEY),
    [MDX_OP_TTL_CLEAR] = B(COLL) | B(KEY),
    [MDX_OP_CONFIGURE_COLLECTION] = B(NAME),
    [MDX_OP_INVALIDATE] = B(TAGS),
    [MDX_OP_GET_LEASE] = B(COLL) | B(KEY) | B(LEASE_MS),
};

static const uint64_t optional[MDX_OP__COUNT] = {
    [MDX_OP_HELLO] = B(PROTOCOL) | B(CLIENT),
    [MDX_OP_CREATE_INDEX] = B(UNIQUE),
    [MDX_OP_CREATE_COLLECTION] = COLL_OPTS,
    [MDX_OP_PUT] = B(MODE) | B(TTL_MS) | B(KEEP_TTL) | B(TTL_CLASS) | B(TAGS) | B(LEASE),
    [MDX_OP_GET] = B(WITH_TAGS),
    [MDX_OP_MGET] = B(WITH_TAGS),
    [MDX_OP_UPDATE] = B(SET) | B(UNSET),
    [MDX_OP_FIND] = RANGE | B(DESC) | B(LIMIT) | B(OFFSET) | B(AFTER),
    [MDX_OP_COUNT] = RANGE,
    [MDX_OP_SCAN] = B(CURSOR) | B(LIMIT),
    [MDX_OP_TTL_SET] = B(TTL_MS) | B(TTL_CLASS),
    [MDX_OP_CONFIGURE_COLLECTION] = COLL_OPTS,
    [MDX_OP_INVALIDATE] = B(COLL),
    [MDX_OP_GET_LEASE] = B(WITH_TAGS),
};

/* Values of the enumerated string arguments; u receives the index (the numbering of
 * mdx_put_mode_t and mdx_index_kind_t in memdex/store.h). */
static const char *const modes[] = {"upsert", "insert", "replace", NULL};
static const char *const kinds[] = {"hash", "skiplist", NULL};

const char *mdx_op_name(mdx_op_t op)
{
    return (unsigned)op < MDX_OP__COUNT ? ops[op].name : NULL;
}

int mdx_op_idempotent(mdx_op_t op)
{
    return (unsigned)op < MDX_OP__COUNT ? ops[op].idem : 0;
}

const char *mdx_arg_name(mdx_arg_t a)
{
    return (unsigned)a < MDX_ARG__COUNT ? args[a].name : NULL;
}

uint64_t mdx_op_required(mdx_op_t op)
{
    return (unsigned)op < MDX_OP__COUNT ? required[op] : 0;
}

uint64_t mdx_op_allowed(mdx_op_t op)
{
    return (unsigned)op < MDX_OP__COUNT ? required[op] | optional[op] : 0;
}

/* ---- error reporting ---- */

typedef struct {
    char *buf;
    size_t len;
    int code; /* first semantic error recorded, 0 when none */
} err_t;

__attribute__((format(printf, 3, 0))) static void vput(err_t *e, int code, const char *fmt,
                                                       va_list ap)
{
    e->code = code;
    if (e->buf && e->len)
        vsnprintf(e->buf, e->len, fmt, ap);
}

/* MDX_EPROTO outranks everything: it overwrites a recorded semantic error. */
__attribute__((format(printf, 2, 3))) static int proto(err_t *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vput(e, MDX_EPROTO, fmt, ap);
    va_end(ap);
    return MDX_EPROTO;
}

/* A semantic error: only the first one is kept. */
__attribute__((format(printf, 3, 4))) static void bad(err_t *e, int code, const char *fmt, ...)
{
    if (e->code)
        return;
    va_list ap;
    va_start(ap, fmt);
    vput(e, code, fmt, ap);
    va_end(ap);
}

/* Client bytes quoted for a message: at most 64 of them, anything but printable ASCII as
 * \xNN, so the message stays valid UTF-8 and one line. */
static const char *quote(char out[272], const uint8_t *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && i < 64; i++) {
        uint8_t c = s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, 5, "\\x%02x", c);
    }
    if (n > 64) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

static const char *type_name(mdx_mp_type_t t)
{
    switch (t) {
    case MDX_MP_NIL:
        return "nil";
    case MDX_MP_BOOL:
        return "a boolean";
    case MDX_MP_INT:
    case MDX_MP_UINT:
        return "an integer";
    case MDX_MP_FLOAT:
        return "a float";
    case MDX_MP_STR:
        return "a string";
    case MDX_MP_BIN:
        return "a binary";
    case MDX_MP_ARRAY:
        return "an array";
    case MDX_MP_MAP:
        return "a map";
    case MDX_MP_EXT:
        break;
    }
    return "an extension";
}

/* ---- values ---- */

static int is_uint(const mdx_mp_tok_t *t, uint64_t *u)
{
    if (t->type == MDX_MP_UINT) {
        *u = t->v.u;
        return 1;
    }
    if (t->type == MDX_MP_INT && t->v.i >= 0) {
        *u = (uint64_t)t->v.i;
        return 1;
    }
    return 0;
}

static int is_key(mdx_mp_type_t t)
{
    return t == MDX_MP_INT || t == MDX_MP_UINT || t == MDX_MP_STR || t == MDX_MP_BIN;
}

static int lookup(const char *const *names, const char *s, size_t n)
{
    for (int i = 0; names[i]; i++)
        if (strlen(names[i]) == n && memcmp(names[i], s, n) == 0)
            return i;
    return -1;
}

/* Type-checks argument a whose value occupies [v, vend), bytes that mdx_mp_skip accepted: the
 * reads below cannot fail and are not checked again. */
static void check_arg(mdx_arg_t a, const uint8_t *v, const uint8_t *vend, mdx_argval_t *out,
                      err_t *e)
{
    const char *an = args[a].name;
    const uint8_t *p = v;
    mdx_mp_tok_t t, el;
    mdx_mp_read(&p, vend, &t);
    out->raw = v;
    out->raw_len = (uint32_t)(vend - v);

    switch ((ty_t)args[a].type) {
    case T_STR:
        if (t.type != MDX_MP_STR) {
            bad(e, MDX_EBADARGS, "argument '%s' must be a string, not %s", an, type_name(t.type));
        } else if (t.len == 0 || t.len > MDX_PROTO_MAX_STR) {
            bad(e, MDX_EBADARGS, "argument '%s' must be 1 to %d bytes long, not %u", an,
                MDX_PROTO_MAX_STR, (unsigned)t.len);
        } else {
            out->str = (const char *)t.v.ptr;
            out->len = t.len;
            const char *const *vals = a == MDX_ARG_MODE ? modes : a == MDX_ARG_KIND ? kinds : NULL;
            if (vals) {
                int i = lookup(vals, out->str, out->len);
                if (i < 0)
                    bad(e, MDX_EBADARGS, "argument '%s' must be %s", an,
                        vals == modes ? "\"upsert\", \"insert\" or \"replace\""
                                      : "\"hash\" or \"skiplist\"");
                else
                    out->u = (uint64_t)i;
            }
        }
        return;
    case T_KEY:
        if (!is_key(t.type))
            bad(e, MDX_EBADARGS, "argument '%s' must be an integer, string or binary, not %s", an,
                type_name(t.type));
        return;
    case T_KEYS:
        if (t.type != MDX_MP_ARRAY) {
            bad(e, MDX_EBADARGS, "argument '%s' must be an array of keys, not %s", an,
                type_name(t.type));
            return;
        }
        if (t.len == 0 || t.len > MDX_MAX_MGET_KEYS) {
            bad(e, MDX_EBADARGS, "argument '%s' must hold 1 to %d keys, not %u", an,
                MDX_MAX_MGET_KEYS, (unsigned)t.len);
            return;
        }
        for (uint32_t i = 0; i < t.len; i++) {
            mdx_mp_read(&p, vend, &el);
            if (!is_key(el.type)) {
                bad(e, MDX_EBADARGS,
                    "argument '%s' element %u must be an integer, string or binary, not %s", an,
                    (unsigned)i, type_name(el.type));
                return;
            }
        }
        return;
    case T_MAP:
        if (t.type != MDX_MP_MAP)
            bad(e, MDX_EBADARGS, "argument '%s' must be a map, not %s", an, type_name(t.type));
        return;
    case T_SCALAR:
        if (t.type == MDX_MP_ARRAY || t.type == MDX_MP_MAP || t.type == MDX_MP_EXT)
            bad(e, MDX_EBADARGS,
                "argument '%s' must be nil, a boolean, a number, a string or a binary, not %s", an,
                type_name(t.type));
        return;
    case T_UINT:
        if (!is_uint(&t, &out->u))
            bad(e, MDX_EBADARGS, "argument '%s' must be a non-negative integer, not %s", an,
                t.type == MDX_MP_INT ? "a negative integer" : type_name(t.type));
        return;
    case T_BOOL:
        if (t.type != MDX_MP_BOOL)
            bad(e, MDX_EBADARGS, "argument '%s' must be a boolean, not %s", an, type_name(t.type));
        else
            out->u = (uint64_t)t.v.b;
        return;
    case T_ARRAY:
        if (t.type != MDX_MP_ARRAY)
            bad(e, MDX_EBADARGS, "argument '%s' must be an array, not %s", an, type_name(t.type));
        return;
    case T_STRARRAY:
    case T_TAGS: {
        int tags = args[a].type == T_TAGS;
        if (t.type != MDX_MP_ARRAY) {
            bad(e, MDX_EBADARGS, "argument '%s' must be an array of strings, not %s", an,
                type_name(t.type));
            return;
        }
        if (tags && t.len > MDX_PROTO_MAX_TAGS) {
            bad(e, MDX_EBADARGS, "argument '%s' must hold at most %d tags, not %u", an,
                MDX_PROTO_MAX_TAGS, (unsigned)t.len);
            return;
        }
        for (uint32_t i = 0; i < t.len; i++) {
            mdx_mp_read(&p, vend, &el);
            if (el.type != MDX_MP_STR) {
                bad(e, MDX_EBADARGS, "argument '%s' element %u must be a string, not %s", an,
                    (unsigned)i, type_name(el.type));
                return;
            }
            if (tags && (el.len == 0 || el.len > MDX_PROTO_MAX_TAG)) {
                bad(e, MDX_EBADARGS, "argument '%s' element %u must be 1 to %d bytes long, not %u",
                    an, (unsigned)i, MDX_PROTO_MAX_TAG, (unsigned)el.len);
                return;
            }
        }
        return;
    }
    }
}

static int find_op(const uint8_t *s, uint32_t n)
{
    for (int i = 0; i < MDX_OP__COUNT; i++)
        if (ops[i].len == n && memcmp(ops[i].name, s, n) == 0)
            return i;
    return -1;
}

static int find_arg(const uint8_t *s, uint32_t n)
{
    for (int i = 0; i < MDX_ARG__COUNT; i++)
        if (args[i].len == n && memcmp(args[i].name, s, n) == 0)
            return i;
    return -1;
}

/* Lowest-numbered argument in mask (mask != 0). */
static mdx_arg_t first_arg(uint64_t mask)
{
    return (mdx_arg_t)__builtin_ctzll(mask);
}

/* Argument combinations that the per-argument checks cannot see. */
static void check_combinations(const mdx_request_t *req, err_t *e)
{
    uint64_t have = req->present;
    const char *on = ops[req->op].name;
    uint64_t missing = required[req->op] & ~have;
    if (missing) {
        bad(e, MDX_EBADARGS, "'%s' needs argument '%s'", on, args[first_arg(missing)].name);
        return;
    }
    if (req->op == MDX_OP_UPDATE && !(have & (B(SET) | B(UNSET)))) {
        bad(e, MDX_EBADARGS, "'update' needs argument 'set' or 'unset' (or both)");
        return;
    }
    /* Two ways of saying the same thing: one must win, and silently picking one hides a bug. */
    static const mdx_arg_t exclusive[][2] = {
        {MDX_ARG_TTL_MS, MDX_ARG_TTL_CLASS},
        {MDX_ARG_DEFAULT_TTL_MS, MDX_ARG_DEFAULT_TTL},
    };
    for (size_t i = 0; i < sizeof exclusive / sizeof exclusive[0]; i++) {
        uint64_t both = (UINT64_C(1) << exclusive[i][0]) | (UINT64_C(1) << exclusive[i][1]);
        if ((have & both) == both) {
            bad(e, MDX_EBADARGS, "arguments '%s' and '%s' cannot be combined",
                args[exclusive[i][0]].name, args[exclusive[i][1]].name);
            return;
        }
    }
    if (req->op == MDX_OP_TTL_SET && !(have & (B(TTL_MS) | B(TTL_CLASS)))) {
        bad(e, MDX_EBADARGS, "'ttl_set' needs argument 'ttl_ms' or 'ttl_class'");
        return;
    }
    if (req->op == MDX_OP_CONFIGURE_COLLECTION && !(have & COLL_OPTS)) {
        bad(e, MDX_EBADARGS,
            "'configure_collection' needs at least one of 'capacity', 'policy', "
            "'default_ttl_ms' or 'default_ttl'");
        return;
    }
    if ((have & B(EQ)) && (have & (RANGE & ~B(EQ))))
        bad(e, MDX_EBADARGS, "argument 'eq' cannot be combined with '%s'",
            args[first_arg(have & RANGE & ~B(EQ))].name);
    else if ((have & B(GE)) && (have & B(GT)))
        bad(e, MDX_EBADARGS, "arguments 'ge' and 'gt' cannot be combined");
    else if ((have & B(LE)) && (have & B(LT)))
        bad(e, MDX_EBADARGS, "arguments 'le' and 'lt' cannot be combined");
}

int mdx_request_decode(const uint8_t *payload, size_t len, mdx_request_t *req, char *errbuf,
                       size_t errlen)
{
    err_t e = {errbuf, errlen, 0};
    const uint8_t *p = payload, *end = payload + len;
    mdx_mp_tok_t t, k;
    char q[272];
    int op;

    memset(req, 0, sizeof *req);
    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (len == 0)
        return proto(&e, "empty payload: a request is an array [id, op, args]");
    if (len > UINT32_MAX) /* cannot come from a frame; raw_len is 32 bits */
        return proto(&e, "request larger than 4 GiB");
    if (mdx_mp_read(&p, end, &t))
        return proto(&e, "malformed msgpack at the start of the request");
    if (t.type != MDX_MP_ARRAY)
        return proto(&e, "request must be an array [id, op, args], not %s", type_name(t.type));

    /* The id first, even from a bad envelope, so the error reply can carry it. */
    int rc = MDX_EPROTO, id_ok = 0;
    if (t.len >= 1) {
        rc = mdx_mp_read(&p, end, &k);
        id_ok = !rc && is_uint(&k, &req->id);
    }
    if (t.len != 3)
        return proto(&e, "request must be an array of 3 elements [id, op, args], not %u",
                     (unsigned)t.len);
    if (rc)
        return proto(&e, "malformed msgpack in the request id");
    if (!id_ok)
        return proto(&e, "request id must be a non-negative integer, not %s",
                     k.type == MDX_MP_INT ? "a negative integer" : type_name(k.type));

    if (mdx_mp_read(&p, end, &k))
        return proto(&e, "malformed msgpack in the op");
    if (k.type != MDX_MP_STR)
        return proto(&e, "op must be a string, not %s", type_name(k.type));
    op = find_op(k.v.ptr, k.len);
    if (op < 0)
        bad(&e, MDX_EUNKNOWNOP, "unknown operation '%s'", quote(q, k.v.ptr, k.len));
    else
        req->op = (mdx_op_t)op;

    if (mdx_mp_read(&p, end, &t))
        return proto(&e, "malformed msgpack in the args");
    if (t.type != MDX_MP_MAP)
        return proto(&e, "args must be a map, not %s", type_name(t.type));
    if ((uint64_t)t.len * 2 > (uint64_t)(end - p))
        return proto(&e, "args claims %u entries but only %zu bytes follow", (unsigned)t.len,
                     (size_t)(end - p));
    uint64_t allowed = op < 0 ? 0 : required[op] | optional[op];

    /* Keys and values both sit at depth 2 (request array, args map). */
    for (uint32_t i = 0; i < t.len; i++) {
        const uint8_t *kp = p;
        if (mdx_mp_skip(&p, end, MDX_PROTO_MAX_DEPTH - 2))
            return proto(&e, "malformed msgpack, or nesting deeper than %d, in args entry %u",
                         MDX_PROTO_MAX_DEPTH, (unsigned)i);
        mdx_mp_read(&kp, p, &k);
        const uint8_t *v = p;
        if (mdx_mp_skip(&p, end, MDX_PROTO_MAX_DEPTH - 2))
            return proto(&e, "malformed msgpack, or nesting deeper than %d, in args entry %u",
                         MDX_PROTO_MAX_DEPTH, (unsigned)i);
        if (e.code)
            continue; /* already failed: only well-formedness is left to check */
        if (k.type != MDX_MP_STR) {
            bad(&e, MDX_EBADARGS, "argument names must be strings, not %s", type_name(k.type));
            continue;
        }
        int a = find_arg(k.v.ptr, k.len);
        if (a < 0) {
            bad(&e, MDX_EBADARGS, "unknown argument '%s'", quote(q, k.v.ptr, k.len));
        } else if (!(allowed >> a & 1)) {
            bad(&e, MDX_EBADARGS, "'%s' does not take argument '%s'", ops[op].name, args[a].name);
        } else if (req->present >> a & 1) {
            bad(&e, MDX_EBADARGS, "argument '%s' given twice", args[a].name);
        } else {
            req->present |= UINT64_C(1) << a;
            check_arg((mdx_arg_t)a, v, p, &req->args[a], &e);
        }
    }
    if (p != end)
        return proto(&e, "trailing bytes after the request (%zu)", (size_t)(end - p));
    if (!e.code)
        check_combinations(req, &e);
    return e.code;
}
