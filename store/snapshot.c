/*
 * Point-in-time snapshots without fork (see memdex/snapshot.h and docs/snapshot-format.md).
 *
 * Consistency: a snapshot started with generation G must contain every record that existed at
 * that moment, as it was. Every record carries the generation of the last snapshot that saved
 * it; a record created while a snapshot runs is born with that snapshot's generation. The
 * walk saves records whose generation is not G and marks them G; mdx__snap_guard, called by
 * every path that is about to replace, change in place or free a record, saves such a record
 * first. Records created after the start already carry G and are skipped. So each record of
 * the moment is written exactly once, by the walk or by its guard, whatever the order of
 * writes. (Records used to carry their write epoch too; the generation alone decides, and
 * dropping the epoch kept the record header in the allocator's size class when the eviction
 * links were added.)
 *
 * I/O: the owner thread builds checksummed blocks in memory and queues them; a writer thread
 * writes them to a temporary file, and after the trailer fsyncs it, renames it to its final
 * name, fsyncs the directory and deletes snapshots beyond `keep`. The writer never allocates
 * or frees through the (single-threaded) allocator wrapper: written blocks go back to the
 * owner on a done list. The queue is bounded (queue_limit): when the disk is slower than the
 * walk, step() does no work until the writer catches up. Pre-images are not bounded by it,
 * but there is at most one per record.
 */
#include "memdex/snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "common/assert.h"
#include "store/index_int.h"
#include "store/store_int.h"

/* FROZEN file constants (docs/snapshot-format.md). */
static const uint8_t SNAP_MAGIC[8] = {0x89, 'M', 'D', 'X', 'S', 'N', 'P', '\n'};
#define SNAP_VERSION      1
#define SNAP_BLOCK        0x42 /* 'B' */
#define SNAP_TRAILER      0x54 /* 'T' */
#define SNAP_BLOCK_TARGET (256u * 1024)
#define SNAP_MAX_PAYLOAD  (1u << 30)
#define SNAP_MAX_HEADER   (64u << 20)
/* A block buffer is reserved whole and reused: growing it by doubling copied each block about
 * twice, and a fresh allocation per block faulted its pages in again. A record that does not
 * fit still grows the buffer. */
#define SNAP_BLOCK_CAP (SNAP_BLOCK_TARGET + 64u * 1024)
#define WALK_BUCKETS                                                                               \
    256 /* buckets per read-ahead walk call: the queue is looked at between calls */

typedef struct qitem {
    struct qitem *next;
    uint8_t *data;
    size_t len, cap;
    int last;
} qitem_t;

struct mdx_snapshot {
    mdx_store_t *st;
    char dir[MDX_SNAPSHOT_PATH_MAX];
    char tmp[MDX_SNAPSHOT_PATH_MAX + 64];
    char final_name[96];
    int fd;
    unsigned keep;
    size_t queue_limit;
    uint64_t epoch;
    int64_t started_at, finished_at;

    mdx_coll_t **colls; /* collections at the start; NULL once dropped */
    size_t ncolls;
    size_t walk_coll;
    uint64_t walk_cursor;
    uint64_t walk_budget;
    int walk_done, trailer_queued;

    mdx_buf_t block; /* block being filled: 9-byte header room, then entries */
    qitem_t *pool;   /* written block buffers (cap >= SNAP_BLOCK_CAP) to fill again; as many as
                        the queue holds, so the buffers in use stay about queue_limit */
    qitem_t *spare;  /* queue items without a buffer */
    size_t npool, pool_max;
    uint32_t block_count;
    mdx_buf_t sums; /* header and block checksums, big-endian, for the trailer chain */
    uint64_t records, blocks, queued_total;

    int error;   /* owner-side error (ENOMEM) */
    int waiting; /* the last step did nothing: the writer is behind or finishing the file */
    char errmsg[256];

    /* shared with the writer thread, under mu */
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    qitem_t *head, *tail; /* to write */
    qitem_t *done_items;  /* written, to free on the owner thread */
    size_t queued_bytes;
    uint64_t written;
    int abort, thread_done, thread_err;
    int complete; /* the file is renamed into place and synced */
    char thread_errmsg[256];
};

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static void be64(uint8_t *p, uint64_t v)
{
    be32(p, (uint32_t)(v >> 32));
    be32(p + 4, (uint32_t)v);
}
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) << 32 | rd32(p + 4);
}

/* ---- the writer thread ---- */

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return -strcmp(a, b); /* newest first */
}

static int is_snapshot_name(const char *n)
{
    size_t len = strlen(n);
    return len > 13 && len < MDX_SNAPSHOT_PATH_MAX && strncmp(n, "snapshot-", 9) == 0 &&
           strcmp(n + len - 4, ".mdx") == 0;
}

int mdx_snapshot_list(const char *dir, char (*names)[MDX_SNAPSHOT_PATH_MAX], int max)
{
    DIR *d = opendir(dir);
    if (!d)
        return -MDX_EIO;
    /* Collect into a local array first so the result is sorted even when max is small. */
    size_t cap = 16, n = 0;
    char(*all)[MDX_SNAPSHOT_PATH_MAX] = malloc(cap * MDX_SNAPSHOT_PATH_MAX);
    struct dirent *e;
    while (all && (e = readdir(d))) {
        if (!is_snapshot_name(e->d_name))
            continue;
        if (n == cap) {
            void *m = realloc(all, cap * 2 * MDX_SNAPSHOT_PATH_MAX);
            if (!m)
                break;
            all = m;
            cap *= 2;
        }
        snprintf(all[n++], MDX_SNAPSHOT_PATH_MAX, "%s", e->d_name);
    }
    closedir(d);
    if (!all)
        return -MDX_EIO;
    qsort(all, n, MDX_SNAPSHOT_PATH_MAX, name_cmp);
    for (size_t i = 0; i < n && (int)i < max; i++)
        memcpy(names[i], all[i], MDX_SNAPSHOT_PATH_MAX);
    free(all);
    return (int)n;
}

