/*
 * The CLI's commands: one table row per command (usage, help, example, flags), the parser of a
 * command line, the builders of each request's args map, and the printers of results.
 *
 * A command line is parsed completely, and every JSON argument converted, before anything is
 * sent: a usage error never leaves a half-done request behind. Results print as one line of
 * JSON (the response body, rendered by json.c), "OK" for commands whose result is nil, and
 * msgpack hex with --raw. The table is the single source of `memdex --help`, `help CMD` and
 * the command list in docs/cli.md (keep them in step).
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/cli/cli.h"
#include "client/cli/json.h"
#include "memdex/error.h"

#define MAX_POS 10001 /* positional words: mget's collection and up to 10,000 keys */

/* Flags of commands; global flags are handled beside them (see parse()). */
#define FLAG_MAP(XX)                                                                               \
    XX(MODE, "mode", "M", "put mode: upsert (default), insert or replace")                         \
    XX(TTL, "ttl", "MS", "expire the record MS milliseconds from now")                             \
    XX(KEEP_TTL, "keep-ttl", NULL, "when replacing, keep the old record's expiry")                 \
    XX(KIND, "kind", "K", "index kind: hash (equality) or skiplist (ordered)")                     \
    XX(UNIQUE, "unique", NULL, "refuse two records with the same value")                           \
    XX(SET, "set", "JSON", "fields to set, as a JSON object")                                      \
    XX(UNSET, "unset", "F,G", "fields to remove: comma-separated, or a JSON array")                \
    XX(EQ, "eq", "V", "index value equal to V")                                                    \
    XX(GE, "ge", "V", "index value >= V")                                                          \
    XX(GT, "gt", "V", "index value > V")                                                           \
    XX(LE, "le", "V", "index value <= V")                                                          \
    XX(LT, "lt", "V", "index value < V")                                                           \
    XX(DESC, "desc", NULL, "descending order")                                                     \
    XX(LIMIT, "limit", "N", "records per page (1..10000, default 100)")                            \
    XX(OFFSET, "offset", "N", "records to skip first")                                             \
    XX(AFTER, "after", "CURSOR", "resume after the cursor of the previous page (JSON)")            \
    XX(CURSOR, "cursor", "N", "scan cursor from the previous page (0: start)")                     \
    XX(STR_KEY, "str-key", NULL, "take KEY arguments as strings, even number-looking ones")        \
    XX(JSON, "json", NULL, "print the result as JSON")                                             \
    XX(KEY, "key", "FIELD", "the field holding each record's key")                                 \
    XX(STRICT, "strict", NULL, "stop at the first bad line")                                       \
    XX(IGNORE_BAD, "ignore-bad", NULL, "exit 0 even when some lines were bad")                     \
    XX(UNSORTED, "unsorted", NULL, "stream in scan order instead of key order")                    \
    XX(TTL_CLASS, "ttl-class", "C", "expire after the TTL of class C (short, medium, long, ...)")  \
    XX(TAGS, "tags", "T,U", "tags: comma-separated, or a JSON array")                              \
    XX(WITH_TAGS, "with-tags", NULL, "print {body, tags} for each record found")                   \
    XX(CAPACITY, "capacity", "N", "most records the collection holds (0: no limit)")               \
    XX(POLICY, "policy", "P", "eviction policy: noeviction, s3fifo, sieve, lru or default")        \
    XX(DEFAULT_TTL, "default-ttl", "MS|C", "TTL of puts that name none: milliseconds or a class")  \
    XX(COLL, "coll", "COLL", "only this collection (default: every collection)")

enum {
#define XX(e, name, meta, help) F_##e,
    FLAG_MAP(XX)
#undef XX
        F__COUNT
};

static const struct {
    const char *name, *meta, *help;
} flag_info[] = {
#define XX(e, name, meta, help) {name, meta, help},
    FLAG_MAP(XX)
#undef XX
};

#define B(f) (1u << F_##f)
#define COND (B(EQ) | B(GE) | B(GT) | B(LE) | B(LT))

typedef struct {
    const char *cmd;
    const char *pos[16]; /* positional words, beyond the first 16 only for mget: see keys */
    char **rest;         /* all positional words (mget keys) */
    int npos;
    const char *val[F__COUNT]; /* flag values; "" for a flag without value that is present */
} cmdline_t;

typedef struct cmd cmd_t;
typedef int (*build_fn)(mdx_shell_t *sh, const cmd_t *c, const cmdline_t *l, mdx_buf_t *b);
typedef int (*local_fn)(mdx_shell_t *sh, const cmdline_t *l);

enum { OUT_JSON, OUT_OK, OUT_PONG, OUT_STATS };

struct cmd {
    const char *name;
    const char *op; /* wire op; NULL for local commands */
    const char *usage;
    const char *summary;
    const char *example;
    int min_pos, max_pos;
    unsigned flags;
    int out;
    build_fn build;
    local_fn local;
};

/* ---- small helpers ---- */

void mdx__print_error(const char *name, const char *msg)
{
    fprintf(stderr, "error: %s: %s\n", name, msg && *msg ? msg : "(no message)");
}

int mdx__reply_fail(const mdx_cli_reply_t *r)
{
    mdx__print_error(r->name, r->msg);
    return r->kind == MDX_CLI_TRANSPORT ? MDX_EXIT_CONN : MDX_EXIT_ERR;
}

static int usage_error(const cmd_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const cmd_t *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c) {
        fprintf(stderr, "memdex: %s: %s\n", c->name, msg);
        fprintf(stderr, "usage: memdex %s %s\n", c->name, c->usage);
    } else {
        fprintf(stderr, "memdex: %s\n", msg);
    }
    return MDX_EXIT_USAGE;
}

