/*
 * memdexd's snapshots: loading at start, background snapshots (the `snapshot` command and the
 * automatic rules), the final snapshot at shutdown, the stats, and --check-snapshot.
 *
 * A background snapshot never blocks the loop: the engine's writer thread does all disk I/O,
 * and the loop serializes a bounded slice per iteration from a uv_idle handle (at most
 * snapshot_step_records records and snapshot_step_us microseconds), so requests keep flowing
 * between slices, and an idle loop runs slices back to back.
 * When a step can do nothing because the writer is behind (or is syncing and renaming the
 * file), the idle handle stops and a 1 ms timer re-arms it: the loop never spins.
 *
 * `dirty` counts successful writes since the last successful snapshot began; the rules fire
 * on it and on time, like Redis' "save <seconds> <changes>". A failed snapshot leaves the
 * previous files alone (the engine writes to a temporary file and renames only a complete,
 * synced one), is logged and counted, and the next automatic attempt waits RETRY_MS.
 *
 * data_dir is locked (fcntl) for the life of the process, so the temporary files of a crashed
 * run can be removed at start without touching a live server's.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "server/log.h"
#include "server/server.h"

#define RETRY_MS      5000 /* after a failed automatic snapshot */
#define RULES_MS      100  /* period of the rules check */
#define MAX_LISTED    64   /* snapshots considered at start */
#define TMP_PREFIX    "snapshot.tmp-"
#define LOCK_NAME     "memdexd.lock"
#define STEP_CHUNK    32 /* records per mdx_snapshot_step call within a slice */
#define PUT_LIT(o, s) mdx_mp_put_str((o), (s), sizeof(s) - 1)

static double ms_since(uint64_t t0_ns)
{
    return (double)(uv_hrtime() - t0_ns) / 1e6;
}

/* ---- start-up ---- */

static int lock_dir(const char *dir, char *err, size_t errlen)
{
    char path[MDX_CFG_PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/%s", dir, LOCK_NAME);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct flock fl;
    memset(&fl, 0, sizeof(fl));
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(fd, F_SETLK, &fl) != 0) {
        int e = errno;
        close(fd);
        if (e == EACCES || e == EAGAIN)
            snprintf(err, errlen, "data_dir %s is in use by another memdexd (%s is locked)", dir,
                     path);
        else
            snprintf(err, errlen, "cannot lock %s: %s", path, strerror(e));
        return -1;
    }
    /* Kept open (and locked) until exit. */
    return 0;
}

/* A crash during a snapshot leaves its temporary file; it is never loaded (only complete
 * `snapshot-*.mdx` files are), but it takes space. */
static void remove_stale_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, TMP_PREFIX, sizeof(TMP_PREFIX) - 1) != 0)
            continue;
        char path[MDX_CFG_PATH_MAX + 300];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (unlink(path) == 0)
            mdx_log_info("removed %s, left by an interrupted snapshot", path);
        else
            mdx_log_warn("cannot remove %s: %s", path, strerror(errno));
    }
    closedir(d);
}

int mdx_srv_snap_load(mdx_server_t *srv, char *err, size_t errlen)
{
    const mdx_config_t *cfg = srv->cfg;
    const char *dir = cfg->data_dir;
    if (lock_dir(dir, err, errlen))
        return -1;
    remove_stale_tmp(dir);

    char(*names)[MDX_SNAPSHOT_PATH_MAX] = mdx_malloc(MAX_LISTED * sizeof(*names));
    if (!names) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int n = mdx_snapshot_list(dir, names, MAX_LISTED);
    if (n < 0) {
        snprintf(err, errlen, "cannot read data_dir %s: %s", dir, strerror(errno));
        mdx_free(names);
        return -1;
    }
    if (n == 0) {
        mdx_log_info("no snapshot in %s: starting empty", dir);
        mdx_free(names);
        return 0;
    }
    int rc = -1;
    for (int i = 0; i < n && i < MAX_LISTED; i++) {
        char path[MDX_CFG_PATH_MAX + MDX_SNAPSHOT_PATH_MAX + 2];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        mdx_load_info_t li;
        uint64_t t0 = uv_hrtime();
        int lr = mdx_store_load(srv->store, path, &li);
        if (lr == 0) {
            mdx_log_info("loaded %s: %llu records in %llu collections (%llu expired, dropped), "
                         "epoch %llu, in %.0f ms",
                         path, (unsigned long long)li.records, (unsigned long long)li.collections,
                         (unsigned long long)li.expired, (unsigned long long)li.epoch,
                         ms_since(t0));
            /* After a fallback the newest file is a bad one: it does not hold our state. */
            srv->snap.clean = i == 0;
            rc = 0;
            break;
        }
        if (!cfg->snapshot_fallback || lr == MDX_ENOMEM) {
            snprintf(err, errlen,
                     "cannot load snapshot: %s (refusing to start; --snapshot-fallback loads the "
                     "newest valid older snapshot instead)",
                     mdx_store_errmsg(srv->store));
            break;
        }
        mdx_log_warn("rejected snapshot: %s; trying an older one", mdx_store_errmsg(srv->store));
        if (i + 1 == n || i + 1 == MAX_LISTED)
            snprintf(err, errlen, "no valid snapshot in %s (%d rejected, see the log)", dir, i + 1);
    }
    mdx_free(names);
    return rc;
}

