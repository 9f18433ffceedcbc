/*
 * memdex import and export: NDJSON in and out, one record per line.
 *
 * Two line shapes (docs/cli.md, "Import and export"):
 *   without --key:  {"key": K, "body": {...}}   what export writes by default: any key, body,
 *                   optional "ttl_ms", "tags"   TTL (ms left) and tags round-trip; lines without
 *                                               the two options are the older format
 *   with --key F:   {...}                       the body itself; its field F is the key
 *
 * Import pipelines: requests are queued in batches of IMPORT_BATCH and flushed, and replies are
 * read only once more than IMPORT_WINDOW batches are in flight, so the server always has work
 * queued while the CLI parses the next batch. A ring remembers the line number of every request in
 * flight, so an error reply (which arrives later) is reported against its line. A bad line,
 * local or refused by the server, is reported and skipped; nothing else depends on it.
 *
 * Export walks the collection with scan, then reads each page again with tags (mget with_tags)
 * and TTLs (ttl_get; scan returns neither), pipelined. By default it sorts by key (integers,
 * strings, binaries) and drops the duplicates a scan may return, so the same data exports to
 * the same bytes; --unsorted streams in scan order with memory bounded by a page.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client/cli/cli.h"
#include "client/cli/json.h"
#include "memdex/error.h"

/* Flushes stay small enough for the socket buffers to take at once (512 records of ~100 bytes),
 * so a flush rarely blocks and the CLI parses while the server works; IMPORT_WINDOW batches in
 * flight keep the server busy. Measured on 2 cores: one batch of 2048 in flight ran at about
 * 500,000 records/s, 8 batches of 512 at about 800,000 (bench/import_bench.sh). */
#define IMPORT_BATCH  512         /* requests per flush (a power of two) */
#define IMPORT_WINDOW 8           /* batches in flight before the CLI waits for replies */
#define IMPORT_READ   (1u << 20)  /* bytes per read() */
#define EXPORT_PAGE   5000        /* records per scan page */
#define EXPORT_MGET   5000        /* keys per mget (the protocol allows 10,000) */
#define PROGRESS_NS   100000000LL /* redraw the progress bar at most every 100 ms */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Starts the args map of a request in sh->args: n members, the first {"coll": coll}. */
static mdx_buf_t *args_coll(mdx_shell_t *sh, const char *coll, size_t coll_len, uint32_t n)
{
    mdx_buf_t *a = &sh->args;
    a->len = 0;
    a->err = 0;
    mdx_mp_put_map(a, n);
    mdx_mp_put_str(a, "coll", 4);
    mdx_mp_put_str(a, coll, coll_len);
    return a;
}

/* ---- import ---- */

typedef struct {
    mdx_shell_t *sh;
    const char *coll;
    size_t coll_len;
    const char *key_field;
    size_t key_len;
    const char *mode;
    int strict;
    mdx_buf_t line;   /* the current line as msgpack */
    uint64_t *ring;   /* line numbers of requests in flight */
    size_t ring_mask; /* capacity - 1 (a power of two) */
    uint64_t head, tail;
    uint64_t ok, bad;
    int stop;      /* --strict and a bad line seen: send nothing more */
    int transport; /* the connection failed: exit status 3 */
    /* progress */
    int tty;
    off_t total_bytes; /* 0 when unknown (a pipe) */
    off_t done_bytes;
    int64_t t0, last_draw;
    int drawn;
} imp_t;

static void line_error(imp_t *im, uint64_t lineno, const char *name, const char *msg)
{
    if (im->drawn) {
        fputs("\r\033[K", stdout);
        fflush(stdout);
        im->drawn = 0;
    }
    fprintf(stderr, "line %llu: %s: %s\n", (unsigned long long)lineno, name, msg);
    im->bad++;
    if (im->strict)
        im->stop = 1;
}

static void draw_progress(imp_t *im, int force)
{
    if (!im->tty)
        return;
    int64_t t = now_ns();
    if (!force && t - im->last_draw < PROGRESS_NS)
        return;
    im->last_draw = t;
    double secs = (double)(t - im->t0) / 1e9;
    double rate = secs > 0 ? (double)im->ok / secs : 0;
    if (im->total_bytes > 0) {
        int pct = (int)(100.0 * (double)im->done_bytes / (double)im->total_bytes);
        char bar[31];
        int fill = pct * 30 / 100;
        memset(bar, '#', (size_t)fill);
        memset(bar + fill, '.', (size_t)(30 - fill));
        bar[30] = '\0';
        printf("\r[%s] %3d%%  %llu records  %.0f records/s\033[K", bar, pct,
               (unsigned long long)im->ok, rate);
    } else {
        printf("\r%llu records  %.0f records/s\033[K", (unsigned long long)im->ok, rate);
    }
    fflush(stdout);
    im->drawn = 1;
}