/* Runs on the writer thread: it uses only libc, never the allocator wrapper. */
static int finish_file(mdx_snapshot_t *s, char *msg, size_t msglen)
{
    char path[sizeof(s->dir) + sizeof(s->final_name) + 2];
    if (fsync(s->fd) != 0) {
        snprintf(msg, msglen, "fsync of %.200s failed: %s", s->tmp, strerror(errno));
        return MDX_EIO;
    }
    close(s->fd);
    s->fd = -1;
    snprintf(path, sizeof(path), "%s/%s", s->dir, s->final_name);
    if (rename(s->tmp, path) != 0) {
        snprintf(msg, msglen, "rename of %.100s to %.100s failed: %s", s->tmp, path,
                 strerror(errno));
        return MDX_EIO;
    }
    int dfd = open(s->dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    /* Keep the newest `keep` complete snapshots. */
    char(*names)[MDX_SNAPSHOT_PATH_MAX] = malloc(64 * MDX_SNAPSHOT_PATH_MAX);
    if (names) {
        int n = mdx_snapshot_list(s->dir, names, 64);
        for (int i = (int)s->keep; i < n && i < 64; i++) {
            snprintf(path, sizeof(path), "%s/%s", s->dir, names[i]);
            unlink(path);
        }
        free(names);
    }
    return 0;
}

static void *writer_main(void *arg)
{
    mdx_snapshot_t *s = arg;
    char msg[256] = "";
    int err = 0;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->head && !s->abort)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->abort)
            break;
        qitem_t *q = s->head;
        s->head = q->next;
        if (!s->head)
            s->tail = NULL;
        pthread_mutex_unlock(&s->mu);

        int last = q->last;
        if (!err) {
            int e = write_all(s->fd, q->data, q->len);
            if (e) {
                err = MDX_EIO;
                snprintf(msg, sizeof(msg), "write to %.200s failed: %s", s->tmp, strerror(e));
            }
        }
        if (!err && last)
            err = finish_file(s, msg, sizeof(msg));
        int completed = !err && last;

        pthread_mutex_lock(&s->mu);
        s->queued_bytes -= q->len;
        if (!err)
            s->written += q->len;
        q->next = s->done_items;
        s->done_items = q;
        s->complete = completed;
        if (err && !s->thread_err) {
            s->thread_err = err;
            snprintf(s->thread_errmsg, sizeof(s->thread_errmsg), "%s", msg);
        }
        pthread_cond_broadcast(&s->cv);
        if (last || err)
            break;
    }
    if (s->fd >= 0 && (s->abort || s->thread_err)) {
        close(s->fd);
        s->fd = -1;
        unlink(s->tmp);
    }
    s->thread_done = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- owner side ---- */

static void free_done(mdx_snapshot_t *s)
{
    pthread_mutex_lock(&s->mu);
    qitem_t *q = s->done_items;
    s->done_items = NULL;
    pthread_mutex_unlock(&s->mu);
    while (q) {
        qitem_t *n = q->next;
        if (q->cap >= SNAP_BLOCK_CAP && s->npool < s->pool_max) {
            q->next = s->pool;
            s->pool = q;
            s->npool++;
        } else {
            mdx_free(q->data);
            mdx_free(q);
        }
        q = n;
    }
}

static void free_items(qitem_t *q)
{
    while (q) {
        qitem_t *n = q->next;
        mdx_free(q->data);
        mdx_free(q);
        q = n;
    }
}

static int fail(mdx_snapshot_t *s, int code, const char *msg)
{
    if (!s->error) {
        s->error = code;
        snprintf(s->errmsg, sizeof(s->errmsg), "%s", msg);
    }
    return code;
}

