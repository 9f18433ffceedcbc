/*
 * JSON <-> msgpack transcoder (see json.h for the mapping).
 *
 * Why not jansson: `memdex import` must sustain 500,000 records/s on two cores shared with the
 * server, and building a jansson tree for a 5-field record costs about 2 us on this machine (the
 * whole budget). jansson also cannot hold integers above INT64_MAX (msgpack uint64), so a tree
 * in the middle would break the exact export/import round trip. This parser writes msgpack as
 * it reads, allocates nothing per value, and validates UTF-8 on the way.
 *
 * Container lengths are not known until their end: a 1-byte header is reserved and widened (a
 * memmove of the elements) only when a container has more than 15 elements, so the output is
 * always the shortest encoding. An object whose first key is a reserved tag is parsed
 * speculatively as a tag and re-parsed as a plain map if a second member follows.
 */
#include "client/cli/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memdex/error.h"

#define JSON_MAX_DEPTH 128 /* recursion bound; the server refuses deeper requests anyway */

enum { TAG_NONE, TAG_BIN, TAG_STR, TAG_EXT, TAG_FLOAT, TAG_MAP };

typedef struct {
    const char *start, *p, *end;
    mdx_buf_t *out;
    mdx_buf_t tmp; /* escaped strings, number text */
    mdx_json_err_t *err;
    int failed;
} jp_t;

static int value(jp_t *j, int depth, int notag);

static int fail(jp_t *j, const char *at, const char *msg)
{
    if (!j->failed && j->err) {
        j->err->offset = (size_t)(at - j->start);
        snprintf(j->err->msg, sizeof(j->err->msg), "%s", msg);
    }
    j->failed = 1;
    return MDX_EINVAL;
}

static int fail_at(jp_t *j, const char *msg)
{
    if (j->p >= j->end)
        return fail(j, j->p, "unexpected end of input");
    return fail(j, j->p, msg);
}

static inline void ws(jp_t *j)
{
    const char *p = j->p, *e = j->end;
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r'))
        p++;
    j->p = p;
}

/* ---- UTF-8 ---- */