/* Reads one reply and accounts for it. Returns 0, or -1 on a transport error. */
static int take_reply(imp_t *im)
{
    mdx_cli_reply_t r;
    mdx__conn_next(im->sh, &r);
    if (r.kind == MDX_CLI_TRANSPORT) {
        im->transport = 1;
        mdx__reply_fail(&r);
        return -1;
    }
    uint64_t lineno = im->ring[im->tail++ & im->ring_mask];
    if (r.kind == MDX_CLI_OK)
        im->ok++;
    else
        line_error(im, lineno, r.name, r.msg);
    return 0;
}

/* Finds the last member named [name, name+nlen) of the top-level map [p, e); returns 1 with
 * its value's bytes, or 0. *members counts the members. */
static int top_field(const uint8_t *p, const uint8_t *e, const char *name, size_t nlen,
                     const uint8_t **vs, const uint8_t **ve, uint32_t *members)
{
    mdx_mp_tok_t m, k;
    int found = 0;
    if (mdx_mp_read(&p, e, &m) || m.type != MDX_MP_MAP)
        return 0;
    *members = m.len;
    for (uint32_t i = 0; i < m.len; i++) {
        if (mdx_mp_read(&p, e, &k))
            return 0;
        const uint8_t *v = p;
        if (mdx_mp_skip(&p, e, MDX_MP_MAX_DEPTH))
            return 0;
        if (k.type == MDX_MP_STR && k.len == nlen && memcmp(k.v.ptr, name, nlen) == 0) {
            *vs = v;
            *ve = p;
            found = 1;
        }
    }
    return found;
}

static int is_key(const uint8_t *p, const uint8_t *e)
{
    mdx_mp_tok_t t;
    return mdx_mp_read(&p, e, &t) == 0 && (t.type == MDX_MP_INT || t.type == MDX_MP_UINT ||
                                           t.type == MDX_MP_STR || t.type == MDX_MP_BIN);
}

/* The members of a {"key", "body"[, "ttl_ms"][, "tags"]} line, as value ranges (NULL when
 * absent). */
typedef struct {
    const uint8_t *ks, *ke, *bs, *be, *ts, *te, *gs, *ge;
} rec_line_t;

/* Splits the top-level map [p, e) into the members of a record line in one pass. Returns 0, or
 * -1 when a member is missing, repeated or unknown. */
static int rec_members(const uint8_t *p, const uint8_t *e, rec_line_t *l)
{
    static const char *const names[] = {"key", "body", "ttl_ms", "tags"};
    const uint8_t **slot[][2] = {
        {&l->ks, &l->ke}, {&l->bs, &l->be}, {&l->ts, &l->te}, {&l->gs, &l->ge}};
    mdx_mp_tok_t m, k;
    memset(l, 0, sizeof(*l));
    if (mdx_mp_read(&p, e, &m) || m.type != MDX_MP_MAP)
        return -1;
    for (uint32_t i = 0; i < m.len; i++) {
        if (mdx_mp_read(&p, e, &k) || k.type != MDX_MP_STR)
            return -1;
        const uint8_t *v = p;
        if (mdx_mp_skip(&p, e, MDX_MP_MAX_DEPTH))
            return -1;
        size_t j = 0;
        while (j < 4 && !(strlen(names[j]) == k.len && memcmp(k.v.ptr, names[j], k.len) == 0))
            j++;
        if (j == 4 || *slot[j][0])
            return -1;
        *slot[j][0] = v;
        *slot[j][1] = p;
    }
    return l->ks && l->bs ? 0 : -1;
}

/* A line's ttl_ms: the milliseconds the record has left, an integer of at least 1 (0 would
 * mean "never expires" to put, which is what leaving ttl_ms out says). The server checks the
 * upper limit. Returns 0 with *ms, or -1. */
static int line_ttl(const uint8_t *p, const uint8_t *e, uint64_t *ms)
{
    mdx_mp_tok_t t;
    if (mdx_mp_read(&p, e, &t))
        return -1;
    if (t.type == MDX_MP_INT && t.v.i >= 1)
        *ms = (uint64_t)t.v.i;
    else if (t.type == MDX_MP_UINT)
        *ms = t.v.u;
    else
        return -1;
    return 0;
}

/* A line's tags, checked as put checks them (docs/protocol.md, "Values": 0 to 16 distinct
 * strings of 1 to 128 bytes) so that a bad line is caught before it is sent, under the
 * error name the server would give. Returns NULL, or the error name with msg filled. */
static const char *line_tags(const uint8_t *p, const uint8_t *e, char *msg, size_t msglen)
{
    mdx_mp_tok_t a, t[16];
    if (mdx_mp_read(&p, e, &a) || a.type != MDX_MP_ARRAY || a.len > 16) {
        snprintf(msg, msglen, "tags must be an array of at most 16 strings");
        return "BADARGS";
    }
    for (uint32_t i = 0; i < a.len; i++) {
        if (mdx_mp_read(&p, e, &t[i]) || t[i].type != MDX_MP_STR || t[i].len < 1 ||
            t[i].len > 128) {
            snprintf(msg, msglen, "tag %u must be a string of 1 to 128 bytes", i + 1);
            return "BADARGS";
        }
        for (uint32_t j = 0; j < i; j++)
            if (t[j].len == t[i].len && memcmp(t[j].v.ptr, t[i].v.ptr, t[i].len) == 0) {
                snprintf(msg, msglen, "tag %u repeats tag %u", i + 1, j + 1);
                return "INVAL";
            }
    }
    return NULL;
}