int mdx__write_out(const void *buf, size_t n)
{
    if (n && fwrite(buf, 1, n, stdout) != n)
        return -1;
    return 0;
}

int mdx__parse_uint(const char *s, uint64_t *v)
{
    if (*s < '0' || *s > '9')
        return -1;
    uint64_t r = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        unsigned d = (unsigned)(*s - '0');
        if (r > (UINT64_MAX - d) / 10)
            return -1;
        r = r * 10 + d;
    }
    *v = r;
    return 0;
}

/* -?(0|[1-9][0-9]*): what a key argument must look like to be an integer key. */
static int int_syntax(const char *s)
{
    if (*s == '-')
        s++;
    if (*s == '0')
        return s[1] == '\0';
    if (*s < '1' || *s > '9')
        return 0;
    while (*s >= '0' && *s <= '9')
        s++;
    return *s == '\0';
}

static void put_cstr(mdx_buf_t *b, const char *s)
{
    mdx_mp_put_str(b, s, strlen(s));
}

/* JSON text of an argument into b. loose: text that is not JSON and does not start like a
 * JSON container or string is taken as a string (`--eq ann`). */
static int json_arg(const cmd_t *c, const char *what, const char *text, int loose, mdx_buf_t *b)
{
    mdx_json_err_t e;
    size_t n = strlen(text);
    if (mdx__json_to_mp(text, n, b, &e) == 0)
        return 0;
    if (loose && text[0] != '{' && text[0] != '[' && text[0] != '"') {
        mdx_mp_put_str(b, text, n);
        return 0;
    }
    char msg[200];
    snprintf(msg, sizeof(msg), "invalid JSON at offset %zu: %s", e.offset, e.msg);
    return usage_error(c, "%s: %s", what, msg);
}

int mdx__key_from_text(const char *cmd, const char *text, int force_str, mdx_buf_t *b)
{
    size_t n = strlen(text), mark = b->len;
    if (force_str) {
        mdx_mp_put_str(b, text, n);
        return 0;
    }
    if (text[0] == '"' || text[0] == '{' || int_syntax(text)) {
        mdx_json_err_t e;
        if (mdx__json_to_mp(text, n, b, &e)) {
            fprintf(stderr, "memdex: %s: key '%s': invalid JSON at offset %zu: %s\n", cmd, text,
                    e.offset, e.msg);
            return MDX_EXIT_USAGE;
        }
        const uint8_t *p = b->data + mark;
        mdx_mp_tok_t t;
        if (mdx_mp_read(&p, b->data + b->len, &t) == 0 &&
            (t.type == MDX_MP_INT || t.type == MDX_MP_UINT || t.type == MDX_MP_STR ||
             t.type == MDX_MP_BIN))
            return 0;
        b->len = mark;
        fprintf(stderr,
                "memdex: %s: key '%s' must be an integer (in the int64 or uint64 range), "
                "a string or {\"$bin\": \"hex\"}; --str-key takes it as a string\n",
                cmd, text);
        return MDX_EXIT_USAGE;
    }
    mdx_mp_put_str(b, text, n);
    return 0;
}

/* ---- args maps (at most 15 pairs: a fixmap header patched at the end) ---- */

typedef struct {
    mdx_buf_t *b;
    unsigned n;
} amap_t;

static void am_begin(amap_t *m, mdx_buf_t *b)
{
    b->len = 0;
    b->err = 0;
    m->b = b;
    m->n = 0;
    mdx_buf_append(b, "\x80", 1);
}

static void am_key(amap_t *m, const char *k)
{
    put_cstr(m->b, k);
    m->n++;
}

static void am_str(amap_t *m, const char *k, const char *v)
{
    am_key(m, k);
    put_cstr(m->b, v);
}

static int am_end(amap_t *m)
{
    if (m->b->err)
        return m->b->err;
    m->b->data[0] = (uint8_t)(0x80 | m->n);
    return 0;
}

static int am_uint_flag(amap_t *m, const cmd_t *c, const cmdline_t *l, int f, const char *arg)
{
    if (!l->val[f])
        return 0;
    uint64_t v;
    if (mdx__parse_uint(l->val[f], &v))
        return usage_error(c, "--%s needs a non-negative integer, not '%s'", flag_info[f].name,
                           l->val[f]);
    am_key(m, arg);
    mdx_mp_put_uint(m->b, v);
    return 0;
}

static int am_key_arg(amap_t *m, const cmd_t *c, const cmdline_t *l, const char *text)
{
    am_key(m, "key");
    return mdx__key_from_text(c->name, text, l->val[F_STR_KEY] != NULL, m->b);
}