/* Length of the valid UTF-8 sequence at s (lead byte >= 0x80), or 0 when invalid. */
static size_t utf8_seq(const uint8_t *s, const uint8_t *e)
{
    uint8_t c = s[0];
    size_t n;
    uint8_t lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if ((size_t)(e - s) < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

int mdx__utf8_valid(const uint8_t *s, size_t n)
{
    const uint8_t *e = s + n;
    while (s < e) {
        if (*s < 0x80) {
            s++;
            continue;
        }
        size_t k = utf8_seq(s, e);
        if (!k)
            return 0;
        s += k;
    }
    return 1;
}

/* ---- JSON to msgpack ---- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void put_utf8(mdx_buf_t *b, uint32_t cp)
{
    uint8_t o[4];
    size_t n;
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        o[0] = (uint8_t)(0xc0 | cp >> 6);
        o[1] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        o[0] = (uint8_t)(0xe0 | cp >> 12);
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        o[0] = (uint8_t)(0xf0 | cp >> 18);
        o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
        o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        o[3] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 4;
    }
    mdx_buf_append(b, o, n);
}

static int hex4(jp_t *j, const char *p, uint32_t *v)
{
    if (j->end - p < 4)
        return fail(j, p, "truncated \\u escape");
    uint32_t r = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval((unsigned char)p[i]);
        if (h < 0)
            return fail(j, p, "bad \\u escape");
        r = r << 4 | (uint32_t)h;
    }
    *v = r;
    return 0;
}

/* Parses the string literal at j->p (which is '"'). Sets *s and *n to its decoded bytes: a view
 * into the input when it has no escapes, else into j->tmp (valid until the next string). */
static int string(jp_t *j, const char **s, size_t *n)
{
    const uint8_t *p = (const uint8_t *)j->p + 1, *e = (const uint8_t *)j->end;
    const uint8_t *begin = p;
    for (;;) {
        while (p < e && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
            p++;
        if (p >= e)
            return fail(j, j->end, "unterminated string");
        if (*p == '"') {
            *s = (const char *)begin;
            *n = (size_t)(p - begin);
            j->p = (const char *)p + 1;
            return 0;
        }
        if (*p == '\\')
            break;
        if (*p < 0x20)
            return fail(j, (const char *)p, "control character in string");
        size_t k = utf8_seq(p, e);
        if (!k)
            return fail(j, (const char *)p, "invalid UTF-8 in string");
        p += k;
    }
    /* Slow path: escapes. */
    mdx_buf_t *t = &j->tmp;
    t->len = 0;
    mdx_buf_append(t, begin, (size_t)(p - begin));
    for (;;) {
        const uint8_t *q = p;
        while (q < e && *q >= 0x20 && *q < 0x80 && *q != '"' && *q != '\\')
            q++;
        mdx_buf_append(t, p, (size_t)(q - p));
        p = q;
        if (p >= e)
            return fail(j, j->end, "unterminated string");
        if (*p == '"')
            break;
        if (*p < 0x20)
            return fail(j, (const char *)p, "control character in string");
        if (*p >= 0x80) {
            size_t k = utf8_seq(p, e);
            if (!k)
                return fail(j, (const char *)p, "invalid UTF-8 in string");
            mdx_buf_append(t, p, k);
            p += k;
            continue;
        }
        /* backslash */
        if (e - p < 2)
            return fail(j, j->end, "unterminated string");
        char c = (char)p[1], o;
        switch (c) {
        case '"':
        case '\\':
        case '/':
            o = c;
            break;
        case 'b':
            o = '\b';
            break;
        case 'f':
            o = '\f';
            break;
        case 'n':
            o = '\n';
            break;
        case 'r':
            o = '\r';
            break;
        case 't':
            o = '\t';
            break;
        case 'u': {
            uint32_t cp;
            if (hex4(j, (const char *)p + 2, &cp))
                return MDX_EINVAL;
            const uint8_t *at = p;
            p += 6;
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return fail(j, (const char *)at, "lone low surrogate in \\u escape");
            if (cp >= 0xd800 && cp <= 0xdbff) {
                uint32_t lo;
                if (e - p < 2 || p[0] != '\\' || p[1] != 'u' || hex4(j, (const char *)p + 2, &lo) ||
                    lo < 0xdc00 || lo > 0xdfff) {
                    j->failed = 0;
                    return fail(j, (const char *)at, "unpaired surrogate in \\u escape");
                }
                p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            put_utf8(t, cp);
            continue;
        }
        default:
            return fail(j, (const char *)p, "bad escape in string");
        }
        mdx_buf_append(t, &o, 1);
        p += 2;
    }
    if (t->err)
        return t->err;
    *s = (const char *)t->data;
    *n = t->len;
    j->p = (const char *)p + 1;
    return 0;
}

static int number(jp_t *j)
{
    const char *p = j->p, *e = j->end, *b = p;
    int neg = 0, isfloat = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (p >= e || *p < '0' || *p > '9')
        return fail(j, p, "bad number");
    uint64_t u = 0;
    int over = 0;
    if (*p == '0') {
        p++;
    } else {
        while (p < e && *p >= '0' && *p <= '9') {
            unsigned d = (unsigned)(*p - '0');
            if (u > (UINT64_MAX - d) / 10)
                over = 1;
            u = u * 10 + d;
            p++;
        }
    }
    if (p < e && *p == '.') {
        isfloat = 1;
        p++;
        if (p >= e || *p < '0' || *p > '9')
            return fail(j, p, "bad number: digit expected after '.'");
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        isfloat = 1;
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            p++;
        if (p >= e || *p < '0' || *p > '9')
            return fail(j, p, "bad number: digit expected in exponent");
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    j->p = p;
    if (!isfloat && !over) {
        if (!neg) {
            mdx_mp_put_uint(j->out, u);
            return 0;
        }
        if (u <= (uint64_t)INT64_MAX + 1) {
            mdx_mp_put_int(j->out, u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u);
            return 0;
        }
    }
    /* strtod needs a NUL-terminated copy; the C locale is never changed by the CLI. */
    mdx_buf_t *t = &j->tmp;
    t->len = 0;
    mdx_buf_append(t, b, (size_t)(p - b));
    mdx_buf_append(t, "", 1);
    if (t->err)
        return t->err;
    mdx_mp_put_double(j->out, strtod((const char *)t->data, NULL));
    return 0;
}

static int literal(jp_t *j, const char *word, size_t n)
{
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return fail_at(j, "invalid literal");
    j->p += n;
    return 0;
}

/* A container header for n elements at out[mark] where 1 byte was reserved. */
static void close_container(mdx_buf_t *o, size_t mark, uint32_t n, int map)
{
    if (o->err)
        return;
    uint8_t h[5];
    size_t hl = map ? mdx_mp_enc_map_header(h, n) : mdx_mp_enc_array_header(h, n);
    if (hl > 1) {
        if (mdx_buf_reserve(o, hl - 1))
            return;
        memmove(o->data + mark + hl, o->data + mark + 1, o->len - mark - 1);
        o->len += hl - 1;
    }
    memcpy(o->data + mark, h, hl);
}

static int array(jp_t *j, int depth)
{
    size_t mark = j->out->len;
    mdx_buf_append(j->out, "", 1);
    j->p++;
    ws(j);
    uint32_t n = 0;
    if (j->p < j->end && *j->p == ']') {
        j->p++;
        close_container(j->out, mark, 0, 0);
        return j->out->err;
    }
    for (;;) {
        int rc = value(j, depth + 1, 0);
        if (rc)
            return rc;
        if (n == UINT32_MAX)
            return fail_at(j, "array too long");
        n++;
        ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            ws(j);
            continue;
        }
        if (j->p < j->end && *j->p == ']') {
            j->p++;
            break;
        }
        return fail_at(j, "expected ',' or ']'");
    }
    close_container(j->out, mark, n, 0);
    return j->out->err;
}

static int tag_of(const char *s, size_t n)
{
    if (n < 4 || s[0] != '$')
        return TAG_NONE;
    if (n == 4 && memcmp(s, "$bin", 4) == 0)
        return TAG_BIN;
    if (n == 4 && memcmp(s, "$str", 4) == 0)
        return TAG_STR;
    if (n == 4 && memcmp(s, "$ext", 4) == 0)
        return TAG_EXT;
    if (n == 4 && memcmp(s, "$map", 4) == 0)
        return TAG_MAP;
    if (n == 6 && memcmp(s, "$float", 6) == 0)
        return TAG_FLOAT;
    return TAG_NONE;
}

/* Members of an object after its '{' and leading whitespace; the map header is at mark. */
static int members(jp_t *j, int depth, size_t mark)
{
    uint32_t n = 0;
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        close_container(j->out, mark, 0, 1);
        return j->out->err;
    }
    for (;;) {
        if (j->p >= j->end || *j->p != '"')
            return fail_at(j, "expected a string key");
        const char *k;
        size_t kn;
        int rc = string(j, &k, &kn);
        if (rc)
            return rc;
        mdx_mp_put_str(j->out, k, kn);
        ws(j);
        if (j->p >= j->end || *j->p != ':')
            return fail_at(j, "expected ':'");
        j->p++;
        ws(j);
        if ((rc = value(j, depth + 1, 0)))
            return rc;
        if (n == UINT32_MAX)
            return fail_at(j, "object too large");
        n++;
        ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            ws(j);
            continue;
        }
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            break;
        }
        return fail_at(j, "expected ',' or '}'");
    }
    close_container(j->out, mark, n, 1);
    return j->out->err;
}

static int hex_decode(jp_t *j, const char *at, const uint8_t *s, size_t n, mdx_buf_t *o)
{
    if (n % 2)
        return fail(j, at, "hex string of odd length");
    if (mdx_buf_reserve(o, n / 2))
        return o->err;
    for (size_t i = 0; i < n; i += 2) {
        int a = hexval(s[i]), b = hexval(s[i + 1]);
        if (a < 0 || b < 0)
            return fail(j, at, "bad hex digit");
        o->data[o->len++] = (uint8_t)(a << 4 | b);
    }
    return 0;
}

/* Rewrites the tag value parsed at out[vstart..] as the value it stands for, at out[mark..].
 * `at` points at the value in the input, for error messages. */
static int apply_tag(jp_t *j, int tag, size_t mark, size_t vstart, const char *at)
{
    mdx_buf_t *o = j->out;
    const uint8_t *p = o->data + vstart, *e = o->data + o->len;
    mdx_mp_tok_t t;
    mdx_buf_t r;
    mdx_buf_init(&r);
    int rc = 0;
    if (mdx_mp_read(&p, e, &t))
        return fail(j, at, "bad tag value");
    switch (tag) {
    case TAG_BIN:
    case TAG_STR: {
        if (t.type != MDX_MP_STR) {
            rc =
                fail(j, at, tag == TAG_BIN ? "$bin needs a hex string" : "$str needs a hex string");
            break;
        }
        mdx_buf_t raw;
        mdx_buf_init(&raw);
        if (!(rc = hex_decode(j, at, t.v.ptr, t.len, &raw))) {
            if (tag == TAG_BIN)
                mdx_mp_put_bin(&r, raw.data, raw.len);
            else
                mdx_mp_put_str(&r, raw.data, raw.len);
        }
        mdx_buf_fini(&raw);
        break;
    }
    case TAG_FLOAT: {
        double d;
        if (t.type == MDX_MP_STR && t.len == 3 && memcmp(t.v.ptr, "NaN", 3) == 0)
            d = NAN;
        else if (t.type == MDX_MP_STR && t.len == 8 && memcmp(t.v.ptr, "Infinity", 8) == 0)
            d = INFINITY;
        else if (t.type == MDX_MP_STR && t.len == 9 && memcmp(t.v.ptr, "-Infinity", 9) == 0)
            d = -INFINITY;
        else {
            rc = fail(j, at, "$float must be \"NaN\", \"Infinity\" or \"-Infinity\"");
            break;
        }
        mdx_mp_put_double(&r, d);
        break;
    }
    case TAG_EXT: {
        mdx_mp_tok_t ty, hx;
        if (t.type != MDX_MP_ARRAY || t.len != 2 || mdx_mp_read(&p, e, &ty) ||
            ty.type != MDX_MP_INT || ty.v.i < -128 || ty.v.i > 127 || mdx_mp_read(&p, e, &hx) ||
            hx.type != MDX_MP_STR) {
            rc = fail(j, at, "$ext needs [type (-128..127), \"hex\"]");
            break;
        }
        mdx_buf_t raw;
        mdx_buf_init(&raw);
        if (!(rc = hex_decode(j, at, hx.v.ptr, hx.len, &raw))) {
            /* ext header: fixext for 1/2/4/8/16 bytes, else ext8/16/32. */
            uint8_t h[6];
            size_t hl, n = raw.len;
            static const uint8_t fix[17] = {
                [1] = 0xd4, [2] = 0xd5, [4] = 0xd6, [8] = 0xd7, [16] = 0xd8};
            if (n <= 16 && fix[n]) {
                h[0] = fix[n];
                hl = 1;
            } else if (n <= 0xff) {
                h[0] = 0xc7;
                h[1] = (uint8_t)n;
                hl = 2;
            } else if (n <= 0xffff) {
                h[0] = 0xc8;
                h[1] = (uint8_t)(n >> 8);
                h[2] = (uint8_t)n;
                hl = 3;
            } else {
                h[0] = 0xc9;
                h[1] = (uint8_t)(n >> 24);
                h[2] = (uint8_t)(n >> 16);
                h[3] = (uint8_t)(n >> 8);
                h[4] = (uint8_t)n;
                hl = 5;
            }
            h[hl++] = (uint8_t)(int8_t)ty.v.i;
            mdx_buf_append(&r, h, hl);
            mdx_buf_append(&r, raw.data, raw.len);
        }
        mdx_buf_fini(&raw);
        break;
    }
    case TAG_MAP: {
        if (t.type == MDX_MP_MAP) {
            /* {"$map": {...}}: the object was parsed with tags off at its top level. */
            mdx_buf_append(&r, o->data + vstart, o->len - vstart);
            break;
        }
        if (t.type != MDX_MP_ARRAY) {
            rc = fail(j, at, "$map needs an object or an array of [key, value] pairs");
            break;
        }
        mdx_buf_reserve(&r, o->len - vstart);
        mdx_mp_put_map(&r, t.len);
        for (uint32_t i = 0; i < t.len && !rc; i++) {
            mdx_mp_tok_t pr;
            const uint8_t *kv;
            if (mdx_mp_read(&p, e, &pr) || pr.type != MDX_MP_ARRAY || pr.len != 2) {
                rc = fail(j, at, "$map pairs must be [key, value] arrays");
                break;
            }
            kv = p;
            if (mdx_mp_skip(&p, e, MDX_MP_MAX_DEPTH) || mdx_mp_skip(&p, e, MDX_MP_MAX_DEPTH)) {
                rc = fail(j, at, "$map pair nested too deeply");
                break;
            }
            mdx_buf_append(&r, kv, (size_t)(p - kv));
        }
        break;
    }
    }
    if (!rc && r.err)
        rc = r.err;
    if (!rc) {
        o->len = mark;
        mdx_buf_append(o, r.data, r.len);
        rc = o->err;
    }
    mdx_buf_fini(&r);
    return rc;
}

static int object(jp_t *j, int depth, int notag)
{
    size_t mark = j->out->len;
    const char *open = j->p;
    mdx_buf_append(j->out, "", 1);
    j->p++;
    ws(j);
    if (!notag && j->end - j->p > 4 && *j->p == '"' && (j->p[1] == '$' || j->p[1] == '\\')) {
        /* Maybe a tag: parse "key": value and see whether the object ends there. */
        const char *k;
        size_t kn;
        int rc = string(j, &k, &kn);
        if (rc)
            return rc;
        int tag = tag_of(k, kn);
        if (tag != TAG_NONE) {
            ws(j);
            if (j->p >= j->end || *j->p != ':')
                return fail_at(j, "expected ':'");
            j->p++;
            ws(j);
            const char *at = j->p;
            size_t vstart = j->out->len;
            if ((rc = value(j, depth + 1, tag == TAG_MAP)))
                return rc;
            ws(j);
            if (j->p < j->end && *j->p == '}') {
                j->p++;
                return apply_tag(j, tag, mark, vstart, at);
            }
        }
        /* A plain map after all: start over with tags off for this object only. */
        j->out->len = mark + 1;
        j->p = open + 1;
        ws(j);
    }
    return members(j, depth, mark);
}

static int value(jp_t *j, int depth, int notag)
{
    if (depth > JSON_MAX_DEPTH)
        return fail_at(j, "nested too deeply");
    if (j->p >= j->end)
        return fail_at(j, "");
    switch (*j->p) {
    case '{':
        return object(j, depth, notag);
    case '[':
        return array(j, depth);
    case '"': {
        const char *s;
        size_t n;
        int rc = string(j, &s, &n);
        if (rc)
            return rc;
        mdx_mp_put_str(j->out, s, n);
        return 0;
    }
    case 't':
        mdx_mp_put_bool(j->out, 1);
        return literal(j, "true", 4);
    case 'f':
        mdx_mp_put_bool(j->out, 0);
        return literal(j, "false", 5);
    case 'n':
        mdx_mp_put_nil(j->out);
        return literal(j, "null", 4);
    default:
        if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))
            return number(j);
        return fail_at(j, "unexpected character");
    }
}