/* One line of input: parse, build the put, queue it. Returns 0, or -1 on a fatal error. */
static int import_line(imp_t *im, const char *s, size_t n, uint64_t lineno)
{
    /* Blank lines (a trailing newline, say) are not records. */
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r'))
        i++;
    if (i == n)
        return 0;

    mdx_buf_t *b = &im->line;
    b->len = 0;
    b->err = 0;
    mdx_json_err_t je;
    int rc = mdx__json_to_mp(s, n, b, &je);
    if (rc) {
        char msg[200];
        snprintf(msg, sizeof(msg), "invalid JSON at column %zu: %s", je.offset + 1, je.msg);
        line_error(im, lineno, mdx_err_name(rc), msg);
        return 0;
    }
    const uint8_t *e = b->data + b->len;
    rec_line_t l;
    uint32_t members = 0;
    if (b->data[0] < 0x80 || (b->data[0] > 0x8f && b->data[0] != 0xde && b->data[0] != 0xdf)) {
        line_error(im, lineno, "INVAL", "a record must be a JSON object");
        return 0;
    }
    char msg[400];
    if (im->key_field) {
        memset(&l, 0, sizeof(l));
        if (!top_field(b->data, e, im->key_field, im->key_len, &l.ks, &l.ke, &members)) {
            snprintf(msg, sizeof(msg), "no field '%s' (the key, from --key)", im->key_field);
            line_error(im, lineno, "INVAL", msg);
            return 0;
        }
        l.bs = b->data;
        l.be = e;
    } else if (rec_members(b->data, e, &l)) {
        line_error(im, lineno, "INVAL",
                   "expected {\"key\": K, \"body\": {...}} with optional \"ttl_ms\" and "
                   "\"tags\" (or give --key FIELD)");
        return 0;
    }
    if (!is_key(l.ks, l.ke)) {
        snprintf(msg, sizeof(msg), "the key ('%s') must be an integer, a string or binary",
                 im->key_field ? im->key_field : "key");
        line_error(im, lineno, "BADKEY", msg);
        return 0;
    }
    uint64_t ttl = 0;
    if (l.ts && line_ttl(l.ts, l.te, &ttl)) {
        line_error(im, lineno, "BADARGS",
                   "ttl_ms must be an integer of at least 1 (the milliseconds left)");
        return 0;
    }
    const char *tag_err = l.gs ? line_tags(l.gs, l.ge, msg, sizeof(msg)) : NULL;
    if (tag_err) {
        line_error(im, lineno, tag_err, msg);
        return 0;
    }

    /* The request's args: {coll, key, body[, mode][, ttl_ms][, tags]}. A line without ttl_ms
     * sends none, so the collection's default TTL applies, as it did before lines had one. */
    mdx_buf_t *a = args_coll(im->sh, im->coll, im->coll_len,
                             3 + (im->mode != NULL) + (l.ts != NULL) + (l.gs != NULL));
    mdx_mp_put_str(a, "key", 3);
    mdx_buf_append(a, l.ks, (size_t)(l.ke - l.ks));
    mdx_mp_put_str(a, "body", 4);
    mdx_buf_append(a, l.bs, (size_t)(l.be - l.bs));
    if (im->mode) {
        mdx_mp_put_str(a, "mode", 4);
        mdx_mp_put_str(a, im->mode, strlen(im->mode));
    }
    if (l.ts) {
        mdx_mp_put_str(a, "ttl_ms", 6);
        mdx_mp_put_uint(a, ttl);
    }
    if (l.gs) {
        mdx_mp_put_str(a, "tags", 4);
        mdx_buf_append(a, l.gs, (size_t)(l.ge - l.gs));
    }
    if (a->err) {
        mdx__print_error("NOMEM", "out of memory");
        return -1;
    }
    mdx_cli_reply_t r;
    if (mdx__conn_queue(im->sh, "put", a->data, a->len, &r)) {
        /* Refused before sending (a record over the server's frame limit, say). */
        line_error(im, lineno, r.name, r.msg);
        return 0;
    }
    im->ring[im->head++ & im->ring_mask] = lineno;
    if ((im->head & (IMPORT_BATCH - 1)) == 0) {
        if (mdx__conn_flush(im->sh, &r)) {
            im->transport = 1;
            mdx__reply_fail(&r);
            return -1;
        }
        while (im->head - im->tail > IMPORT_WINDOW * IMPORT_BATCH)
            if (take_reply(im))
                return -1;
        draw_progress(im, 0);
    }
    return 0;
}