/* Hands a finished buffer (cap bytes allocated) to the writer. Takes ownership of data. */
static int enqueue(mdx_snapshot_t *s, uint8_t *data, size_t len, size_t cap, int last)
{
    qitem_t *q = s->spare;
    if (q)
        s->spare = q->next;
    else
        q = mdx_malloc(sizeof(*q));
    if (!q) {
        mdx_free(data);
        return fail(s, MDX_ENOMEM, "out of memory queueing snapshot data");
    }
    q->next = NULL;
    q->data = data;
    q->len = len;
    q->cap = cap;
    q->last = last;
    s->queued_total += len;
    pthread_mutex_lock(&s->mu);
    if (s->tail)
        s->tail->next = q;
    else
        s->head = q;
    s->tail = q;
    s->queued_bytes += len;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void add_sum(mdx_snapshot_t *s, uint64_t sum)
{
    uint8_t b[8];
    be64(b, sum);
    mdx_buf_append(&s->sums, b, 8);
}

static void block_reset(mdx_snapshot_t *s)
{
    mdx_buf_init(&s->block);
    s->block_count = 0;
}

static int block_flush(mdx_snapshot_t *s)
{
    if (s->block_count == 0)
        return 0;
    mdx_buf_t *b = &s->block;
    if (mdx_buf_reserve(b, 8) || b->err) {
        mdx_buf_fini(b);
        block_reset(s);
        return fail(s, MDX_ENOMEM, "out of memory building a snapshot block");
    }
    b->data[0] = SNAP_BLOCK;
    be32(b->data + 1, (uint32_t)(b->len - 9));
    be32(b->data + 5, s->block_count);
    uint64_t sum = XXH3_64bits(b->data, b->len);
    be64(b->data + b->len, sum);
    b->len += 8;
    add_sum(s, sum);
    s->blocks++;
    uint8_t *data = b->data;
    size_t len = b->len, cap = b->cap;
    block_reset(s);
    return enqueue(s, data, len, cap, 0);
}

/* Gives the empty block a buffer: a written one from the pool, else a new one. */
static void block_start(mdx_snapshot_t *s)
{
    mdx_buf_t *b = &s->block;
    if (!s->pool)
        free_done(s); /* a step may walk far while the writer keeps up */
    qitem_t *q = s->pool;
    if (q && !b->data) {
        s->pool = q->next;
        s->npool--;
        b->data = q->data;
        b->cap = q->cap;
        b->len = 0;
        q->data = NULL;
        q->next = s->spare;
        s->spare = q;
    } else {
        mdx_buf_reserve(b, SNAP_BLOCK_CAP);
    }
}

/* Appends one record entry: [coll_index, expires_at, key, body, evict] or, with tags,
 * [coll_index, expires_at, key, body, evict, [tag, ...]]. */
static int append_record(mdx_snapshot_t *s, uint32_t coll_idx, const mdx_rec_t *r)
{
    mdx_buf_t *b = &s->block;
    if (b->len == 0) {
        static const uint8_t room[9] = {0};
        block_start(s);
        mdx_buf_append(b, room, sizeof(room));
    }
    mdx_mp_put_array(b, r->ntags ? 6 : 5);
    mdx_mp_put_uint(b, coll_idx);
    mdx_mp_put_int(b, r->expires_at);
    mdx_buf_append(b, rec_key(r), r->key_len);
    mdx_buf_append(b, rec_body(r), r->body_len);
    mdx_mp_put_uint(b, r->evict & (EV_FREQ | EV_MAIN));
    if (r->ntags) {
        const mdx_tagref_t *refs = rec_tagrefs(r);
        mdx_mp_put_array(b, r->ntags);
        for (unsigned i = 0; i < r->ntags; i++) {
            const mdx_tag_t *t = tagref_tag(&refs[i]);
            mdx_mp_put_str(b, t->name, t->len);
        }
    }
    if (b->err) {
        mdx_buf_fini(b);
        block_reset(s);
        return fail(s, MDX_ENOMEM, "out of memory building a snapshot block");
    }
    s->block_count++;
    s->records++;
    if (b->len >= SNAP_BLOCK_TARGET)
        return block_flush(s);
    return 0;
}

static void save_rec(mdx_snapshot_t *s, mdx_coll_t *c, mdx_rec_t *r)
{
    r->snap_gen = s->st->snap_gen;
    /* A record whose tag was invalidated before the snapshot began was already gone then. */
    if (!s->error && !(r->ntags && mdx__rec_invalidated(r, s->st->snap_epoch)))
        (void)append_record(s, (uint32_t)c->snap_idx, r);
}

void mdx__snap_save(mdx_coll_t *c, mdx_rec_t *r)
{
    mdx_snapshot_t *s = c->store->snap;
    /* Snapshot buffers are not the collection's memory: undo their share of the caller's
     * MEM_BEGIN/MEM_END bracket. */
    size_t m0 = mdx_alloc_used();
    save_rec(s, c, r);
    c->mem -= mdx_alloc_used() - m0;
    c->store->mem -= mdx_alloc_used() - m0;
}

void mdx__snap_coll_drop(mdx_coll_t *c)
{
    mdx_snapshot_t *s = c->store->snap;
    if (!s || c->snap_idx < 0)
        return;
    mdx_htab_iter_t it = {0};
    mdx_hnode_t *n;
    while ((n = mdx_htab_iter_next(&c->primary, &it)))
        mdx__snap_guard(c, (mdx_rec_t *)n);
    s->colls[c->snap_idx] = NULL;
}

static int header_build(mdx_snapshot_t *s, mdx_buf_t *b)
{
    mdx_store_t *st = s->st;
    static const uint8_t room[16] = {0};
    mdx_buf_append(b, room, sizeof(room));
    mdx_mp_put_map(b, 3);
    mdx_mp_put_str(b, "created_at", 10);
    mdx_mp_put_int(b, s->started_at);
    mdx_mp_put_str(b, "epoch", 5);
    mdx_mp_put_uint(b, s->epoch);
    mdx_mp_put_str(b, "collections", 11);
    mdx_mp_put_array(b, (uint32_t)st->ncolls);
    for (size_t i = 0; i < st->ncolls; i++) {
        mdx_coll_t *c = st->colls[i];
        const char *pol = mdx_evict_policy_name(c->opts.policy);
        mdx_mp_put_map(b, 5);
        mdx_mp_put_str(b, "name", 4);
        mdx_mp_put_str(b, c->name, strlen(c->name));
        mdx_mp_put_str(b, "capacity", 8);
        mdx_mp_put_uint(b, c->opts.capacity);
        mdx_mp_put_str(b, "policy", 6);
        mdx_mp_put_str(b, pol, strlen(pol));
        mdx_mp_put_str(b, "default_ttl_ms", 14);
        mdx_mp_put_int(b, c->opts.default_ttl_ms);
        mdx_mp_put_str(b, "indexes", 7);
        mdx_mp_put_array(b, (uint32_t)c->nindexes);
        for (size_t j = 0; j < c->nindexes; j++) {
            const mdx_index_t *ix = c->indexes[j];
            mdx_mp_put_map(b, 4);
            mdx_mp_put_str(b, "name", 4);
            mdx_mp_put_str(b, ix->name, strlen(ix->name));
            mdx_mp_put_str(b, "field", 5);
            mdx_mp_put_str(b, ix->field, ix->field_len);
            mdx_mp_put_str(b, "kind", 4);
            if (ix->kind == MDX_INDEX_HASH)
                mdx_mp_put_str(b, "hash", 4);
            else
                mdx_mp_put_str(b, "skiplist", 8);
            mdx_mp_put_str(b, "unique", 6);
            mdx_mp_put_bool(b, ix->unique);
        }
    }
    if (mdx_buf_reserve(b, 8) || b->err)
        return MDX_ENOMEM;
    memcpy(b->data, SNAP_MAGIC, 8);
    be32(b->data + 8, SNAP_VERSION);
    be32(b->data + 12, (uint32_t)(b->len - 16));
    uint64_t sum = XXH3_64bits(b->data, b->len);
    be64(b->data + b->len, sum);
    b->len += 8;
    add_sum(s, sum);
    return s->sums.err;
}

static void snap_destroy(mdx_snapshot_t *s)
{
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->abort = !s->thread_done;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    } else if (s->fd >= 0) {
        close(s->fd);
        unlink(s->tmp);
    }
    free_done(s);
    free_items(s->head);
    free_items(s->pool);
    free_items(s->spare);
    for (size_t i = 0; i < s->ncolls; i++)
        if (s->colls[i])
            s->colls[i]->snap_idx = -1;
    if (s->st->snap == s)
        s->st->snap = NULL;
    mdx_buf_fini(&s->block);
    mdx_buf_fini(&s->sums);
    mdx_free(s->colls);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    mdx_free(s);
}