int mdx__json_to_mp(const char *s, size_t n, mdx_buf_t *out, mdx_json_err_t *err)
{
    jp_t j = {.start = s, .p = s, .end = s + n, .out = out, .err = err};
    mdx_buf_init(&j.tmp);
    size_t len0 = out->len;
    ws(&j);
    int rc = value(&j, 0, 0);
    if (!rc) {
        ws(&j);
        if (j.p < j.end)
            rc = fail(&j, j.p, "unexpected text after the value");
    }
    if (!rc && out->err)
        rc = out->err;
    if (!rc && j.tmp.err)
        rc = j.tmp.err;
    mdx_buf_fini(&j.tmp);
    if (rc) {
        if (rc == MDX_EINVAL && !j.failed)
            rc = MDX_ENOMEM;
        if (rc == MDX_ENOMEM && err) {
            err->offset = 0;
            snprintf(err->msg, sizeof(err->msg), "out of memory");
        }
        if (!out->err)
            out->len = len0;
    }
    return rc;
}

/* ---- msgpack to JSON ---- */

static const char hexdig[] = "0123456789abcdef";

void mdx__json_put_str(mdx_buf_t *o, const char *s, size_t n)
{
    /* Worst case every byte becomes \u00XX. */
    if (mdx_buf_reserve(o, n * 6 + 2))
        return;
    uint8_t *d = o->data + o->len;
    *d++ = '"';
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *d++ = c;
            continue;
        }
        *d++ = '\\';
        switch (c) {
        case '"':
        case '\\':
            *d++ = c;
            break;
        case '\b':
            *d++ = 'b';
            break;
        case '\f':
            *d++ = 'f';
            break;
        case '\n':
            *d++ = 'n';
            break;
        case '\r':
            *d++ = 'r';
            break;
        case '\t':
            *d++ = 't';
            break;
        default:
            *d++ = 'u';
            *d++ = '0';
            *d++ = '0';
            *d++ = (uint8_t)hexdig[c >> 4];
            *d++ = (uint8_t)hexdig[c & 15];
        }
    }
    *d++ = '"';
    o->len = (size_t)(d - o->data);
}