static int ensure_collection(mdx_shell_t *sh, const char *coll)
{
    mdx_buf_t *a = &sh->args;
    a->len = 0;
    a->err = 0;
    mdx_mp_put_map(a, 1);
    mdx_mp_put_str(a, "name", 4);
    mdx_mp_put_str(a, coll, strlen(coll));
    if (a->err)
        return MDX_EXIT_ERR;
    mdx_cli_reply_t r;
    mdx__conn_call(sh, "create_collection", a->data, a->len, &r);
    if (r.kind == MDX_CLI_OK || (r.kind == MDX_CLI_SERVER && r.code == MDX_ECOLLEXISTS))
        return 0;
    return mdx__reply_fail(&r);
}

int mdx__cmd_import(mdx_shell_t *sh, const char *coll, const char *file, const char *key_field,
                    const char *mode, int strict, int ignore_bad)
{
    int fd = strcmp(file, "-") == 0 ? STDIN_FILENO : open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "error: IO: cannot open '%s': %s\n", file, strerror(errno));
        return MDX_EXIT_ERR;
    }
    int rc;
    if ((!sh->client && (rc = mdx__conn_init(sh)) != 0) || (rc = ensure_collection(sh, coll))) {
        if (fd != STDIN_FILENO)
            close(fd);
        return rc;
    }

    imp_t im;
    memset(&im, 0, sizeof(im));
    im.sh = sh;
    im.coll = coll;
    im.coll_len = strlen(coll);
    im.key_field = key_field;
    im.key_len = key_field ? strlen(key_field) : 0;
    im.mode = mode;
    im.strict = strict;
    im.tty = isatty(STDOUT_FILENO);
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        im.total_bytes = st.st_size;
    im.ring_mask = 2 * IMPORT_WINDOW * IMPORT_BATCH - 1;
    im.ring = malloc((im.ring_mask + 1) * sizeof(uint64_t));
    mdx_buf_init(&im.line);
    mdx_buf_t in;
    mdx_buf_init(&in);
    im.t0 = now_ns();
    int fatal = !im.ring;
    if (fatal)
        mdx__print_error("NOMEM", "out of memory");

    size_t start = 0, scan = 0; /* unprocessed bytes begin at start; no '\n' before scan */
    uint64_t lineno = 0;
    int eof = 0;
    while (!fatal && !im.stop) {
        char *nl = in.len > scan ? memchr(in.data + scan, '\n', in.len - scan) : NULL;
        if (!nl && !eof) {
            /* Need more bytes: drop what was consumed, then read. */
            if (start > 0) {
                memmove(in.data, in.data + start, in.len - start);
                in.len -= start;
                scan -= start;
                start = 0;
            }
            scan = in.len;
            if (mdx_buf_reserve(&in, IMPORT_READ)) {
                mdx__print_error("NOMEM", "out of memory");
                fatal = 1;
                break;
            }
            ssize_t got = read(fd, in.data + in.len, in.cap - in.len);
            if (got < 0 && errno == EINTR)
                continue;
            if (got < 0) {
                fprintf(stderr, "error: IO: read '%s': %s\n", file, strerror(errno));
                fatal = 1;
                break;
            }
            if (got == 0)
                eof = 1;
            in.len += (size_t)got;
            continue;
        }
        size_t end = nl ? (size_t)(nl - (char *)in.data) : in.len;
        if (!nl && end == start)
            break; /* end of input */
        lineno++;
        if (import_line(&im, (const char *)in.data + start, end - start, lineno)) {
            fatal = 1;
            break;
        }
        im.done_bytes += (off_t)(end - start + (nl ? 1 : 0));
        start = scan = nl ? end + 1 : end;
        if (!nl)
            break;
    }
    /* Drain: everything queued goes out, and every reply is accounted for. */
    if (!im.transport) {
        mdx_cli_reply_t r;
        if (mdx__conn_flush(sh, &r)) {
            im.transport = 1;
            mdx__reply_fail(&r);
        }
        while (!im.transport && im.tail < im.head)
            if (take_reply(&im))
                break;
    }
    double secs = (double)(now_ns() - im.t0) / 1e9;
    if (im.drawn) {
        draw_progress(&im, 1);
        fputs("\n", stdout);
    }
    printf("imported %llu records in %.2f s (%.0f records/s), %llu bad line%s\n",
           (unsigned long long)im.ok, secs, secs > 0 ? (double)im.ok / secs : 0.0,
           (unsigned long long)im.bad, im.bad == 1 ? "" : "s");
    if (im.stop)
        fprintf(stderr, "import stopped at the first bad line (--strict)\n");
    fflush(stdout);
    mdx_buf_fini(&in);
    mdx_buf_fini(&im.line);
    free(im.ring);
    if (fd != STDIN_FILENO)
        close(fd);
    if (im.transport)
        return MDX_EXIT_CONN;
    if (fatal)
        return MDX_EXIT_ERR;
    if (im.bad && (strict || !ignore_bad))
        return MDX_EXIT_ERR;
    return MDX_EXIT_OK;
}