int mdx_snapshot_begin(mdx_store_t *st, const char *dir, const mdx_snapshot_opts_t *opts,
                       mdx_snapshot_t **out)
{
    if (st->snap)
        return mdx__err(st, MDX_EBUSY, "a snapshot is already in progress");
    if (strlen(dir) >= MDX_SNAPSHOT_PATH_MAX)
        return mdx__err(st, MDX_EINVAL, "snapshot directory path too long");
    mdx_snapshot_t *s = mdx_calloc(1, sizeof(*s));
    if (!s)
        return mdx__err(st, MDX_ENOMEM, "out of memory starting a snapshot");
    s->st = st;
    s->fd = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    snprintf(s->dir, sizeof(s->dir), "%s", dir);
    s->keep = opts && opts->keep ? opts->keep : MDX_SNAPSHOT_DEFAULT_KEEP;
    s->queue_limit = opts && opts->queue_limit ? opts->queue_limit : (8u << 20);
    s->pool_max = s->queue_limit / SNAP_BLOCK_TARGET + 2;
    s->started_at = mdx_store_now(st);
    s->epoch = st->epoch;
    mdx_buf_init(&s->sums);
    block_reset(s);
    snprintf(s->final_name, sizeof(s->final_name), "snapshot-%013lld-%020llu.mdx",
             (long long)s->started_at, (unsigned long long)s->epoch);
    snprintf(s->tmp, sizeof(s->tmp), "%s/snapshot.tmp-%ld", dir, (long)getpid());

    s->ncolls = st->ncolls;
    s->colls = mdx_calloc(st->ncolls ? st->ncolls : 1, sizeof(*s->colls));
    mdx_buf_t hdr;
    mdx_buf_init(&hdr);
    if (!s->colls || header_build(s, &hdr)) {
        mdx_buf_fini(&hdr);
        snap_destroy(s);
        return mdx__err(st, MDX_ENOMEM, "out of memory starting a snapshot");
    }
    s->fd = open(s->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (s->fd < 0) {
        int e = errno;
        mdx_buf_fini(&hdr);
        snap_destroy(s);
        return mdx__err(st, MDX_EIO, "cannot create snapshot file %s/snapshot.tmp-%ld: %s", dir,
                        (long)getpid(), strerror(e));
    }
    for (size_t i = 0; i < st->ncolls; i++) {
        s->colls[i] = st->colls[i];
        st->colls[i]->snap_idx = (int32_t)i;
    }
    /* A new generation: records saved by this snapshot get it; no record has it yet (see the
     * file comment; a 16-bit generation wraps only after 65,535 snapshots that all failed
     * before reaching some record). */
    st->snap_gen++;
    st->snap = s;
    st->snap_epoch = s->epoch;
    uint8_t *data = hdr.data;
    size_t len = hdr.len;
    if (enqueue(s, data, len, hdr.cap, 0) ||
        pthread_create(&s->thread, NULL, writer_main, s) != 0 || !(s->thread_started = 1)) {
        int rc = s->error ? s->error : MDX_EIO;
        snap_destroy(s);
        return mdx__err(st, rc, "cannot start the snapshot writer");
    }
    *out = s;
    return 0;
}

static void walk_one(void *data, mdx_hnode_t *node)
{
    mdx_snapshot_t *s = data;
    mdx_rec_t *r = (mdx_rec_t *)node;
    mdx_coll_t *c = s->colls[s->walk_coll];
    if (r->snap_gen != s->st->snap_gen)
        save_rec(s, c, r);
    /* Every record visited counts, saved or skipped: records written after the start or
     * already saved as pre-images can be most of a table, and a step must stay short. */
    if (s->walk_budget)
        s->walk_budget--;
}

static int queue_trailer(mdx_snapshot_t *s)
{
    uint8_t *t = mdx_malloc(33);
    if (!t || s->sums.err) {
        mdx_free(t);
        return fail(s, MDX_ENOMEM, "out of memory finishing a snapshot");
    }
    t[0] = SNAP_TRAILER;
    be64(t + 1, s->records);
    be64(t + 9, s->blocks);
    be64(t + 17, XXH3_64bits(s->sums.data, s->sums.len));
    be64(t + 25, XXH3_64bits(t, 25));
    s->trailer_queued = 1;
    return enqueue(s, t, 33, 33, 1);
}

int mdx_snapshot_step(mdx_snapshot_t *s, uint64_t max_records, int *done)
{
    *done = 0;
    free_done(s);
    pthread_mutex_lock(&s->mu);
    int terr = s->thread_err, tdone = s->complete;
    size_t queued = s->queued_bytes;
    pthread_mutex_unlock(&s->mu);
    if (terr)
        return mdx__err(s->st, terr, "%s", s->thread_errmsg);
    if (s->error)
        return mdx__err(s->st, s->error, "%s", s->errmsg);
    if (tdone) {
        if (!s->finished_at)
            s->finished_at = mdx_store_now(s->st);
        *done = 1;
        return 0;
    }
    s->waiting = s->trailer_queued || queued > s->queue_limit;
    if (s->waiting)
        return 0;

    s->walk_budget = max_records ? max_records : UINT64_MAX;
    uint64_t blocks = s->blocks;
    while (!s->walk_done && s->walk_budget && !s->error) {
        if (s->walk_coll >= s->ncolls) {
            s->walk_done = 1;
            break;
        }
        mdx_coll_t *c = s->colls[s->walk_coll];
        if (c)
            s->walk_cursor = mdx_htab_scan_batch(&c->primary, s->walk_cursor, WALK_BUCKETS,
                                                 &s->walk_budget, walk_one, s);
        if (!c || s->walk_cursor == 0) {
            s->walk_coll++;
            s->walk_cursor = 0;
        }
        /* The queue grows only when a block is queued: look at it then, not per bucket. */
        if (s->blocks != blocks) {
            blocks = s->blocks;
            pthread_mutex_lock(&s->mu);
            queued = s->queued_bytes;
            pthread_mutex_unlock(&s->mu);
            if (queued > s->queue_limit)
                break;
        }
    }
    if (s->walk_done && !s->error) {
        if (block_flush(s) == 0)
            queue_trailer(s);
    }
    if (s->error)
        return mdx__err(s->st, s->error, "%s", s->errmsg);
    return 0;
}

void mdx_snapshot_info(const mdx_snapshot_t *s, mdx_snapshot_info_t *info)
{
    mdx_snapshot_t *m = (mdx_snapshot_t *)s;
    memset(info, 0, sizeof(*info));
    pthread_mutex_lock(&m->mu);
    info->bytes = s->written;
    info->result = s->thread_err;
    if (s->thread_err)
        snprintf(info->error, sizeof(info->error), "%s", s->thread_errmsg);
    int complete = s->complete;
    pthread_mutex_unlock(&m->mu);
    if (!info->result && s->error) {
        info->result = s->error;
        snprintf(info->error, sizeof(info->error), "%s", s->errmsg);
    }
    info->started_at = s->started_at;
    info->finished_at = s->finished_at;
    info->epoch = s->epoch;
    info->records = s->records;
    info->waiting = s->waiting;
    if (complete && !info->result)
        snprintf(info->path, sizeof(info->path), "%s/%s", s->dir, s->final_name);
}

int mdx_snapshot_finish(mdx_snapshot_t *s, mdx_snapshot_info_t *info)
{
    mdx_snapshot_info_t local;
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        if (!s->thread_done)
            s->abort = 1;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
        s->thread_started = 0;
    }
    if (!s->finished_at)
        s->finished_at = mdx_store_now(s->st);
    mdx_snapshot_info(s, &local);
    if (!local.result && !local.path[0]) {
        local.result = MDX_EINVAL;
        snprintf(local.error, sizeof(local.error), "snapshot abandoned before completion");
    }
    if (info)
        *info = local;
    snap_destroy(s);
    return local.result;
}

