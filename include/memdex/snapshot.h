/*
 * Snapshots of a store to disk, without fork and without pausing the owner's thread.
 *
 * A snapshot is point-in-time: it holds exactly the records that existed when it began. The
 * serializer walks the collections a bounded slice at a time (mdx_snapshot_step); a write that
 * is about to replace, change or delete a record the walk has not reached yet first appends
 * the record's old image. Finished blocks go to a writer thread that does all disk I/O (write,
 * fsync, rename over the previous snapshot, fsync of the directory), so the owner's thread
 * never waits for the disk. The file format is in docs/snapshot-format.md.
 *
 * Files in a data directory: complete snapshots are `snapshot-<ms>-<epoch>.mdx` (names sort by
 * age); a snapshot in progress is `snapshot.tmp-<pid>` and is never mistaken for a complete
 * one. The newest `keep` complete snapshots are kept, older ones deleted.
 *
 * Thread: all functions belong to the store's thread; the writer thread is internal.
 */
#ifndef MEMDEX_SNAPSHOT_H
#define MEMDEX_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "memdex/store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MDX_SNAPSHOT_DEFAULT_KEEP 2
#define MDX_SNAPSHOT_PATH_MAX     1024

typedef struct mdx_snapshot mdx_snapshot_t;

typedef struct {
    unsigned keep;      /* complete snapshots to keep (0: MDX_SNAPSHOT_DEFAULT_KEEP) */
    size_t queue_limit; /* bytes waiting for the writer before step() stops serializing
                           (0: 8 MiB); bounds the memory a snapshot adds */
} mdx_snapshot_opts_t;

typedef struct {
    int result;                             /* 0 or the error that ended the snapshot */
    int64_t started_at;                     /* ms since the Unix epoch (store clock) */
    int64_t finished_at;                    /* ms, 0 while running */
    uint64_t epoch;                         /* store epoch the snapshot is consistent with */
    uint64_t records;                       /* records written so far (walk + pre-images) */
    uint64_t bytes;                         /* bytes written to the file so far */
    char path[MDX_SNAPSHOT_PATH_MAX + 128]; /* final file path ("" until complete) */
    char error[256];                        /* message when result != 0 */
    int waiting; /* the last step did no work: the writer thread is behind (queue_limit) or
                    finishing the file; step again later rather than at once */
} mdx_snapshot_info_t;

/** Begins a snapshot of st into directory dir (which must exist). Errors: MDX_EBUSY (one is
 *  already running on this store), MDX_EIO (temporary file; the message names it and the
 *  reason), MDX_ENOMEM, MDX_EINVAL (dir too long). *out is freed by mdx_snapshot_finish. */
int mdx_snapshot_begin(mdx_store_t *st, const char *dir, const mdx_snapshot_opts_t *opts,
                       mdx_snapshot_t **out);

/** Serializes the next slice of the walk: it stops after visiting max_records records (0: no
 *  limit), whether it saved them or skipped them (written after the start, or already saved
 *  as pre-images), so one step's work is bounded. Sets *done to 1 once the file is
 *  complete on disk (renamed and synced), 0 while work remains. Returns 0, or the error that
 *  failed the snapshot (MDX_EIO with the reason, MDX_ENOMEM); after an error call
 *  mdx_snapshot_finish. */
int mdx_snapshot_step(mdx_snapshot_t *s, uint64_t max_records, int *done);

/** Progress and result so far. */
void mdx_snapshot_info(const mdx_snapshot_t *s, mdx_snapshot_info_t *info);

/** Ends a snapshot: when it is not complete it is abandoned (the temporary file removed).
 *  Waits for the writer thread. Fills *info (may be NULL) and returns its result. */
int mdx_snapshot_finish(mdx_snapshot_t *s, mdx_snapshot_info_t *info);

/** Blocking save: begin, step until done, finish. */
int mdx_store_save(mdx_store_t *st, const char *dir, const mdx_snapshot_opts_t *opts,
                   mdx_snapshot_info_t *info);

typedef struct {
    uint64_t records; /* records loaded */
    uint64_t expired; /* records dropped because they had expired */
    uint64_t epoch;
    int64_t created_at;
    uint64_t collections;
} mdx_load_info_t;

/** Loads a snapshot file into st, which must have no collections (MDX_EINVAL otherwise).
 *  Indexes are rebuilt; records already expired are dropped. On any error the store is left
 *  empty. Errors: MDX_EIO (cannot read; message names the file), MDX_ECORRUPT (message names
 *  the file and the byte offset of the first problem), MDX_ENOMEM. info may be NULL. */
int mdx_store_load(mdx_store_t *st, const char *path, mdx_load_info_t *info);

/** Lists the complete snapshots in dir, newest first: up to max names (file names, not paths)
 *  of MDX_SNAPSHOT_PATH_MAX bytes each. Returns the number found (may exceed max) or -MDX_EIO. */
int mdx_snapshot_list(const char *dir, char (*names)[MDX_SNAPSHOT_PATH_MAX], int max);

typedef struct {
    uint32_t version;
    int64_t created_at;
    uint64_t epoch;
    uint64_t collections;
    uint64_t blocks;
    uint64_t records;
    uint64_t bytes;
    uint64_t error_offset; /* valid when the check failed */
} mdx_snapshot_check_t;

/** Verifies a snapshot file without loading it: header, every block checksum, the record
 *  encoding, the trailer counts. Returns 0, MDX_EIO or MDX_ECORRUPT with a message in err
 *  naming the problem and its offset. */
int mdx_snapshot_check(const char *path, mdx_snapshot_check_t *out, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