static void put_lit(mdx_buf_t *o, const char *s)
{
    mdx_buf_append(o, s, strlen(s));
}

static void put_hex(mdx_buf_t *o, const uint8_t *s, size_t n)
{
    if (mdx_buf_reserve(o, n * 2 + 2))
        return;
    uint8_t *d = o->data + o->len;
    *d++ = '"';
    for (size_t i = 0; i < n; i++) {
        *d++ = (uint8_t)hexdig[s[i] >> 4];
        *d++ = (uint8_t)hexdig[s[i] & 15];
    }
    *d++ = '"';
    o->len = (size_t)(d - o->data);
}

static int reads_back(char *b, size_t n, int prec, double d)
{
    snprintf(b, n, "%.*g", prec, d);
    double back = strtod(b, NULL);
    return memcmp(&back, &d, sizeof(d)) == 0;
}

/* Shortest text that reads back as the same double (17 significant digits always do; if p
 * digits do, so do more, hence the binary search), always with a '.' or an exponent so it reads
 * back as a float, not an integer. Only the text must read back exactly: any of these choices
 * keeps export/import exact. */
static void put_double(mdx_buf_t *o, double d)
{
    if (isnan(d)) {
        put_lit(o, "{\"$float\":\"NaN\"}");
        return;
    }
    if (isinf(d)) {
        put_lit(o, d > 0 ? "{\"$float\":\"Infinity\"}" : "{\"$float\":\"-Infinity\"}");
        return;
    }
    char b[320]; /* %g of any double at any precision fits */
    int lo = 1, hi = 17;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (reads_back(b, sizeof(b), mid, d))
            hi = mid;
        else
            lo = mid + 1;
    }
    /* Integral digits in full (100.0, not 1e+02) while they are exact. */
    double a = fabs(d);
    if (a >= 1 && a < 1e16) {
        int digits = 0;
        for (uint64_t v = (uint64_t)a; v; v /= 10)
            digits++;
        if (digits > lo)
            lo = digits;
    }
    snprintf(b, sizeof(b), "%.*g", lo, d);
    put_lit(o, b);
    if (!strpbrk(b, ".e"))
        put_lit(o, ".0");
}