/* ---- background snapshots ---- */

static void on_idle(uv_idle_t *h);

/* A pause that began at wall-clock t0 and thread CPU time c0 has just ended. */
static void note_pause(mdx_srv_snap_t *sn, uint64_t t0, uint64_t c0)
{
    uint64_t d = uv_hrtime() - t0, c = mdx_srv_thread_cpu_ns() - c0;
    if (d > sn->run_max_ns)
        sn->run_max_ns = d;
    if (c > sn->run_max_cpu_ns)
        sn->run_max_cpu_ns = c;
}

static void finish(mdx_server_t *srv)
{
    mdx_srv_snap_t *sn = &srv->snap;
    mdx_snapshot_info_t inf;
    uint64_t t0 = uv_hrtime(), c0 = mdx_srv_thread_cpu_ns();
    int rc = mdx_snapshot_finish(sn->run, &inf);
    note_pause(sn, t0, c0);
    sn->run = NULL;
    uv_idle_stop(&sn->idle);
    uv_timer_stop(&sn->wait_timer);
    sn->last = inf;
    sn->have_last = 1;
    sn->last_reason = sn->run_reason;
    sn->last_duration_ms = (uv_hrtime() - sn->run_t0_ns) / 1000000;
    sn->last_max_pause_us = sn->run_max_ns / 1000;
    sn->last_max_pause_cpu_us = sn->run_max_cpu_ns / 1000;
    if (rc == 0) {
        sn->completed++;
        sn->dirty -= sn->run_dirty; /* writes made while it ran are not in it */
        sn->last_ok_start_ms = inf.started_at;
        sn->clean = 1;
        double secs = (double)(uv_hrtime() - sn->run_t0_ns) / 1e9;
        mdx_log_info("snapshot saved (%s): %s, %llu records, %llu bytes, in %llu ms (%.0f MB/s, "
                     "longest pause %.1f ms)",
                     sn->last_reason, inf.path, (unsigned long long)inf.records,
                     (unsigned long long)inf.bytes, (unsigned long long)sn->last_duration_ms,
                     secs > 0 ? (double)inf.bytes / 1e6 / secs : 0.0,
                     (double)sn->last_max_pause_us / 1000);
    } else {
        sn->failures++;
        mdx_log_error("snapshot failed (%s): %s: %s; the previous snapshot is kept",
                      sn->last_reason, mdx_err_name(rc), inf.error);
    }
}

static void on_wait(uv_timer_t *t)
{
    mdx_server_t *srv = t->data;
    if (srv->snap.run)
        uv_idle_start(&srv->snap.idle, on_idle);
}

static void on_idle(uv_idle_t *h)
{
    mdx_server_t *srv = h->data;
    mdx_srv_snap_t *sn = &srv->snap;
    const mdx_config_t *cfg = srv->cfg;
    /* One slice per loop iteration: up to snapshot_step_records records, and no longer than
     * snapshot_step_us, in chunks so the clock is read often enough. The thread's CPU clock is
     * a system call, so it is read once at each end of the slice, not per chunk. */
    uint64_t t0 = uv_hrtime(), c0 = mdx_srv_thread_cpu_ns(), left = cfg->snapshot_step_records;
    while (left) {
        uint64_t n = left < STEP_CHUNK ? left : STEP_CHUNK;
        int done = 0;
        int rc = mdx_snapshot_step(sn->run, n, &done);
        if (rc || done) {
            note_pause(sn, t0, c0);
            finish(srv);
            return;
        }
        left -= n;
        mdx_snapshot_info_t inf;
        mdx_snapshot_info(sn->run, &inf);
        if (inf.waiting) {
            /* Let the writer catch up without spinning the loop. */
            uv_idle_stop(&sn->idle);
            uv_timer_start(&sn->wait_timer, on_wait, 1, 0);
            break;
        }
        if (uv_hrtime() - t0 >= cfg->snapshot_step_us * 1000)
            break;
    }
    note_pause(sn, t0, c0);
}