/* ---- export ---- */

/* One record kept for sorting: its key's class and value, and its line in the arena. */
typedef struct {
    int cls;     /* 0 integer, 1 string, 2 binary (the protocol's order) */
    int neg;     /* integers: negative */
    uint64_t iv; /* integers: the value (two's complement when neg) */
    size_t koff, klen;
    size_t loff, llen;
} exp_rec_t;

static const uint8_t *g_arena; /* qsort has no user pointer in C11 */

static int rec_cmp(const void *pa, const void *pb)
{
    const exp_rec_t *a = pa, *b = pb;
    if (a->cls != b->cls)
        return a->cls < b->cls ? -1 : 1;
    if (a->cls == 0) {
        if (a->neg != b->neg)
            return a->neg ? -1 : 1;
        return a->iv < b->iv ? -1 : a->iv > b->iv;
    }
    size_t n = a->klen < b->klen ? a->klen : b->klen;
    int c = memcmp(g_arena + a->koff, g_arena + b->koff, n);
    if (c)
        return c;
    return a->klen < b->klen ? -1 : a->klen > b->klen;
}

static int same_key(const exp_rec_t *a, const exp_rec_t *b)
{
    return rec_cmp(a, b) == 0;
}

/* Compares a key with a body field's value as values (1 and 1 in different encodings are the
 * same key, as the server sees them). */
static int key_equals(const uint8_t *k, const uint8_t *ke, const uint8_t *v, const uint8_t *ve)
{
    mdx_mp_tok_t a, b;
    if (mdx_mp_read(&k, ke, &a) || mdx_mp_read(&v, ve, &b))
        return 0;
    if (a.type != b.type)
        return 0;
    switch (a.type) {
    case MDX_MP_INT:
        return a.v.i == b.v.i;
    case MDX_MP_UINT:
        return a.v.u == b.v.u;
    case MDX_MP_STR:
    case MDX_MP_BIN:
        return a.len == b.len && memcmp(a.v.ptr, b.v.ptr, a.len) == 0;
    default:
        return 0;
    }
}

/* What an export carries from page to page. */
typedef struct {
    mdx_shell_t *sh;
    const char *coll;
    int unsorted;
    mdx_buf_t arena; /* sorted: key bytes and lines */
    mdx_buf_t recs;  /* sorted: an exp_rec_t per line */
    size_t nrec;
    mdx_buf_t keys; /* the page's keys, msgpack, back to back */
    mdx_buf_t kend; /* the end offset (size_t) of each key in keys */
    mdx_buf_t got;  /* a copy of an mget reply */
    mdx_buf_t ttls; /* an int64_t per key of a chunk: ms left, -1 none, EXP_GONE */
} exp_t;

#define EXP_GONE INT64_MIN

/* The line in sh->text belongs to the record with key [ks, ke): writes it (--unsorted) or keeps
 * it for sorting. Returns 0, or an exit status after printing the error. */
static int emit(exp_t *x, const uint8_t *ks, const uint8_t *ke)
{
    mdx_buf_t *t = &x->sh->text;
    if (t->err) {
        mdx__print_error("NOMEM", "out of memory");
        return MDX_EXIT_ERR;
    }
    if (x->unsorted) {
        if (mdx__write_out(t->data, t->len)) {
            fprintf(stderr, "error: IO: writing the output: %s\n", strerror(errno));
            return MDX_EXIT_ERR;
        }
        return 0;
    }
    exp_rec_t rec;
    memset(&rec, 0, sizeof(rec));
    mdx_mp_tok_t kt;
    const uint8_t *q = ks;
    if (mdx_mp_read(&q, ke, &kt)) {
        mdx__print_error("PROTO", "unexpected key in a reply");
        return MDX_EXIT_ERR;
    }
    if (kt.type == MDX_MP_INT) {
        rec.neg = kt.v.i < 0;
        rec.iv = (uint64_t)kt.v.i;
    } else if (kt.type == MDX_MP_UINT) {
        rec.iv = kt.v.u;
    } else {
        rec.cls = kt.type == MDX_MP_STR ? 1 : 2;
        rec.koff = x->arena.len;
        rec.klen = kt.len;
        mdx_buf_append(&x->arena, kt.v.ptr, kt.len);
    }
    rec.loff = x->arena.len;
    rec.llen = t->len;
    mdx_buf_append(&x->arena, t->data, t->len);
    mdx_buf_append(&x->recs, &rec, sizeof(rec));
    if (x->arena.err || x->recs.err) {
        mdx__print_error("NOMEM", "out of memory");
        return MDX_EXIT_ERR;
    }
    x->nrec++;
    return 0;
}

/* Reads the {"body": body, "tags": [...]} map of an mget with_tags reply at *p. Returns 0 with
 * the two values' ranges, or -1. */