static void put_i64(mdx_buf_t *o, int64_t v)
{
    char b[24];
    int n = snprintf(b, sizeof(b), "%lld", (long long)v);
    mdx_buf_append(o, b, (size_t)n);
}

static void put_u64(mdx_buf_t *o, uint64_t v)
{
    char b[24];
    int n = snprintf(b, sizeof(b), "%llu", (unsigned long long)v);
    mdx_buf_append(o, b, (size_t)n);
}

static int render(const uint8_t **pp, const uint8_t *e, mdx_buf_t *o, int depth);

/* How a map must be written: 0 a plain object, 1 an object escaped as {"$map": {...}} (its only
 * key is a reserved tag), 2 pairs {"$map": [[k, v], ...]} (a key is not a UTF-8 string). */
static int map_form(const uint8_t *p, const uint8_t *e, uint32_t n, int *form)
{
    *form = 0;
    for (uint32_t i = 0; i < n; i++) {
        mdx_mp_tok_t k;
        if (mdx_mp_read(&p, e, &k))
            return MDX_EPROTO;
        if (k.type != MDX_MP_STR || !mdx__utf8_valid(k.v.ptr, k.len)) {
            *form = 2;
            return 0;
        }
        if (n == 1 && tag_of((const char *)k.v.ptr, k.len) != TAG_NONE)
            *form = 1;
        if (mdx_mp_skip(&p, e, MDX_MP_MAX_DEPTH))
            return MDX_EPROTO;
    }
    return 0;
}