/* A list flag as an array of strings: a JSON array, or comma-separated words. */
static int am_list(amap_t *m, const cmd_t *c, const char *u, int f, const char *arg)
{
    char what[24];
    snprintf(what, sizeof(what), "--%s", flag_info[f].name);
    am_key(m, arg);
    if (u[0] == '[')
        return json_arg(c, what, u, 0, m->b);
    uint32_t n = 1;
    for (const char *p = u; *p; p++)
        n += *p == ',';
    mdx_mp_put_array(m->b, n);
    for (const char *p = u;;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        mdx_mp_put_str(m->b, p, len);
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

/* ---- builders: one per shape of arguments ---- */

static int b_none(mdx_shell_t *sh, const cmd_t *c, const cmdline_t *l, mdx_buf_t *b)
{
    (void)sh, (void)c, (void)l;
    amap_t m;
    am_begin(&m, b);
    return am_end(&m);
}

static int b_name(mdx_shell_t *sh, const cmd_t *c, const cmdline_t *l, mdx_buf_t *b)
{
    (void)sh, (void)c;
    amap_t m;
    am_begin(&m, b);
    am_str(&m, "name", l->pos[0]);
    return am_end(&m);
}

static int b_coll(mdx_shell_t *sh, const cmd_t *c, const cmdline_t *l, mdx_buf_t *b)
{
    (void)sh, (void)c;
    amap_t m;
    am_begin(&m, b);
    am_str(&m, "coll", l->pos[0]);
    return am_end(&m);
}

static int b_coll_name(mdx_shell_t *sh, const cmd_t *c, const cmdline_t *l, mdx_buf_t *b)
{
    (void)sh, (void)c;
    amap_t m;
    am_begin(&m, b);
    am_str(&m, "coll", l->pos[0]);
    am_str(&m, "name", l->pos[1]);
    return am_end(&m);
}

static int b_create_index(mdx_shell_t *sh, const cmd_t *c, const cmdline_t *l, mdx_buf_t *b)
{
    (void)sh;
    if (!l->val[F_KIND])
        return usage_error(c, "%s", "--kind hash or --kind skiplist is required");
    amap_t m;
    am_begin(&m, b);
    am_str(&m, "coll", l->pos[0]);
    am_str(&m, "name", l->pos[1]);
    am_str(&m, "field", l->pos[2]);
    am_str(&m, "kind", l->val[F_KIND]);
    if (l->val[F_UNIQUE]) {
        am_key(&m, "unique");
        mdx_mp_put_bool(b, 1);
    }
    return am_end(&m);
}

/* coll + key: get, delete, ttl-get, ttl-clear. */
static int b_coll_key(mdx_shell_t *sh, const cmd_t *c, const cmdline_t *l, mdx_buf_t *b)
{
    (void)sh;
    amap_t m;
    am_begin(&m, b);
    am_str(&m, "coll", l->pos[0]);
    int rc = am_key_arg(&m, c, l, l->pos[1]);
    return rc ? rc : am_end(&m);
}

static int b_put(mdx_shell_t *sh, const cmd_t *c, const cmdline_t *l, mdx_buf_t *b)
{
    (void)sh;
    amap_t m;
    am_begin(&m, b);
    am_str(&m, "coll", l->pos[0]);
    int rc = am_key_arg(&m, c, l, l->pos[1]);
    if (rc)
        return rc;
    am_key(&m, "body");
    if ((rc = json_arg(c, "BODY", l->pos[2], 0, b)))
        return rc;
    if (l->val[F_MODE])
        am_str(&m, "mode", l->val[F_MODE]);
    if ((rc = am_uint_flag(&m, c, l, F_TTL, "ttl_ms")))
        return rc;
    if (l->val[F_KEEP_TTL]) {
        am_key(&m, "keep_ttl");
        mdx_mp_put_bool(b, 1);
    }
    if (l->val[F_TTL_CLASS])
        am_str(&m, "ttl_class", l->val[F_TTL_CLASS]);
    if (l->val[F_TAGS] && (rc = am_list(&m, c, l->val[F_TAGS], F_TAGS, "tags")))
        return rc;
    return am_end(&m);
}

static void am_with_tags(amap_t *m, const cmdline_t *l)
{
    if (l->val[F_WITH_TAGS]) {
        am_key(m, "with_tags");
        mdx_mp_put_bool(m->b, 1);
    }
}

/* get: coll + key, and --with-tags. */
static int b_get(mdx_shell_t *sh, const cmd_t *c, const cmdline_t *l, mdx_buf_t *b)
{
    (void)sh;
    amap_t m;
    am_begin(&m, b);
    am_str(&m, "coll", l->pos[0]);
    int rc = am_key_arg(&m, c, l, l->pos[1]);
    am_with_tags(&m, l);
    return rc ? rc : am_end(&m);
}

/* create-collection and configure-collection: NAME and the cache options. */
static int b_coll_setup(mdx_shell_t *sh, const cmd_t *c, const cmdline_t *l, mdx_buf_t *b)
{
    (void)sh;
    amap_t m;
    am_begin(&m, b);
    am_str(&m, "name", l->pos[0]);
    int rc = am_uint_flag(&m, c, l, F_CAPACITY, "capacity");
    if (rc)
        return rc;
    if (l->val[F_POLICY])
        am_str(&m, "policy", l->val[F_POLICY]);
    const char *d = l->val[F_DEFAULT_TTL];
    uint64_t ms;
    if (d && mdx__parse_uint(d, &ms) == 0) {
        am_key(&m, "default_ttl_ms");
        mdx_mp_put_uint(b, ms);
    } else if (d) {
        am_str(&m, "default_ttl", d);
    }
    if (c->op[1] == 'o' && m.n == 1) /* configure_collection */
        return usage_error(c, "%s", "give at least one of --capacity, --policy, --default-ttl");
    return am_end(&m);
}

/* invalidate TAG... [--coll COLL] */
static int b_invalidate(mdx_shell_t *sh, const cmd_t *c, const cmdline_t *l, mdx_buf_t *b)
{
    (void)sh, (void)c;
    amap_t m;
    am_begin(&m, b);
    if (l->val[F_COLL])
        am_str(&m, "coll", l->val[F_COLL]);
    am_key(&m, "tags");
    mdx_mp_put_array(b, (uint32_t)l->npos);
    for (int i = 0; i < l->npos; i++)
        put_cstr(b, l->rest[i]);
    return am_end(&m);
}

static int b_mget(mdx_shell_t *sh, const cmd_t *c, const cmdline_t *l, mdx_buf_t *b)
{
    (void)sh;
    amap_t m;
    am_begin(&m, b);
    am_str(&m, "coll", l->pos[0]);
    am_with_tags(&m, l);
    am_key(&m, "keys");
    mdx_mp_put_array(b, (uint32_t)(l->npos - 1));
    for (int i = 1; i < l->npos; i++) {
        int rc = mdx__key_from_text(c->name, l->rest[i], l->val[F_STR_KEY] != NULL, b);
        if (rc)
            return rc;
    }
    return am_end(&m);
}

static int b_update(mdx_shell_t *sh, const cmd_t *c, const cmdline_t *l, mdx_buf_t *b)
{
    (void)sh;
    amap_t m;
    am_begin(&m, b);
    am_str(&m, "coll", l->pos[0]);
    int rc = am_key_arg(&m, c, l, l->pos[1]);
    if (rc)
        return rc;
    if (l->val[F_SET]) {
        am_key(&m, "set");
        if ((rc = json_arg(c, "--set", l->val[F_SET], 0, b)))
            return rc;
    }
    if (l->val[F_UNSET] && (rc = am_list(&m, c, l->val[F_UNSET], F_UNSET, "unset")))
        return rc;
    return am_end(&m);
}

static int cond_args(amap_t *m, const cmd_t *c, const cmdline_t *l)
{
    static const int fl[] = {F_EQ, F_GE, F_GT, F_LE, F_LT};
    for (size_t i = 0; i < sizeof(fl) / sizeof(fl[0]); i++) {
        if (!l->val[fl[i]])
            continue;
        char what[8];
        snprintf(what, sizeof(what), "--%s", flag_info[fl[i]].name);
        am_key(m, flag_info[fl[i]].name);
        int rc = json_arg(c, what, l->val[fl[i]], 1, m->b);
        if (rc)
            return rc;
    }
    return 0;
}

static int b_find(mdx_shell_t *sh, const cmd_t *c, const cmdline_t *l, mdx_buf_t *b)
{
    (void)sh;
    amap_t m;
    am_begin(&m, b);
    am_str(&m, "coll", l->pos[0]);
    am_str(&m, "index", l->pos[1]);
    int rc = cond_args(&m, c, l);
    if (rc)
        return rc;
    if (l->val[F_DESC]) {
        am_key(&m, "desc");
        mdx_mp_put_bool(b, 1);
    }
    if ((rc = am_uint_flag(&m, c, l, F_LIMIT, "limit")) ||
        (rc = am_uint_flag(&m, c, l, F_OFFSET, "offset")))
        return rc;
    if (l->val[F_AFTER]) {
        am_key(&m, "after");
        if ((rc = json_arg(c, "--after", l->val[F_AFTER], 0, b)))
            return rc;
    }
    return am_end(&m);
}

static int b_count(mdx_shell_t *sh, const cmd_t *c, const cmdline_t *l, mdx_buf_t *b)
{
    (void)sh;
    amap_t m;
    am_begin(&m, b);
    am_str(&m, "coll", l->pos[0]);
    am_str(&m, "index", l->pos[1]);
    int rc = cond_args(&m, c, l);
    return rc ? rc : am_end(&m);
}

static int b_scan(mdx_shell_t *sh, const cmd_t *c, const cmdline_t *l, mdx_buf_t *b)
{
    (void)sh;
    amap_t m;
    am_begin(&m, b);
    am_str(&m, "coll", l->pos[0]);
    int rc;
    if ((rc = am_uint_flag(&m, c, l, F_CURSOR, "cursor")) ||
        (rc = am_uint_flag(&m, c, l, F_LIMIT, "limit")))
        return rc;
    return am_end(&m);
}

static int b_ttl_set(mdx_shell_t *sh, const cmd_t *c, const cmdline_t *l, mdx_buf_t *b)
{
    (void)sh;
    amap_t m;
    am_begin(&m, b);
    am_str(&m, "coll", l->pos[0]);
    int rc = am_key_arg(&m, c, l, l->pos[1]);
    if (rc)
        return rc;
    uint64_t ms;
    if (mdx__parse_uint(l->pos[2], &ms))
        return usage_error(c, "MS must be a non-negative integer, not '%s'", l->pos[2]);
    am_key(&m, "ttl_ms");
    mdx_mp_put_uint(b, ms);
    return am_end(&m);
}

/* ---- local commands ---- */

static int l_import(mdx_shell_t *sh, const cmdline_t *l)
{
    return mdx__cmd_import(sh, l->pos[0], l->pos[1], l->val[F_KEY], l->val[F_MODE],
                           l->val[F_STRICT] != NULL, l->val[F_IGNORE_BAD] != NULL);
}

static int l_export(mdx_shell_t *sh, const cmdline_t *l)
{
    return mdx__cmd_export(sh, l->pos[0], l->val[F_KEY], l->val[F_UNSORTED] != NULL);
}

static int l_help(mdx_shell_t *sh, const cmdline_t *l);

/* clang-format off */
static const cmd_t cmds[] = {
    {"ping", "ping", "", "check that the server answers (prints pong)",
     "memdex ping", 0, 0, 0, OUT_PONG, b_none, NULL},
    {"create-collection", "create_collection",
     "NAME [--capacity N] [--policy P] [--default-ttl MS|CLASS]", "create an empty collection",
     "memdex create-collection sessions --capacity 100000 --default-ttl short", 1, 1,
     B(CAPACITY) | B(POLICY) | B(DEFAULT_TTL), OUT_OK, b_coll_setup, NULL},
    {"configure-collection", "configure_collection",
     "NAME [--capacity N] [--policy P] [--default-ttl MS|CLASS]",
     "change a collection's capacity, eviction policy or default TTL",
     "memdex configure-collection sessions --policy sieve", 1, 1,
     B(CAPACITY) | B(POLICY) | B(DEFAULT_TTL), OUT_OK, b_coll_setup, NULL},
    {"drop-collection", "drop_collection", "NAME", "drop a collection, its records and indexes",
     "memdex drop-collection users", 1, 1, 0, OUT_OK, b_name, NULL},
    {"collections", "list_collections", "", "list the collections with their records and indexes",
     "memdex collections", 0, 0, 0, OUT_JSON, b_none, NULL},
    {"create-index", "create_index", "COLL NAME FIELD --kind hash|skiplist [--unique]",
     "index a top-level field of the bodies",
     "memdex create-index users by_age age --kind skiplist", 3, 3, B(KIND) | B(UNIQUE), OUT_OK,
     b_create_index, NULL},
    {"drop-index", "drop_index", "COLL NAME", "drop a secondary index",
     "memdex drop-index users by_age", 2, 2, 0, OUT_OK, b_coll_name, NULL},
    {"indexes", "list_indexes", "COLL", "list a collection's secondary indexes",
     "memdex indexes users", 1, 1, 0, OUT_JSON, b_coll, NULL},
    {"put", "put",
     "COLL KEY BODY [--mode upsert|insert|replace] [--ttl MS | --ttl-class C] [--keep-ttl] [--tags T,U] [--str-key]",
     "store a record (BODY: a JSON object)",
     "memdex put users 1 '{\"name\":\"ann\",\"age\":31}' --ttl-class long --tags team:7", 3, 3,
     B(MODE) | B(TTL) | B(KEEP_TTL) | B(STR_KEY) | B(TTL_CLASS) | B(TAGS), OUT_OK, b_put, NULL},
    {"get", "get", "COLL KEY [--with-tags] [--str-key]", "print a record's body (null when absent)",
     "memdex get users 1", 2, 2, B(STR_KEY) | B(WITH_TAGS), OUT_JSON, b_get, NULL},
    {"mget", "mget", "COLL KEY... [--with-tags] [--str-key]",
     "print the bodies of many records (null when absent)",
     "memdex mget users 1 2 3", 2, MAX_POS, B(STR_KEY) | B(WITH_TAGS), OUT_JSON, b_mget, NULL},
    {"invalidate", "invalidate", "TAG... [--coll COLL]",
     "remove every record holding any of the tags (prints {\"removed\": N})",
     "memdex invalidate team:7 --coll users", 1, 16, B(COLL), OUT_JSON, b_invalidate, NULL},
    {"delete", "delete", "COLL KEY [--str-key]", "delete a record (prints 1, or 0 when absent)",
     "memdex delete users 1", 2, 2, B(STR_KEY), OUT_JSON, b_coll_key, NULL},
    {"update", "update", "COLL KEY [--set JSON] [--unset F,G] [--str-key]",
     "set and remove fields of a record",
     "memdex update users 1 --set '{\"age\":32}' --unset nick", 2, 2,
     B(SET) | B(UNSET) | B(STR_KEY), OUT_OK, b_update, NULL},
    {"find", "find",
     "COLL INDEX [--eq V | --ge/--gt V --le/--lt V] [--desc] [--limit N] [--offset N] [--after CURSOR]",
     "query a secondary index: one page of [key, body] records",
     "memdex find users by_age --ge 30 --limit 10", 2, 2,
     COND | B(DESC) | B(LIMIT) | B(OFFSET) | B(AFTER), OUT_JSON, b_find, NULL},
    {"count", "count", "COLL INDEX [--eq V | --ge/--gt V --le/--lt V]",
     "count the records matching a condition",
     "memdex count users by_age --ge 18 --lt 65", 2, 2, COND, OUT_JSON, b_count, NULL},
    {"scan", "scan", "COLL [--cursor N] [--limit N]", "one page of a whole-collection walk",
     "memdex scan users --limit 100", 1, 1, B(CURSOR) | B(LIMIT), OUT_JSON, b_scan, NULL},
    {"ttl-set", "ttl_set", "COLL KEY MS [--str-key]", "make a record expire in MS milliseconds",
     "memdex ttl-set users 1 60000", 3, 3, B(STR_KEY), OUT_OK, b_ttl_set, NULL},
    {"ttl-get", "ttl_get", "COLL KEY [--str-key]",
     "print a record's remaining milliseconds (-1: no expiry)",
     "memdex ttl-get users 1", 2, 2, B(STR_KEY), OUT_JSON, b_coll_key, NULL},
    {"ttl-clear", "ttl_clear", "COLL KEY [--str-key]", "remove a record's expiry",
     "memdex ttl-clear users 1", 2, 2, B(STR_KEY), OUT_OK, b_coll_key, NULL},
    {"stats", "stats", "[--json]", "print the server's statistics",
     "memdex stats", 0, 0, B(JSON), OUT_STATS, b_none, NULL},
    {"snapshot", "snapshot", "", "start a background snapshot on the server",
     "memdex snapshot", 0, 0, 0, OUT_OK, b_none, NULL},
    {"import", NULL, "COLL FILE [--key FIELD] [--mode M] [--strict] [--ignore-bad]",
     "bulk-load NDJSON records (FILE - reads stdin)",
     "memdex import users users.ndjson --key id", 2, 2,
     B(KEY) | B(MODE) | B(STRICT) | B(IGNORE_BAD), OUT_OK, NULL, l_import},
    {"export", NULL, "COLL [--key FIELD] [--unsorted]", "write a collection as NDJSON",
     "memdex export users > users.ndjson", 1, 1, B(KEY) | B(UNSORTED), OUT_OK, NULL, l_export},
    {"help", NULL, "[COMMAND]", "list the commands, or explain one",
     "memdex help find", 0, 1, 0, OUT_OK, NULL, l_help},
};
/* clang-format on */
#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

static const cmd_t *find_cmd(const char *name)
{
    for (size_t i = 0; i < NCMDS; i++)
        if (strcmp(cmds[i].name, name) == 0)
            return &cmds[i];
    return NULL;
}

const char *mdx__cmd_name(size_t i)
{
    return i < NCMDS ? cmds[i].name : NULL;
}

/* ---- help ---- */

void mdx__help_all(FILE *f)
{
    fputs("usage: memdex [-h HOST] [-p PORT] [-s SOCKET] [--timeout MS] [--raw] [COMMAND ARGS...]\n"
          "\n"
          "Without a command: an interactive shell (when stdin is a terminal), or commands read\n"
          "from stdin, one per line.\n"
          "\n"
          "Connection:\n"
          "  -h, --host HOST      server host (default 127.0.0.1)\n"
          "  -p, --port PORT      server port (default 7711)\n"
          "  -s, --socket PATH    connect to a Unix socket instead\n"
          "      --timeout MS     connect and reply timeout in ms (default 10000; 0: none)\n"
          "Output:\n"
          "      --raw            print results as msgpack hex\n"
          "      --help           this help; `memdex help COMMAND` explains one command\n"
          "\n"
          "Commands:\n",
          f);
    for (size_t i = 0; i < NCMDS; i++)
        fprintf(f, "  %-18s %s\n  %-18s   e.g. %s\n", cmds[i].name, cmds[i].summary, "",
                cmds[i].example);
    fputs("\nKeys: 42 is an integer key, '\"42\"' or --str-key a string key, "
          "'{\"$bin\":\"00ff\"}' a binary key.\n"
          "Values (--eq, --ge, ...): JSON, or a bare word taken as a string.\n"
          "Exit status: 0 ok, 1 error reply (or bad import lines), 2 usage, 3 connection.\n"
          "See docs/cli.md.\n",
          f);
}

static void help_cmd(FILE *f, const cmd_t *c)
{
    fprintf(f, "usage: memdex %s %s\n\n%s.\n", c->name, c->usage, c->summary);
    int any = 0;
    for (int i = 0; i < F__COUNT; i++) {
        if (!(c->flags & (1u << i)))
            continue;
        if (!any++)
            fputs("\nFlags:\n", f);
        char left[40];
        snprintf(left, sizeof(left), "--%s%s%s", flag_info[i].name, flag_info[i].meta ? " " : "",
                 flag_info[i].meta ? flag_info[i].meta : "");
        fprintf(f, "  %-18s %s\n", left, flag_info[i].help);
    }
    fprintf(f, "\nExample:\n  %s\n", c->example);
}

static int l_help(mdx_shell_t *sh, const cmdline_t *l)
{
    (void)sh;
    if (l->npos == 0) {
        mdx__help_all(stdout);
        return MDX_EXIT_OK;
    }
    const cmd_t *c = find_cmd(l->pos[0]);
    if (!c)
        return usage_error(NULL, "unknown command '%s'", l->pos[0]);
    help_cmd(stdout, c);
    return MDX_EXIT_OK;
}

/* ---- output ---- */

static int out_hex(mdx_buf_t *t, const uint8_t *p, size_t n)
{
    static const char hx[] = "0123456789abcdef";
    t->len = 0;
    if (mdx_buf_reserve(t, 2 * n + 1))
        return -1;
    for (size_t i = 0; i < n; i++) {
        t->data[t->len++] = (uint8_t)hx[p[i] >> 4];
        t->data[t->len++] = (uint8_t)hx[p[i] & 15];
    }
    t->data[t->len++] = '\n';
    return mdx__write_out(t->data, t->len);
}

static int out_json(mdx_buf_t *t, const uint8_t *p, size_t n)
{
    t->len = 0;
    const uint8_t *q = p;
    if (mdx__mp_to_json(&q, p + n, t) || q != p + n) {
        mdx__print_error("PROTO", "the server's reply is not one well-formed msgpack value");
        return MDX_EXIT_ERR;
    }
    mdx_buf_append(t, "\n", 1);
    if (t->err || mdx__write_out(t->data, t->len))
        return MDX_EXIT_ERR;
    return MDX_EXIT_OK;
}

/* stats, readably: "label  value" lines, in the server's order; keys this version does not
 * know print as JSON. */
static void human_bytes(char *out, size_t n, uint64_t v)
{
    static const char *const unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
    double d = (double)v;
    int u = 0;
    while (d >= 1024 && u < 4) {
        d /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, n, "%llu bytes", (unsigned long long)v);
    else
        snprintf(out, n, "%.1f %s (%llu bytes)", d, unit[u], (unsigned long long)v);
}

static int read_uint(const uint8_t **p, const uint8_t *e, uint64_t *v)
{
    mdx_mp_tok_t t;
    if (mdx_mp_read(p, e, &t))
        return -1;
    if (t.type == MDX_MP_INT && t.v.i >= 0)
        *v = (uint64_t)t.v.i;
    else if (t.type == MDX_MP_UINT)
        *v = t.v.u;
    else
        return -1;
    return 0;
}

/* {name: uint, ...} as "name N, name N" ("none" when empty). */
static int counts_line(const uint8_t **p, const uint8_t *e, uint32_t n, mdx_buf_t *t)
{
    if (n == 0)
        mdx_buf_append(t, "none", 4);
    for (uint32_t i = 0; i < n; i++) {
        mdx_mp_tok_t k;
        uint64_t v;
        if (mdx_mp_read(p, e, &k) || k.type != MDX_MP_STR)
            return -1;
        if (i)
            mdx_buf_append(t, ", ", 2);
        mdx_buf_append(t, k.v.ptr, k.len);
        mdx_buf_append(t, " ", 1);
        const uint8_t *q = *p;
        if (read_uint(&q, e, &v) == 0) { /* counts; anything else (a ratio, a name) as JSON */
            char num[32];
            int len = snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
            mdx_buf_append(t, num, (size_t)len);
            *p = q;
        } else if (mdx__mp_to_json(p, e, t)) {
            return -1;
        }
    }
    return 0;
}

static void label(mdx_buf_t *t, const char *s, size_t n)
{
    char pad[16];
    mdx_buf_append(t, s, n);
    if (n < 13) {
        memset(pad, ' ', 13 - n);
        mdx_buf_append(t, pad, 13 - n);
    } else {
        mdx_buf_append(t, " ", 1);
    }
}

static int stats_body(const uint8_t *p, const uint8_t *e, mdx_buf_t *t)
{
    mdx_mp_tok_t m;
    uint64_t mem = 0; /* "memory" comes before "maxmemory" */
    if (mdx_mp_read(&p, e, &m) || m.type != MDX_MP_MAP)
        return -1;
    for (uint32_t i = 0; i < m.len; i++) {
        mdx_mp_tok_t k, v;
        if (mdx_mp_read(&p, e, &k) || k.type != MDX_MP_STR)
            return -1;
        const char *key = (const char *)k.v.ptr;
        size_t kl = k.len;
        const uint8_t *vp = p;
        if (mdx_mp_read(&vp, e, &v))
            return -1;
        char line[128];
        uint64_t u;
#define KEY_IS(s) (kl == sizeof(s) - 1 && memcmp(key, s, kl) == 0)
        if (KEY_IS("uptime_s") && read_uint(&p, e, &u) == 0) {
            label(t, "uptime", 6);
            snprintf(line, sizeof(line), "%llu s", (unsigned long long)u);
            mdx_buf_append(t, line, strlen(line));
        } else if (KEY_IS("memory") && read_uint(&p, e, &u) == 0) {
            label(t, "memory", 6);
            human_bytes(line, sizeof(line), u);
            mdx_buf_append(t, line, strlen(line));
            mem = u;
        } else if (KEY_IS("maxmemory") && read_uint(&p, e, &u) == 0) {
            label(t, "maxmemory", 9);
            if (u == 0) {
                mdx_buf_append(t, "none", 4);
            } else {
                human_bytes(line, sizeof(line), u);
                mdx_buf_append(t, line, strlen(line));
                snprintf(line, sizeof(line), ", %.1f%% used", 100.0 * (double)mem / (double)u);
                mdx_buf_append(t, line, strlen(line));
            }
        } else if (KEY_IS("hit_ratio") && v.type == MDX_MP_FLOAT) {
            mdx_mp_read(&p, e, &v);
            label(t, "hit ratio", 9);
            snprintf(line, sizeof(line), "%.1f%%", 100.0 * v.v.f);
            mdx_buf_append(t, line, strlen(line));
        } else if ((KEY_IS("connections") || KEY_IS("commands") || KEY_IS("errors")) &&
                   v.type == MDX_MP_MAP) {
            label(t, key, kl);
            p = vp;
            if (counts_line(&p, e, v.len, t))
                return -1;
        } else if (KEY_IS("collections") && v.type == MDX_MP_MAP) {
            if (v.len == 0)
                label(t, "collections", 11), mdx_buf_append(t, "none", 4);
            else
                mdx_buf_append(t, "collections", 11);
            p = vp;
            for (uint32_t j = 0; j < v.len; j++) {
                mdx_mp_tok_t name, cm;
                if (mdx_mp_read(&p, e, &name) || name.type != MDX_MP_STR ||
                    mdx_mp_read(&p, e, &cm) || cm.type != MDX_MP_MAP)
                    return -1;
                mdx_buf_append(t, "\n  ", 3);
                label(t, (const char *)name.v.ptr, name.len);
                mdx_buf_append(t, "  ", 2);
                if (counts_line(&p, e, cm.len, t))
                    return -1;
            }
        } else {
            label(t, key, kl);
            if (mdx__mp_to_json(&p, e, t))
                return -1;
        }
#undef KEY_IS
        mdx_buf_append(t, "\n", 1);
    }
    return t->err ? -1 : 0;
}

static int print_result(mdx_shell_t *sh, const cmd_t *c, const cmdline_t *l,
                        const mdx_cli_reply_t *r)
{
    mdx_buf_t *t = &sh->text;
    if (sh->opt.raw)
        return out_hex(t, r->body, r->body_len) ? MDX_EXIT_ERR : MDX_EXIT_OK;
    mdx_mp_tok_t tok;
    const uint8_t *p = r->body;
    int have = mdx_mp_read(&p, r->body + r->body_len, &tok) == 0;
    switch (c->out) {
    case OUT_OK:
        if (have && tok.type == MDX_MP_NIL)
            return mdx__write_out("OK\n", 3) ? MDX_EXIT_ERR : MDX_EXIT_OK;
        break;
    case OUT_PONG:
        if (have && tok.type == MDX_MP_STR) {
            if (mdx__write_out(tok.v.ptr, tok.len) || mdx__write_out("\n", 1))
                return MDX_EXIT_ERR;
            return MDX_EXIT_OK;
        }
        break;
    case OUT_STATS:
        if (l->val[F_JSON])
            break;
        t->len = 0;
        if (stats_body(r->body, r->body + r->body_len, t) == 0)
            return mdx__write_out(t->data, t->len) ? MDX_EXIT_ERR : MDX_EXIT_OK;
        break;
    }
    return out_json(t, r->body, r->body_len);
}

/* ---- parsing a command line ---- */

int mdx__global_flag(mdx_shell_t *sh, int argc, char **argv, int *i, const void *cmd, int allowed)
{
    const cmd_t *c = cmd;
    const char *a = argv[*i], *v = NULL;
    char name[16];
    if (a[0] != '-')
        return -1;
    const char *n = a + (a[1] == '-' ? 2 : 1);
    const char *eq = a[1] == '-' ? strchr(n, '=') : NULL;
    size_t nl = eq ? (size_t)(eq - n) : strlen(n);
    if (nl >= sizeof(name))
        return -1;
    memcpy(name, n, nl);
    name[nl] = '\0';
    int which;
    if (a[1] != '-')
        which = strcmp(name, "h") == 0   ? 'h'
                : strcmp(name, "p") == 0 ? 'p'
                : strcmp(name, "s") == 0 ? 's'
                                         : 0;
    else
        which = strcmp(name, "host") == 0      ? 'h'
                : strcmp(name, "port") == 0    ? 'p'
                : strcmp(name, "socket") == 0  ? 's'
                : strcmp(name, "timeout") == 0 ? 't'
                : strcmp(name, "raw") == 0     ? 'r'
                                               : 0;
    if (!which)
        return -1;
    if (!allowed)
        return -2;
    if (which == 'r') {
        if (eq)
            return usage_error(c, "--raw takes no value");
        sh->opt.raw = 1;
        return 0;
    }
    if (eq) {
        v = eq + 1;
    } else {
        if (*i + 1 >= argc)
            return usage_error(c, "%s needs a value", a);
        v = argv[++*i];
    }
    uint64_t u;
    switch (which) {
    case 'h':
        sh->opt.host = v;
        sh->opt.socket = NULL;
        break;
    case 's':
        sh->opt.socket = v;
        break;
    case 'p':
        if (mdx__parse_uint(v, &u) || u == 0 || u > 65535)
            return usage_error(c, "bad port '%s'", v);
        sh->opt.port = (int)u;
        break;
    case 't':
        if (mdx__parse_uint(v, &u) || u > 86400000)
            return usage_error(c, "bad --timeout '%s' (milliseconds)", v);
        sh->opt.timeout_ms = (int)u;
        break;
    }
    return 0;
}

static int parse(mdx_shell_t *sh, const cmd_t *c, int argc, char **argv, cmdline_t *l,
                 int allow_global)
{
    int only_pos = 0;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0' || (a[1] >= '0' && a[1] <= '9')) {
            if (l->npos >= c->max_pos)
                return usage_error(c, "too many arguments (at '%s')", a);
            if (l->npos < 16)
                l->pos[l->npos] = a;
            l->rest[l->npos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        /* --name=value or --name value */
        const char *name = a + (a[1] == '-' ? 2 : 1), *inl = NULL;
        char nbuf[64];
        const char *eq = strchr(name, '=');
        if (a[1] == '-' && eq) {
            size_t nl = (size_t)(eq - name);
            if (nl >= sizeof(nbuf))
                return usage_error(c, "unknown flag '%s'", a);
            memcpy(nbuf, name, nl);
            nbuf[nl] = '\0';
            name = nbuf;
            inl = eq + 1;
        }
        int f = -1;
        if (a[1] == '-')
            for (int k = 0; k < F__COUNT; k++)
                if (strcmp(flag_info[k].name, name) == 0)
                    f = k;
        if (f >= 0 && (c->flags & (1u << f))) {
            if (!flag_info[f].meta) {
                if (inl)
                    return usage_error(c, "--%s takes no value", flag_info[f].name);
                l->val[f] = "";
            } else if (inl) {
                l->val[f] = inl;
            } else if (i + 1 < argc) {
                l->val[f] = argv[++i];
            } else {
                return usage_error(c, "--%s needs a value", flag_info[f].name);
            }
            continue;
        }
        if (strcmp(a, "--help") == 0) {
            help_cmd(stdout, c);
            return -1;
        }
        /* Connection flags may follow the command in one-shot mode. */
        int g = mdx__global_flag(sh, argc, argv, &i, c, allow_global);
        if (g == -1)
            return usage_error(c, f >= 0 ? "%s is not a flag of this command" : "unknown flag '%s'",
                               a);
        if (g == -2)
            return usage_error(c, "%s cannot be used inside the shell", a);
        if (g)
            return g;
    }
    if (l->npos < c->min_pos)
        return usage_error(c, "missing arguments");
    return 0;
}

int mdx__cmd_run(mdx_shell_t *sh, int argc, char **argv, int allow_global)
{
    const cmd_t *c = find_cmd(argv[0]);
    if (!c)
        return usage_error(NULL, "unknown command '%s' (memdex --help lists them)", argv[0]);
    cmdline_t l;
    memset(&l, 0, sizeof(l));
    l.cmd = c->name;
    l.rest = calloc((size_t)argc, sizeof(char *));
    if (!l.rest) {
        mdx__print_error("NOMEM", "out of memory");
        return MDX_EXIT_ERR;
    }
    int rc = parse(sh, c, argc, argv, &l, allow_global);
    if (rc) {
        free(l.rest);
        return rc < 0 ? MDX_EXIT_OK : rc;
    }
    if (c->local) {
        rc = c->local(sh, &l);
        free(l.rest);
        return rc;
    }
    if (!sh->client && (rc = mdx__conn_init(sh)) != 0) {
        free(l.rest);
        return rc;
    }
    rc = c->build(sh, c, &l, &sh->args);
    if (rc == 0 && sh->args.err) {
        mdx__print_error(mdx_err_name(sh->args.err), "cannot build the request");
        rc = MDX_EXIT_ERR;
    }
    if (rc) {
        free(l.rest);
        return rc;
    }
    mdx_cli_reply_t r;
    mdx__conn_call(sh, c->op, sh->args.data, sh->args.len, &r);
    rc = r.kind == MDX_CLI_OK ? print_result(sh, c, &l, &r) : mdx__reply_fail(&r);
    free(l.rest);
    fflush(stdout);
    return rc;
}