static int tagged_record(const uint8_t **p, const uint8_t *e, const uint8_t **bs,
                         const uint8_t **be, const uint8_t **gs, const uint8_t **ge)
{
    mdx_mp_tok_t m, k;
    *bs = *gs = NULL;
    if (mdx_mp_read(p, e, &m) || m.type != MDX_MP_MAP)
        return -1;
    for (uint32_t i = 0; i < m.len; i++) {
        if (mdx_mp_read(p, e, &k) || k.type != MDX_MP_STR)
            return -1;
        const uint8_t *v = *p;
        if (mdx_mp_skip(p, e, MDX_MP_MAX_DEPTH))
            return -1;
        if (k.len == 4 && memcmp(k.v.ptr, "body", 4) == 0) {
            *bs = v;
            *be = *p;
        } else if (k.len == 4 && memcmp(k.v.ptr, "tags", 4) == 0) {
            *gs = v;
            *ge = *p;
        }
    }
    return *bs && *gs ? 0 : -1;
}

/* Keys [from, to) of the page: their bodies and tags (one mget with with_tags) and their TTLs
 * (a ttl_get each: scan and mget do not return expiry times), all queued behind one flush, so
 * a chunk costs one round trip. The mget runs first: a record it returns that a ttl_get then
 * misses expired or was deleted in between, and is left out like one mget missed. Every reply
 * is read even after an error, so the connection stays in step. Returns 0 or an exit status
 * after printing the error. */
static int export_chunk(exp_t *x, size_t from, size_t to)
{
    mdx_shell_t *sh = x->sh;
    const size_t *kend = (const size_t *)(void *)x->kend.data;
    size_t n = to - from, coll_len = strlen(x->coll);
    size_t k0 = from ? kend[from - 1] : 0;
    mdx_cli_reply_t r;
    mdx_buf_t *a = args_coll(sh, x->coll, coll_len, 3);
    mdx_mp_put_str(a, "keys", 4);
    mdx_mp_put_array(a, (uint32_t)n);
    mdx_buf_append(a, x->keys.data + k0, kend[to - 1] - k0);
    mdx_mp_put_str(a, "with_tags", 9);
    mdx_mp_put_bool(a, 1);
    if (a->err) {
        mdx__print_error("NOMEM", "out of memory");
        return MDX_EXIT_ERR;
    }
    size_t queued = 0;
    int status = 0;
    if (mdx__conn_queue(sh, "mget", a->data, a->len, &r) == 0)
        queued++;
    else
        status = mdx__reply_fail(&r);
    for (size_t i = from; i < to && !status; i++) {
        size_t ks = i ? kend[i - 1] : 0;
        args_coll(sh, x->coll, coll_len, 2);
        mdx_mp_put_str(a, "key", 3);
        mdx_buf_append(a, x->keys.data + ks, kend[i] - ks);
        if (a->err) {
            mdx__print_error("NOMEM", "out of memory");
            status = MDX_EXIT_ERR;
        } else if (mdx__conn_queue(sh, "ttl_get", a->data, a->len, &r) == 0) {
            queued++;
        } else {
            status = mdx__reply_fail(&r);
        }
    }
    x->ttls.len = 0;
    x->got.len = 0;
    for (size_t i = 0; i < queued; i++) {
        mdx__conn_next(sh, &r);
        if (r.kind == MDX_CLI_TRANSPORT)
            return mdx__reply_fail(&r); /* everything pending was dropped */
        if (status)
            continue;
        if (i == 0) {
            if (r.kind != MDX_CLI_OK)
                status = mdx__reply_fail(&r);
            else
                mdx_buf_append(&x->got, r.body, r.body_len);
            continue;
        }
        int64_t ms = EXP_GONE;
        if (r.kind == MDX_CLI_OK) {
            const uint8_t *q = r.body;
            mdx_mp_tok_t t;
            if (mdx_mp_read(&q, r.body + r.body_len, &t) || t.type != MDX_MP_INT) {
                mdx__print_error("PROTO", "unexpected ttl_get reply");
                status = MDX_EXIT_ERR;
                continue;
            }
            ms = t.v.i;
        } else if (r.kind != MDX_CLI_SERVER || r.code != MDX_ENOTFOUND) {
            status = mdx__reply_fail(&r);
            continue;
        }
        mdx_buf_append(&x->ttls, &ms, sizeof(ms));
    }
    if (status)
        return status;
    if (x->got.err || x->ttls.err) {
        mdx__print_error("NOMEM", "out of memory");
        return MDX_EXIT_ERR;
    }

    /* [null | {"body": body, "tags": [str, ...]}, ...], one per key, in the keys' order. */
    const int64_t *ttls = (const int64_t *)(void *)x->ttls.data;
    const uint8_t *p = x->got.data, *e = x->got.data + x->got.len;
    mdx_mp_tok_t arr;
    if (mdx_mp_read(&p, e, &arr) || arr.type != MDX_MP_ARRAY || arr.len != n) {
        mdx__print_error("PROTO", "unexpected mget reply");
        return MDX_EXIT_ERR;
    }
    mdx_buf_t *t = &sh->text;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *bs, *be, *gs, *ge, *q = p;
        mdx_mp_tok_t v;
        if (mdx_mp_read(&q, e, &v)) {
            mdx__print_error("PROTO", "unexpected mget reply");
            return MDX_EXIT_ERR;
        }
        if (v.type == MDX_MP_NIL) {
            p = q;
            continue; /* absent or expired by now */
        }
        if (tagged_record(&p, e, &bs, &be, &gs, &ge)) {
            mdx__print_error("PROTO", "unexpected mget reply");
            return MDX_EXIT_ERR;
        }
        /* ttl_get gives -1 for no expiry, else the ms left; 0 left is expired (and put would
         * take ttl_ms 0 as "never"). */
        int64_t ms = ttls[i];
        if (ms == EXP_GONE || ms == 0 || ms < -1)
            continue;
        const uint8_t *ks = x->keys.data + (from + i ? kend[from + i - 1] : 0);
        const uint8_t *ke = x->keys.data + kend[from + i];
        int bad = 0;
        t->len = 0;
        t->err = 0;
        mdx_buf_append(t, "{\"key\":", 7);
        q = ks;
        bad |= mdx__mp_to_json(&q, ke, t);
        if (ms > 0) {
            char num[32];
            int len = snprintf(num, sizeof(num), ",\"ttl_ms\":%lld", (long long)ms);
            mdx_buf_append(t, num, (size_t)len);
        }
        q = gs;
        if (mdx_mp_read(&q, ge, &v) || v.type != MDX_MP_ARRAY) {
            mdx__print_error("PROTO", "unexpected mget reply");
            return MDX_EXIT_ERR;
        }
        if (v.len > 0) {
            mdx_buf_append(t, ",\"tags\":", 8);
            q = gs;
            bad |= mdx__mp_to_json(&q, ge, t);
        }
        mdx_buf_append(t, ",\"body\":", 8);
        q = bs;
        bad |= mdx__mp_to_json(&q, be, t);
        mdx_buf_append(t, "}\n", 2);
        if (bad) {
            mdx__print_error(t->err ? "NOMEM" : "PROTO",
                             t->err ? "out of memory" : "unexpected mget reply");
            return MDX_EXIT_ERR;
        }
        int rc = emit(x, ks, ke);
        if (rc)
            return rc;
    }
    return 0;
}