static int render_map(const uint8_t **pp, const uint8_t *e, mdx_buf_t *o, uint32_t n, int depth)
{
    int form, rc;
    if ((rc = map_form(*pp, e, n, &form)))
        return rc;
    if (form == 1)
        put_lit(o, "{\"$map\":");
    if (form == 2) {
        put_lit(o, "{\"$map\":[");
        for (uint32_t i = 0; i < n; i++) {
            put_lit(o, i ? ",[" : "[");
            if ((rc = render(pp, e, o, depth + 1)))
                return rc;
            mdx_buf_append(o, ",", 1);
            if ((rc = render(pp, e, o, depth + 1)))
                return rc;
            mdx_buf_append(o, "]", 1);
        }
        put_lit(o, "]}");
        return 0;
    }
    mdx_buf_append(o, "{", 1);
    for (uint32_t i = 0; i < n; i++) {
        mdx_mp_tok_t k;
        if (mdx_mp_read(pp, e, &k))
            return MDX_EPROTO;
        if (i)
            mdx_buf_append(o, ",", 1);
        mdx__json_put_str(o, (const char *)k.v.ptr, k.len);
        mdx_buf_append(o, ":", 1);
        if ((rc = render(pp, e, o, depth + 1)))
            return rc;
    }
    mdx_buf_append(o, "}", 1);
    if (form == 1)
        mdx_buf_append(o, "}", 1);
    return 0;
}