int mdx_store_save(mdx_store_t *st, const char *dir, const mdx_snapshot_opts_t *opts,
                   mdx_snapshot_info_t *info)
{
    mdx_snapshot_t *s;
    int rc = mdx_snapshot_begin(st, dir, opts, &s);
    if (rc) {
        if (info) {
            memset(info, 0, sizeof(*info));
            info->result = rc;
            snprintf(info->error, sizeof(info->error), "%s", mdx_store_errmsg(st));
        }
        return rc;
    }
    int done = 0;
    while (!done) {
        if (mdx_snapshot_step(s, 0, &done))
            break;
        if (!done) {
            /* Blocking mode: wait for the writer instead of spinning. */
            pthread_mutex_lock(&s->mu);
            while (!s->thread_done && (s->queued_bytes > s->queue_limit || s->trailer_queued))
                pthread_cond_wait(&s->cv, &s->mu);
            pthread_mutex_unlock(&s->mu);
        }
    }
    mdx_snapshot_info_t local;
    rc = mdx_snapshot_finish(s, &local);
    if (info)
        *info = local;
    if (rc)
        mdx__err(st, rc, "%s", local.error);
    return rc;
}

/* ---- reading: shared by load and check ---- */

typedef struct {
    int fd;
    const char *path;
    uint64_t off;
    char *err;
    size_t errlen;
    mdx_snapshot_check_t *info;
} reader_t;

static int rd_err(reader_t *r, int code, uint64_t off, const char *what)
{
    r->info->error_offset = off;
    if (code == MDX_EIO)
        snprintf(r->err, r->errlen, "%s: read error at offset %llu: %s", r->path,
                 (unsigned long long)off, strerror(errno));
    else
        snprintf(r->err, r->errlen, "%s: corrupt at offset %llu: %s", r->path,
                 (unsigned long long)off, what);
    return code;
}

/* Reads exactly n bytes; a short file is corruption (truncation), a failed read is I/O. */
static int rd_exact(reader_t *r, void *buf, size_t n, const char *what)
{
    uint8_t *p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(r->fd, p + got, n - got);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return rd_err(r, MDX_EIO, r->off + got, what);
        }
        if (k == 0)
            return rd_err(r, MDX_ECORRUPT, r->off + got, what);
        got += (size_t)k;
    }
    r->off += n;
    return 0;
}

typedef struct {
    char name[MDX_NAME_MAX + 1];
    char field[MDX_FIELD_MAX + 1];
    mdx_index_kind_t kind;
    int unique;
} idxdef_t;

typedef struct {
    char name[MDX_NAME_MAX + 1];
    idxdef_t idx[MDX_MAX_INDEXES];
    size_t nidx;
    mdx_coll_opts_t opts;
} colldef_t;

/* Reads a msgpack string into a NUL-terminated buffer of cap bytes. */
static int tok_str(const mdx_mp_tok_t *t, char *out, size_t cap)
{
    if (t->type != MDX_MP_STR || t->len == 0 || t->len >= cap)
        return -1;
    memcpy(out, t->v.ptr, t->len);
    out[t->len] = '\0';
    return 0;
}

static int key_is(const mdx_mp_tok_t *k, const char *s)
{
    return k->type == MDX_MP_STR && k->len == strlen(s) && memcmp(k->v.ptr, s, k->len) == 0;
}