/* Builds the --key line (the body alone) of the record with key [ks, ks) and body [bs, be) in
 * sh->text. Returns 0, 1 when the body does not hold its key in key_field (reported), or an
 * exit status. */
static int key_field_line(exp_t *x, const char *key_field, const uint8_t *ks, const uint8_t *ke,
                          const uint8_t *bs, const uint8_t *be)
{
    const uint8_t *vs, *ve;
    uint32_t members;
    if (!top_field(bs, be, key_field, strlen(key_field), &vs, &ve, &members) ||
        !key_equals(ks, ke, vs, ve)) {
        /* Importing this line with --key would give another key: refuse it. */
        mdx_buf_t kj;
        mdx_buf_init(&kj);
        const uint8_t *q = ks;
        mdx__mp_to_json(&q, ke, &kj);
        mdx_buf_append(&kj, "", 1);
        fprintf(stderr,
                "error: INVAL: record %s: its body's field '%s' does not hold its key; export "
                "without --key to keep it\n",
                kj.err ? "?" : (const char *)kj.data, key_field);
        mdx_buf_fini(&kj);
        return 1;
    }
    mdx_buf_t *t = &x->sh->text;
    t->len = 0;
    t->err = 0;
    const uint8_t *q = bs;
    if (mdx__mp_to_json(&q, be, t) && !t->err) {
        mdx__print_error("PROTO", "unexpected scan reply");
        return MDX_EXIT_ERR;
    }
    mdx_buf_append(t, "\n", 1);
    return 0;
}