int mdx_srv_snap_start(mdx_server_t *srv, const char *reason)
{
    mdx_srv_snap_t *sn = &srv->snap;
    if (sn->run)
        return MDX_EBUSY;
    mdx_snapshot_opts_t o = {(unsigned)srv->cfg->snapshot_keep, 0};
    int64_t now = mdx_store_now(srv->store);
    sn->last_try_ms = now;
    sn->run_t0_ns = uv_hrtime();
    sn->run_max_ns = sn->run_max_cpu_ns = 0;
    uint64_t c0 = mdx_srv_thread_cpu_ns();
    int rc = mdx_snapshot_begin(srv->store, srv->cfg->data_dir, &o, &sn->run);
    note_pause(sn, sn->run_t0_ns, c0);
    if (rc) {
        sn->run = NULL;
        sn->failures++;
        memset(&sn->last, 0, sizeof(sn->last));
        sn->last.result = rc;
        sn->last.started_at = sn->last.finished_at = now;
        snprintf(sn->last.error, sizeof(sn->last.error), "%s", mdx_store_errmsg(srv->store));
        sn->have_last = 1;
        sn->last_reason = reason;
        sn->last_duration_ms = 0;
        sn->last_max_pause_us = sn->run_max_ns / 1000;
        sn->last_max_pause_cpu_us = sn->run_max_cpu_ns / 1000;
        mdx_log_error("snapshot failed (%s): %s: %s; the previous snapshot is kept", reason,
                      mdx_err_name(rc), sn->last.error);
        return rc;
    }
    sn->run_reason = reason;
    sn->run_dirty = sn->dirty;
    mdx_log_info("snapshot started (%s)", reason);
    uv_idle_start(&sn->idle, on_idle);
    return 0;
}

static void on_rules(uv_timer_t *t)
{
    mdx_server_t *srv = t->data;
    mdx_srv_snap_t *sn = &srv->snap;
    const mdx_config_t *cfg = srv->cfg;
    if (sn->run || srv->shutting_down || sn->dirty == 0)
        return;
    int64_t now = mdx_store_now(srv->store);
    if (sn->have_last && sn->last.result && now - sn->last_try_ms < RETRY_MS)
        return;
    for (size_t i = 0; i < cfg->snapshot_nrules; i++) {
        const mdx_snap_rule_t *r = &cfg->snapshot_rules[i];
        if (sn->dirty >= r->changes && now - sn->last_ok_start_ms >= (int64_t)r->seconds * 1000) {
            mdx_log_info("snapshot rule %llu:%llu met: %llu changes in %lld s",
                         (unsigned long long)r->seconds, (unsigned long long)r->changes,
                         (unsigned long long)sn->dirty,
                         (long long)((now - sn->last_ok_start_ms) / 1000));
            mdx_srv_snap_start(srv, "rule");
            return;
        }
    }
}

void mdx_srv_snap_init(mdx_server_t *srv)
{
    mdx_srv_snap_t *sn = &srv->snap;
    uv_idle_init(srv->loop, &sn->idle);
    uv_timer_init(srv->loop, &sn->wait_timer);
    uv_timer_init(srv->loop, &sn->rules_timer);
    sn->idle.data = sn->wait_timer.data = sn->rules_timer.data = srv;
    sn->last_ok_start_ms = mdx_store_now(srv->store);
    if (srv->cfg->snapshot_nrules)
        uv_timer_start(&sn->rules_timer, on_rules, RULES_MS, RULES_MS);
}