/* Parses the header map into defs (count in *ncoll). Returns 0 or -1 (malformed). */
static int parse_header(const uint8_t *p, size_t len, colldef_t **defs, size_t *ncoll,
                        int64_t *created, uint64_t *epoch)
{
    const uint8_t *end = p + len;
    mdx_mp_tok_t t, k, v;
    int seen = 0;
    if (mdx_mp_check(p, len, MDX_MP_MAX_DEPTH) || mdx_mp_read(&p, end, &t) || t.type != MDX_MP_MAP)
        return -1;
    for (uint32_t i = 0; i < t.len; i++) {
        if (mdx_mp_read(&p, end, &k))
            return -1;
        if (key_is(&k, "created_at")) {
            if (mdx_mp_read(&p, end, &v) || v.type != MDX_MP_INT)
                return -1;
            *created = v.v.i;
            seen |= 1;
        } else if (key_is(&k, "epoch")) {
            if (mdx_mp_read(&p, end, &v) || (v.type != MDX_MP_INT && v.type != MDX_MP_UINT))
                return -1;
            *epoch = v.v.u;
            seen |= 2;
        } else if (key_is(&k, "collections")) {
            if (mdx_mp_read(&p, end, &v) || v.type != MDX_MP_ARRAY || v.len > MDX_MAX_COLLECTIONS)
                return -1;
            uint32_t n = v.len;
            *ncoll = n;
            *defs = mdx_calloc(n ? n : 1, sizeof(**defs));
            if (!*defs)
                return -2;
            for (uint32_t c = 0; c < n; c++) {
                colldef_t *cd = &(*defs)[c];
                mdx_mp_tok_t m, ck;
                if (mdx_mp_read(&p, end, &m) || m.type != MDX_MP_MAP)
                    return -1;
                for (uint32_t j = 0; j < m.len; j++) {
                    if (mdx_mp_read(&p, end, &ck))
                        return -1;
                    if (key_is(&ck, "name")) {
                        if (mdx_mp_read(&p, end, &v) || tok_str(&v, cd->name, sizeof(cd->name)))
                            return -1;
                    } else if (key_is(&ck, "capacity")) {
                        if (mdx_mp_read(&p, end, &v) || v.type != MDX_MP_INT || v.v.i < 0)
                            return -1;
                        cd->opts.capacity = (uint64_t)v.v.i;
                    } else if (key_is(&ck, "default_ttl_ms")) {
                        if (mdx_mp_read(&p, end, &v) || v.type != MDX_MP_INT || v.v.i < 0)
                            return -1;
                        cd->opts.default_ttl_ms = v.v.i;
                    } else if (key_is(&ck, "policy")) {
                        if (mdx_mp_read(&p, end, &v) || v.type != MDX_MP_STR ||
                            mdx_evict_policy_parse((const char *)v.v.ptr, v.len, 1,
                                                   &cd->opts.policy))
                            return -1;
                    } else if (key_is(&ck, "indexes")) {
                        mdx_mp_tok_t a;
                        if (mdx_mp_read(&p, end, &a) || a.type != MDX_MP_ARRAY ||
                            a.len > MDX_MAX_INDEXES)
                            return -1;
                        cd->nidx = a.len;
                        for (uint32_t x = 0; x < a.len; x++) {
                            idxdef_t *id = &cd->idx[x];
                            mdx_mp_tok_t im, ik;
                            if (mdx_mp_read(&p, end, &im) || im.type != MDX_MP_MAP)
                                return -1;
                            for (uint32_t y = 0; y < im.len; y++) {
                                if (mdx_mp_read(&p, end, &ik) || mdx_mp_read(&p, end, &v))
                                    return -1;
                                if (key_is(&ik, "name")) {
                                    if (tok_str(&v, id->name, sizeof(id->name)))
                                        return -1;
                                } else if (key_is(&ik, "field")) {
                                    if (tok_str(&v, id->field, sizeof(id->field)))
                                        return -1;
                                } else if (key_is(&ik, "kind")) {
                                    if (key_is(&v, "hash"))
                                        id->kind = MDX_INDEX_HASH;
                                    else if (key_is(&v, "skiplist"))
                                        id->kind = MDX_INDEX_SKIPLIST;
                                    else
                                        return -1;
                                } else if (key_is(&ik, "unique")) {
                                    if (v.type != MDX_MP_BOOL)
                                        return -1;
                                    id->unique = v.v.b;
                                } else if (v.type == MDX_MP_ARRAY || v.type == MDX_MP_MAP) {
                                    return -1; /* unknown keys must be scalars */
                                }
                            }
                            if (!id->name[0] || !id->field[0])
                                return -1;
                        }
                    } else if (mdx_mp_skip(&p, end, MDX_MP_MAX_DEPTH)) {
                        return -1;
                    }
                }
                if (!cd->name[0])
                    return -1;
            }
            seen |= 4;
        } else if (mdx_mp_skip(&p, end, MDX_MP_MAX_DEPTH)) {
            return -1;
        }
    }
    return seen == 7 && p == end ? 0 : -1;
}

/* One decoded record entry of a block. */
typedef struct {
    uint64_t coll;
    int64_t expires_at;
    const uint8_t *key;
    size_t key_len;
    const uint8_t *body;
    size_t body_len;
    uint8_t evict;
    const uint8_t *tags; /* msgpack array, or NULL */
    size_t tags_len;
} entry_t;

static int parse_entry(const uint8_t **pp, const uint8_t *end, size_t ncoll, entry_t *e)
{
    const uint8_t *p = *pp, *q;
    mdx_mp_tok_t t, v;
    if (mdx_mp_read(&p, end, &t) || t.type != MDX_MP_ARRAY || t.len < 4)
        return -1;
    if (mdx_mp_read(&p, end, &v) || v.type != MDX_MP_INT || v.v.i < 0 || (uint64_t)v.v.i >= ncoll)
        return -1;
    e->coll = (uint64_t)v.v.i;
    if (mdx_mp_read(&p, end, &v) || v.type != MDX_MP_INT || v.v.i < 0)
        return -1;
    e->expires_at = v.v.i;
    q = p;
    if (mdx_mp_skip(&p, end, 1))
        return -1;
    e->key = q;
    e->key_len = (size_t)(p - q);
    q = p;
    if (mdx_mp_skip(&p, end, MDX_MP_MAX_DEPTH))
        return -1;
    e->body = q;
    e->body_len = (size_t)(p - q);
    if (mdx_mp_check_body(e->body, e->body_len, MDX_MP_MAX_DEPTH))
        return -1;
    e->evict = 0;
    e->tags = NULL;
    e->tags_len = 0;
    if (t.len > 4) {
        if (mdx_mp_read(&p, end, &v) || v.type != MDX_MP_INT || v.v.i < 0 || v.v.i > 255)
            return -1;
        e->evict = (uint8_t)v.v.i;
    }
    if (t.len > 5) {
        q = p;
        if (mdx_mp_read(&p, end, &v) || v.type != MDX_MP_ARRAY || v.len > MDX_TAGS_MAX)
            return -1;
        for (uint32_t i = 0; i < v.len; i++) {
            mdx_mp_tok_t s;
            if (mdx_mp_read(&p, end, &s) || s.type != MDX_MP_STR || s.len == 0 ||
                s.len > MDX_TAG_MAX)
                return -1;
        }
        e->tags = q;
        e->tags_len = (size_t)(p - q);
    }
    for (uint32_t i = 6; i < t.len; i++) /* fields added by later minor versions */
        if (mdx_mp_skip(&p, end, MDX_MP_MAX_DEPTH))
            return -1;
    *pp = p;
    return 0;
}

typedef int (*entry_cb)(void *data, const entry_t *e);
typedef int (*header_cb)(void *data, const colldef_t *defs, size_t n);