int mdx__cmd_export(mdx_shell_t *sh, const char *coll, const char *key_field, int unsorted)
{
    int rc;
    if (!sh->client && (rc = mdx__conn_init(sh)) != 0)
        return rc;
    exp_t x;
    memset(&x, 0, sizeof(x));
    x.sh = sh;
    x.coll = coll;
    x.unsorted = unsorted;
    mdx_buf_init(&x.arena);
    mdx_buf_init(&x.recs);
    mdx_buf_init(&x.keys);
    mdx_buf_init(&x.kend);
    mdx_buf_init(&x.got);
    mdx_buf_init(&x.ttls);
    uint64_t cursor = 0, mismatched = 0;
    int status = MDX_EXIT_OK;
    do {
        mdx_buf_t *a = args_coll(sh, coll, strlen(coll), 3);
        mdx_mp_put_str(a, "cursor", 6);
        mdx_mp_put_uint(a, cursor);
        mdx_mp_put_str(a, "limit", 5);
        mdx_mp_put_uint(a, EXPORT_PAGE);
        mdx_cli_reply_t r;
        mdx__conn_call(sh, "scan", a->data, a->len, &r);
        if (r.kind != MDX_CLI_OK) {
            status = mdx__reply_fail(&r);
            break;
        }
        /* {"records": [[key, body], ...], "cursor": uint}, keys in any order. */
        const uint8_t *p = r.body, *e = r.body + r.body_len, *recp = NULL;
        mdx_mp_tok_t m, k, v;
        int bad = mdx_mp_read(&p, e, &m) || m.type != MDX_MP_MAP;
        uint32_t nr = 0;
        int got_cursor = 0;
        for (uint32_t i = 0; !bad && i < m.len; i++) {
            if (mdx_mp_read(&p, e, &k) || k.type != MDX_MP_STR) {
                bad = 1;
                break;
            }
            const uint8_t *vp = p;
            if (mdx_mp_read(&vp, e, &v)) {
                bad = 1;
                break;
            }
            if (k.len == 7 && memcmp(k.v.ptr, "records", 7) == 0 && v.type == MDX_MP_ARRAY) {
                recp = vp;
                nr = v.len;
            } else if (k.len == 6 && memcmp(k.v.ptr, "cursor", 6) == 0 &&
                       (v.type == MDX_MP_INT || v.type == MDX_MP_UINT)) {
                cursor = v.type == MDX_MP_INT ? (uint64_t)v.v.i : v.v.u;
                got_cursor = 1;
            }
            bad = bad || mdx_mp_skip(&p, e, MDX_MP_MAX_DEPTH);
        }
        if (bad || !recp || !got_cursor) {
            mdx__print_error("PROTO", "unexpected scan reply");
            status = MDX_EXIT_ERR;
            break;
        }
        /* With --key the scan's bodies are the lines. Otherwise only its keys are kept: the
         * bodies come again with their tags from mget, at the moment their TTL is read. */
        x.keys.len = 0;
        x.kend.len = 0;
        p = recp;
        for (uint32_t i = 0; i < nr && !status; i++) {
            mdx_mp_tok_t pr;
            const uint8_t *ks = NULL, *ke = NULL, *be = NULL;
            bad = mdx_mp_read(&p, e, &pr) || pr.type != MDX_MP_ARRAY || pr.len != 2;
            if (!bad) {
                ks = p;
                bad = mdx_mp_skip(&p, e, MDX_MP_MAX_DEPTH) != 0;
                ke = p;
            }
            bad = bad || mdx_mp_skip(&p, e, MDX_MP_MAX_DEPTH) != 0;
            be = p;
            if (bad) {
                mdx__print_error("PROTO", "unexpected scan reply");
                status = MDX_EXIT_ERR;
                break;
            }
            if (!key_field) {
                mdx_buf_append(&x.keys, ks, (size_t)(ke - ks));
                mdx_buf_append(&x.kend, &x.keys.len, sizeof(size_t));
                continue;
            }
            rc = key_field_line(&x, key_field, ks, ke, ke, be);
            if (rc == 1)
                mismatched++;
            else if (rc || (rc = emit(&x, ks, ke)) != 0)
                status = rc;
        }
        if (!status && (x.keys.err || x.kend.err)) {
            mdx__print_error("NOMEM", "out of memory");
            status = MDX_EXIT_ERR;
        }
        for (size_t from = 0; !status && !key_field && from < nr; from += EXPORT_MGET) {
            size_t to = nr - from > EXPORT_MGET ? from + EXPORT_MGET : nr;
            status = export_chunk(&x, from, to);
        }
    } while (status == MDX_EXIT_OK && cursor != 0);

    if (status == MDX_EXIT_OK && !unsorted && x.nrec) {
        exp_rec_t *rv = (exp_rec_t *)(void *)x.recs.data;
        g_arena = x.arena.data;
        /* Stable for equal keys is not needed: duplicates are the same record. */
        qsort(rv, x.nrec, sizeof(exp_rec_t), rec_cmp);
        for (size_t i = 0; i < x.nrec; i++) {
            if (i + 1 < x.nrec && same_key(&rv[i], &rv[i + 1]))
                continue; /* a scan may return a record twice; keep one */
            if (mdx__write_out(x.arena.data + rv[i].loff, rv[i].llen))
                break; /* reported below */
        }
        g_arena = NULL;
    }
    if ((fflush(stdout) != 0 || ferror(stdout)) && status == MDX_EXIT_OK) {
        fprintf(stderr, "error: IO: writing the output: %s\n", strerror(errno));
        status = MDX_EXIT_ERR;
    }
    mdx_buf_fini(&x.arena);
    mdx_buf_fini(&x.recs);
    mdx_buf_fini(&x.keys);
    mdx_buf_fini(&x.kend);
    mdx_buf_fini(&x.got);
    mdx_buf_fini(&x.ttls);
    if (status == MDX_EXIT_OK && mismatched)
        status = MDX_EXIT_ERR;
    return status;
}