static void close_once(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

void mdx_srv_snap_close(mdx_server_t *srv)
{
    close_once((uv_handle_t *)&srv->snap.idle);
    close_once((uv_handle_t *)&srv->snap.wait_timer);
    close_once((uv_handle_t *)&srv->snap.rules_timer);
}

int mdx_srv_snap_shutdown(mdx_server_t *srv)
{
    mdx_srv_snap_t *sn = &srv->snap;
    if (sn->run) {
        /* It holds the state of its start; the final snapshot must hold the state now. */
        mdx_snapshot_finish(sn->run, NULL);
        sn->run = NULL;
        mdx_log_info("shutdown: abandoned the snapshot in progress");
    }
    if (!srv->cfg->snapshot_on_shutdown)
        return 0;
    if (sn->clean && sn->dirty == 0) {
        mdx_log_info("shutdown: nothing changed since the last snapshot; not saving");
        return 0;
    }
    mdx_snapshot_opts_t o = {(unsigned)srv->cfg->snapshot_keep, 0};
    mdx_snapshot_info_t inf;
    uint64_t t0 = uv_hrtime();
    int rc = mdx_store_save(srv->store, srv->cfg->data_dir, &o, &inf);
    if (rc) {
        mdx_log_error("shutdown snapshot failed: %s: %s", mdx_err_name(rc), inf.error);
        return -1;
    }
    mdx_log_info("shutdown snapshot saved: %s, %llu records, %llu bytes, in %.0f ms", inf.path,
                 (unsigned long long)inf.records, (unsigned long long)inf.bytes, ms_since(t0));
    return 0;
}

/* ---- stats ---- */

void mdx_srv_snap_stats(mdx_server_t *srv, mdx_buf_t *out)
{
    mdx_srv_snap_t *sn = &srv->snap;
    mdx_mp_put_map(out, 5);
    PUT_LIT(out, "in_progress");
    mdx_mp_put_bool(out, sn->run != NULL);
    PUT_LIT(out, "progress");
    mdx_snapshot_info_t cur;
    memset(&cur, 0, sizeof(cur));
    if (sn->run)
        mdx_snapshot_info(sn->run, &cur);
    mdx_mp_put_map(out, 2);
    PUT_LIT(out, "records");
    mdx_mp_put_uint(out, cur.records);
    PUT_LIT(out, "bytes");
    mdx_mp_put_uint(out, cur.bytes);
    PUT_LIT(out, "last");
    if (!sn->have_last) {
        mdx_mp_put_nil(out);
    } else {
        const mdx_snapshot_info_t *l = &sn->last;
        mdx_mp_put_map(out, 10);
        PUT_LIT(out, "time");
        mdx_mp_put_int(out, l->started_at);
        PUT_LIT(out, "duration_ms");
        mdx_mp_put_uint(out, sn->last_duration_ms);
        PUT_LIT(out, "bytes");
        mdx_mp_put_uint(out, l->bytes);
        PUT_LIT(out, "records");
        mdx_mp_put_uint(out, l->records);
        PUT_LIT(out, "result");
        const char *res = mdx_err_name(l->result);
        mdx_mp_put_str(out, res, strlen(res));
        PUT_LIT(out, "error");
        if (l->result)
            mdx_mp_put_str(out, l->error, strlen(l->error));
        else
            mdx_mp_put_nil(out);
        PUT_LIT(out, "file");
        if (l->path[0])
            mdx_mp_put_str(out, l->path, strlen(l->path));
        else
            mdx_mp_put_nil(out);
        PUT_LIT(out, "reason");
        mdx_mp_put_str(out, sn->last_reason, strlen(sn->last_reason));
        PUT_LIT(out, "max_pause_us");
        mdx_mp_put_uint(out, sn->last_max_pause_us);
        PUT_LIT(out, "max_pause_cpu_us");
        mdx_mp_put_uint(out, sn->last_max_pause_cpu_us);
    }
    PUT_LIT(out, "failures");
    mdx_mp_put_uint(out, sn->failures);
    PUT_LIT(out, "changes");
    mdx_mp_put_uint(out, sn->dirty);
}

/* ---- memdexd --check-snapshot FILE ---- */

int mdx_srv_snap_check_file(const char *path)
{
    mdx_snapshot_check_t c;
    char err[512];
    int rc = mdx_snapshot_check(path, &c, err, sizeof(err));
    printf("file: %s\n", path);
    if (rc == MDX_EIO) {
        printf("result: IO\nerror: %s\n", err);
        return 2;
    }
    if (c.version) {
        char when[32] = "?";
        time_t secs = (time_t)(c.created_at / 1000);
        struct tm tm;
        if (gmtime_r(&secs, &tm))
            strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
        printf("version: %u\n", c.version);
        printf("created_at: %lld (%s.%03dZ)\n", (long long)c.created_at, when,
               (int)(c.created_at % 1000));
        printf("epoch: %llu\n", (unsigned long long)c.epoch);
        printf("collections: %llu\n", (unsigned long long)c.collections);
    }
    const char *sofar = rc ? " (verified before the error)" : "";
    printf("blocks: %llu%s\n", (unsigned long long)c.blocks, sofar);
    printf("records: %llu%s\n", (unsigned long long)c.records, sofar);
    if (rc == 0) {
        printf("bytes: %llu\n", (unsigned long long)c.bytes);
        printf("result: OK\n");
        return 0;
    }
    struct stat st;
    if (stat(path, &st) == 0)
        printf("bytes: %lld (file size)\n", (long long)st.st_size);
    printf("result: %s\n", mdx_err_name(rc));
    if (rc == MDX_ECORRUPT)
        printf("error_offset: %llu\n", (unsigned long long)c.error_offset);
    printf("error: %s\n", err);
    return rc == MDX_ECORRUPT ? 1 : 2;
}