static int render(const uint8_t **pp, const uint8_t *e, mdx_buf_t *o, int depth)
{
    mdx_mp_tok_t t;
    if (depth > MDX_MP_MAX_DEPTH || mdx_mp_read(pp, e, &t))
        return MDX_EPROTO;
    switch (t.type) {
    case MDX_MP_NIL:
        put_lit(o, "null");
        break;
    case MDX_MP_BOOL:
        put_lit(o, t.v.b ? "true" : "false");
        break;
    case MDX_MP_INT:
        put_i64(o, t.v.i);
        break;
    case MDX_MP_UINT:
        put_u64(o, t.v.u);
        break;
    case MDX_MP_FLOAT:
        put_double(o, t.v.f);
        break;
    case MDX_MP_STR:
        if (mdx__utf8_valid(t.v.ptr, t.len)) {
            mdx__json_put_str(o, (const char *)t.v.ptr, t.len);
        } else {
            put_lit(o, "{\"$str\":");
            put_hex(o, t.v.ptr, t.len);
            mdx_buf_append(o, "}", 1);
        }
        break;
    case MDX_MP_BIN:
        put_lit(o, "{\"$bin\":");
        put_hex(o, t.v.ptr, t.len);
        mdx_buf_append(o, "}", 1);
        break;
    case MDX_MP_EXT:
        put_lit(o, "{\"$ext\":[");
        put_i64(o, t.ext_type);
        mdx_buf_append(o, ",", 1);
        put_hex(o, t.v.ptr, t.len);
        put_lit(o, "]}");
        break;
    case MDX_MP_ARRAY:
        mdx_buf_append(o, "[", 1);
        for (uint32_t i = 0; i < t.len; i++) {
            if (i)
                mdx_buf_append(o, ",", 1);
            int rc = render(pp, e, o, depth + 1);
            if (rc)
                return rc;
        }
        mdx_buf_append(o, "]", 1);
        break;
    case MDX_MP_MAP: {
        int rc = render_map(pp, e, o, t.len, depth);
        if (rc)
            return rc;
        break;
    }
    }
    return o->err;
}

int mdx__mp_to_json(const uint8_t **p, const uint8_t *end, mdx_buf_t *out)
{
    const uint8_t *q = *p;
    int rc = render(&q, end, out, 0);
    if (!rc)
        *p = q;
    return rc;
}