static int parse_file(reader_t *r, header_cb on_header, entry_cb on_entry, void *data)
{
    mdx_snapshot_check_t *info = r->info;
    uint8_t fixed[16];
    int rc;
    colldef_t *defs = NULL;
    size_t ncoll = 0;
    uint8_t *buf = NULL;
    mdx_buf_t sums;
    mdx_buf_init(&sums);

    if ((rc = rd_exact(r, fixed, 16, "file header")))
        goto out;
    if (memcmp(fixed, SNAP_MAGIC, 8) != 0) {
        rc = rd_err(r, MDX_ECORRUPT, 0, "not a memdex snapshot (bad magic)");
        goto out;
    }
    info->version = rd32(fixed + 8);
    if (info->version != SNAP_VERSION) {
        rc = rd_err(r, MDX_ECORRUPT, 8, "unsupported format version");
        goto out;
    }
    uint32_t hlen = rd32(fixed + 12);
    if (hlen > SNAP_MAX_HEADER) {
        rc = rd_err(r, MDX_ECORRUPT, 12, "header length out of range");
        goto out;
    }
    buf = mdx_malloc(16 + (size_t)hlen + 8);
    if (!buf) {
        rc = MDX_ENOMEM;
        snprintf(r->err, r->errlen, "out of memory reading %s", r->path);
        goto out;
    }
    memcpy(buf, fixed, 16);
    if ((rc = rd_exact(r, buf + 16, (size_t)hlen + 8, "header")))
        goto out;
    uint64_t sum = XXH3_64bits(buf, 16 + (size_t)hlen);
    if (rd64(buf + 16 + hlen) != sum) {
        rc = rd_err(r, MDX_ECORRUPT, 16 + (uint64_t)hlen, "header checksum mismatch");
        goto out;
    }
    uint8_t sb[8];
    be64(sb, sum);
    mdx_buf_append(&sums, sb, 8);
    int hp = parse_header(buf + 16, hlen, &defs, &ncoll, &info->created_at, &info->epoch);
    if (hp) {
        rc = hp == -2 ? MDX_ENOMEM : rd_err(r, MDX_ECORRUPT, 16, "malformed header map");
        goto out;
    }
    info->collections = ncoll;
    if (on_header && (rc = on_header(data, defs, ncoll))) {
        snprintf(r->err, r->errlen, "%s: cannot create collections: %s", r->path, mdx_strerror(rc));
        goto out;
    }
    mdx_free(buf);
    buf = NULL;

    for (;;) {
        uint64_t start = r->off;
        uint8_t type;
        if ((rc = rd_exact(r, &type, 1, "block or trailer (truncated file)")))
            goto out;
        if (type == SNAP_TRAILER) {
            uint8_t t[33];
            t[0] = type;
            if ((rc = rd_exact(r, t + 1, 32, "trailer")))
                goto out;
            if (rd64(t + 25) != XXH3_64bits(t, 25)) {
                rc = rd_err(r, MDX_ECORRUPT, start, "trailer checksum mismatch");
                goto out;
            }
            if (rd64(t + 1) != info->records || rd64(t + 9) != info->blocks) {
                rc = rd_err(r, MDX_ECORRUPT, start, "trailer counts do not match the blocks");
                goto out;
            }
            if (sums.err || rd64(t + 17) != XXH3_64bits(sums.data, sums.len)) {
                rc = rd_err(r, MDX_ECORRUPT, start, "block chain checksum mismatch");
                goto out;
            }
            uint8_t extra;
            ssize_t k = read(r->fd, &extra, 1);
            if (k != 0) {
                rc = rd_err(r, k < 0 ? MDX_EIO : MDX_ECORRUPT, r->off, "bytes after the trailer");
                goto out;
            }
            info->bytes = r->off;
            rc = 0;
            goto out;
        }
        if (type != SNAP_BLOCK) {
            rc = rd_err(r, MDX_ECORRUPT, start, "unknown block type");
            goto out;
        }
        uint8_t bh[9];
        bh[0] = type;
        if ((rc = rd_exact(r, bh + 1, 8, "block header")))
            goto out;
        uint32_t plen = rd32(bh + 1), count = rd32(bh + 5);
        if (plen > SNAP_MAX_PAYLOAD || count > plen) {
            rc = rd_err(r, MDX_ECORRUPT, start, "block length out of range");
            goto out;
        }
        buf = mdx_malloc(9 + (size_t)plen + 8);
        if (!buf) {
            rc = MDX_ENOMEM;
            snprintf(r->err, r->errlen, "out of memory reading %s", r->path);
            goto out;
        }
        memcpy(buf, bh, 9);
        if ((rc = rd_exact(r, buf + 9, (size_t)plen + 8, "block")))
            goto out;
        sum = XXH3_64bits(buf, 9 + (size_t)plen);
        if (rd64(buf + 9 + plen) != sum) {
            rc = rd_err(r, MDX_ECORRUPT, start, "block checksum mismatch");
            goto out;
        }
        be64(sb, sum);
        mdx_buf_append(&sums, sb, 8);
        const uint8_t *p = buf + 9, *end = buf + 9 + plen;
        for (uint32_t i = 0; i < count; i++) {
            entry_t e;
            if (parse_entry(&p, end, ncoll, &e)) {
                rc = rd_err(r, MDX_ECORRUPT, start + (uint64_t)(p - buf), "malformed record");
                goto out;
            }
            if (on_entry && (rc = on_entry(data, &e))) {
                if (rc == MDX_ECORRUPT)
                    rd_err(r, rc, start + (uint64_t)(p - buf), "record rejected (duplicate key?)");
                else
                    snprintf(r->err, r->errlen, "%s: %s", r->path, mdx_strerror(rc));
                goto out;
            }
        }
        if (p != end) {
            rc = rd_err(r, MDX_ECORRUPT, start + (uint64_t)(p - buf), "bytes after the records");
            goto out;
        }
        info->records += count;
        info->blocks++;
        mdx_free(buf);
        buf = NULL;
    }
out:
    mdx_free(buf);
    mdx_free(defs);
    mdx_buf_fini(&sums);
    return rc;
}

int mdx_snapshot_check(const char *path, mdx_snapshot_check_t *out, char *err, size_t errlen)
{
    mdx_snapshot_check_t local;
    char ebuf[256];
    if (!out)
        out = &local;
    if (!err) {
        err = ebuf;
        errlen = sizeof(ebuf);
    }
    memset(out, 0, sizeof(*out));
    err[0] = '\0';
    reader_t r = {open(path, O_RDONLY | O_CLOEXEC), path, 0, err, errlen, out};
    if (r.fd < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return MDX_EIO;
    }
    int rc = parse_file(&r, NULL, NULL, NULL);
    close(r.fd);
    return rc;
}

