/*
 * memdex import and export: NDJSON in and out, one record per line.
 *
 * Two line shapes (docs/cli.md, "Import and export"):
 *   without --key:  {"key": K, "body": {...}}   what export writes by default: any key (binary
 *                                               included) and any body round-trip exactly
 *   with --key F:   {...}                       the body itself; its field F is the key
 *
 * Import pipelines: requests are queued in batches of IMPORT_BATCH and flushed, and replies are
 * read only once more than IMPORT_WINDOW batches are in flight, so the server always has work
 * queued while the CLI parses the next batch. A ring remembers the line number of every request in
 * flight, so an error reply (which arrives later) is reported against its line. A bad line,
 * local or refused by the server, is reported and skipped; nothing else depends on it.
 *
 * Export walks the collection with scan. By default it sorts the records by key (the
 * protocol's order: integers, then strings, then binaries) and drops the duplicates a scan may
 * return, so the same data always exports to the same bytes; --unsorted streams in scan order
 * with constant memory.
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
#define PROGRESS_NS   100000000LL /* redraw the progress bar at most every 100 ms */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
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
    const uint8_t *e = b->data + b->len, *ks, *ke, *bs, *be;
    uint32_t members = 0;
    if (b->data[0] < 0x80 || (b->data[0] > 0x8f && b->data[0] != 0xde && b->data[0] != 0xdf)) {
        line_error(im, lineno, "INVAL", "a record must be a JSON object");
        return 0;
    }
    char msg[400];
    if (im->key_field) {
        if (!top_field(b->data, e, im->key_field, im->key_len, &ks, &ke, &members)) {
            snprintf(msg, sizeof(msg), "no field '%s' (the key, from --key)", im->key_field);
            line_error(im, lineno, "INVAL", msg);
            return 0;
        }
        bs = b->data;
        be = e;
    } else {
        if (!top_field(b->data, e, "key", 3, &ks, &ke, &members) ||
            !top_field(b->data, e, "body", 4, &bs, &be, &members) || members != 2) {
            line_error(im, lineno, "INVAL",
                       "expected {\"key\": K, \"body\": {...}} (or give --key FIELD)");
            return 0;
        }
    }
    if (!is_key(ks, ke)) {
        snprintf(msg, sizeof(msg), "the key ('%s') must be an integer, a string or binary",
                 im->key_field ? im->key_field : "key");
        line_error(im, lineno, "BADKEY", msg);
        return 0;
    }

    /* The request's args: {coll, key, body[, mode]}. */
    mdx_buf_t *a = &im->sh->args;
    a->len = 0;
    a->err = 0;
    mdx_mp_put_map(a, im->mode ? 4 : 3);
    mdx_mp_put_str(a, "coll", 4);
    mdx_mp_put_str(a, im->coll, im->coll_len);
    mdx_mp_put_str(a, "key", 3);
    mdx_buf_append(a, ks, (size_t)(ke - ks));
    mdx_mp_put_str(a, "body", 4);
    mdx_buf_append(a, bs, (size_t)(be - bs));
    if (im->mode) {
        mdx_mp_put_str(a, "mode", 4);
        mdx_mp_put_str(a, im->mode, strlen(im->mode));
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

int mdx__cmd_export(mdx_shell_t *sh, const char *coll, const char *key_field, int unsorted)
{
    int rc;
    if (!sh->client && (rc = mdx__conn_init(sh)) != 0)
        return rc;
    mdx_buf_t arena, recs;
    mdx_buf_init(&arena);
    mdx_buf_init(&recs);
    mdx_buf_t *t = &sh->text;
    uint64_t cursor = 0, mismatched = 0;
    size_t nrec = 0;
    int status = MDX_EXIT_OK;
    do {
        mdx_buf_t *a = &sh->args;
        a->len = 0;
        a->err = 0;
        mdx_mp_put_map(a, 3);
        mdx_mp_put_str(a, "coll", 4);
        mdx_mp_put_str(a, coll, strlen(coll));
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
        p = recp;
        for (uint32_t i = 0; i < nr && !bad; i++) {
            mdx_mp_tok_t pr;
            if (mdx_mp_read(&p, e, &pr) || pr.type != MDX_MP_ARRAY || pr.len != 2) {
                bad = 1;
                break;
            }
            const uint8_t *ks = p;
            if (mdx_mp_skip(&p, e, MDX_MP_MAX_DEPTH)) {
                bad = 1;
                break;
            }
            const uint8_t *ke = p, *bs = p;
            if (mdx_mp_skip(&p, e, MDX_MP_MAX_DEPTH)) {
                bad = 1;
                break;
            }
            const uint8_t *be = p;
            t->len = 0;
            if (key_field) {
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
                            "error: INVAL: record %s: its body's field '%s' does not hold its "
                            "key; export without --key to keep it\n",
                            kj.err ? "?" : (const char *)kj.data, key_field);
                    mdx_buf_fini(&kj);
                    mismatched++;
                    continue;
                }
                const uint8_t *q = bs;
                bad = mdx__mp_to_json(&q, be, t) != 0;
            } else {
                const uint8_t *q = ks;
                mdx_buf_append(t, "{\"key\":", 7);
                bad = mdx__mp_to_json(&q, ke, t) != 0;
                mdx_buf_append(t, ",\"body\":", 8);
                q = bs;
                bad = bad || mdx__mp_to_json(&q, be, t) != 0;
                mdx_buf_append(t, "}", 1);
            }
            mdx_buf_append(t, "\n", 1);
            if (bad || t->err)
                break;
            if (unsorted) {
                if (mdx__write_out(t->data, t->len)) {
                    bad = 1;
                    break;
                }
                continue;
            }
            exp_rec_t rec;
            memset(&rec, 0, sizeof(rec));
            mdx_mp_tok_t kt;
            const uint8_t *q = ks;
            mdx_mp_read(&q, ke, &kt);
            if (kt.type == MDX_MP_INT) {
                rec.neg = kt.v.i < 0;
                rec.iv = (uint64_t)kt.v.i;
            } else if (kt.type == MDX_MP_UINT) {
                rec.iv = kt.v.u;
            } else {
                rec.cls = kt.type == MDX_MP_STR ? 1 : 2;
                rec.koff = arena.len;
                rec.klen = kt.len;
                mdx_buf_append(&arena, kt.v.ptr, kt.len);
            }
            rec.loff = arena.len;
            rec.llen = t->len;
            mdx_buf_append(&arena, t->data, t->len);
            mdx_buf_append(&recs, &rec, sizeof(rec));
            nrec++;
        }
        if (bad || arena.err || recs.err || t->err) {
            mdx__print_error(arena.err || recs.err || t->err ? "NOMEM" : "PROTO",
                             arena.err || recs.err || t->err ? "out of memory"
                                                             : "unexpected scan reply");
            status = MDX_EXIT_ERR;
            break;
        }
    } while (cursor != 0);

    if (status == MDX_EXIT_OK && !unsorted && nrec) {
        exp_rec_t *rv = (exp_rec_t *)(void *)recs.data;
        g_arena = arena.data;
        /* Stable for equal keys is not needed: duplicates are the same record. */
        qsort(rv, nrec, sizeof(exp_rec_t), rec_cmp);
        for (size_t i = 0; i < nrec; i++) {
            if (i + 1 < nrec && same_key(&rv[i], &rv[i + 1]))
                continue; /* a scan may return a record twice; keep one */
            if (mdx__write_out(arena.data + rv[i].loff, rv[i].llen)) {
                status = MDX_EXIT_ERR;
                break;
            }
        }
        g_arena = NULL;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "error: IO: writing the output: %s\n", strerror(errno));
        status = MDX_EXIT_ERR;
    }
    mdx_buf_fini(&arena);
    mdx_buf_fini(&recs);
    if (status == MDX_EXIT_OK && mismatched)
        status = MDX_EXIT_ERR;
    return status;
}