/* The records loaded into one collection, in load order. Index rebuilds visit them in this
 * order, which is close to address order (they were allocated one after the other), instead of
 * walking the primary table in hash order (a cache miss per record). Only a speed-up: when the
 * list cannot grow it is dropped and the rebuild walks the table. */
typedef struct {
    mdx_rec_t **recs;
    size_t n, cap;
    int dropped;
} loadlist_t;

typedef struct {
    mdx_store_t *st;
    mdx_coll_t **colls;
    loadlist_t *lists;
    const colldef_t *defs;
    size_t ncoll;
    int64_t now;
    mdx_load_info_t *info;
} loader_t;

static void list_add(loadlist_t *ls, mdx_rec_t *r)
{
    if (ls->dropped)
        return;
    if (ls->n == ls->cap) {
        size_t cap = ls->cap ? ls->cap * 2 : 1024;
        mdx_rec_t **a =
            cap <= SIZE_MAX / sizeof(*a) ? mdx_realloc(ls->recs, cap * sizeof(*a)) : NULL;
        if (!a) {
            mdx_free(ls->recs);
            memset(ls, 0, sizeof(*ls));
            ls->dropped = 1;
            return;
        }
        ls->recs = a;
        ls->cap = cap;
    }
    ls->recs[ls->n++] = r;
}

static int load_header(void *data, const colldef_t *defs, size_t n)
{
    loader_t *l = data;
    l->colls = mdx_calloc(n ? n : 1, sizeof(*l->colls));
    l->lists = mdx_calloc(n ? n : 1, sizeof(*l->lists));
    if (!l->colls || !l->lists)
        return MDX_ENOMEM;
    l->ncoll = n;
    for (size_t i = 0; i < n; i++) {
        int rc = mdx_coll_create(l->st, defs[i].name, &l->colls[i]);
        if (rc)
            return rc == MDX_ENOMEM ? rc : MDX_ECORRUPT;
        l->colls[i]->opts = defs[i].opts; /* before the records: they enter its queues */
    }
    /* The definitions are needed after the records: keep a copy. */
    colldef_t *copy = mdx_malloc(sizeof(*copy) * (n ? n : 1));
    if (!copy)
        return MDX_ENOMEM;
    memcpy(copy, defs, sizeof(*copy) * n);
    l->defs = copy;
    l->info->collections = n;
    return 0;
}

static int load_entry(void *data, const entry_t *e)
{
    loader_t *l = data;
    if (e->expires_at && e->expires_at <= l->now) {
        l->info->expired++;
        return 0;
    }
    mdx_coll_t *c = l->colls[e->coll];
    mdx_rec_t *r;
    int rc = mdx__rec_load(c, e->key, e->key_len, e->body, e->body_len, e->expires_at, e->tags,
                           e->tags_len, e->evict, &r);
    if (rc == 0) {
        l->info->records++;
        if (l->defs[e->coll].nidx)
            list_add(&l->lists[e->coll], r);
    }
    return rc == MDX_ENOMEM ? rc : rc ? MDX_ECORRUPT : 0;
}

int mdx_store_load(mdx_store_t *st, const char *path, mdx_load_info_t *info)
{
    mdx_load_info_t local;
    mdx_snapshot_check_t chk;
    char err[320] = "";
    if (!info)
        info = &local;
    memset(info, 0, sizeof(*info));
    memset(&chk, 0, sizeof(chk));
    if (st->ncolls)
        return mdx__err(st, MDX_EINVAL, "load needs an empty store");
    loader_t l = {st, NULL, NULL, NULL, 0, mdx_store_now(st), info};
    reader_t r = {open(path, O_RDONLY | O_CLOEXEC), path, 0, err, sizeof(err), &chk};
    if (r.fd < 0)
        return mdx__err(st, MDX_EIO, "%s: cannot open: %s", path, strerror(errno));
    posix_fadvise(r.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    int rc = parse_file(&r, load_header, load_entry, &l);
    close(r.fd);
    /* Indexes are built once all records are in: one pass per index over the records in load
     * order, all the indexes of a collection sharing one scratch array (a fresh one would
     * cost a page fault per 4 KiB again; without it each build allocates its own). */
    for (size_t i = 0; rc == 0 && i < l.ncoll; i++) {
        size_t sbytes = l.defs[i].nidx ? mdx__index_scratch_bytes(l.lists[i].n) : 0;
        void *scratch = sbytes ? mdx_malloc(sbytes) : NULL;
        for (size_t j = 0; rc == 0 && j < l.defs[i].nidx; j++) {
            const idxdef_t *d = &l.defs[i].idx[j];
            rc = mdx__index_create_from(l.colls[i], d->name, d->field, d->kind, d->unique,
                                        l.lists[i].recs, l.lists[i].n, scratch, sbytes);
            if (rc && rc != MDX_ENOMEM) {
                snprintf(err, sizeof(err), "%s: cannot rebuild index '%s' of '%s': %s", path,
                         d->name, l.defs[i].name, mdx_store_errmsg(st));
                rc = MDX_ECORRUPT;
            }
        }
        mdx_free(scratch);
        mdx_free(l.lists[i].recs);
        l.lists[i].recs = NULL;
    }
    for (size_t i = 0; l.lists && i < l.ncoll; i++)
        mdx_free(l.lists[i].recs);
    mdx_free(l.lists);
    mdx_free((void *)l.defs);
    mdx_free(l.colls);
    if (rc) {
        while (st->ncolls)
            mdx_coll_drop(st, st->colls[st->ncolls - 1]->name);
        memset(info, 0, sizeof(*info));
        return mdx__err(st, rc, "%s", err[0] ? err : mdx_strerror(rc));
    }
    /* A store with a smaller limit than the one that saved: evict down to it now. */
    for (size_t i = 0; i < st->ncolls; i++)
        mdx__evict_enforce(st->colls[i], NULL);
    info->epoch = chk.epoch;
    info->created_at = chk.created_at;
    if (chk.epoch > st->epoch)
        st->epoch = chk.epoch;
    return 0;
}
