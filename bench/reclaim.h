/*
 * memdex-bench reclaim: GET latency in memdexd while it frees a mass of records, issue 7's
 * "p99 of concurrent GETs stays <= 2x the baseline and no stall over 5 ms".
 *
 * One collection RECLAIM_COLL with a skiplist index on "s" holds a hot set ("h<i>", never
 * expiring) that a closed-loop GET load reads, and, for each case of each round, a mass of
 * doomed records ("d<i>") whose "s" values interleave with the hot ones, so that freeing them
 * also unlinks index entries all over the skiplist:
 *
 * - expiry: the doomed records get ttl_ms such that all expire at one moment, a few seconds
 *   after their load; the windows are: before (baseline), from that moment until the
 *   collection is back to the hot set (reclaim), after (baseline);
 * - invalidate: the doomed records carry one tag; before (baseline), then `invalidate` of the
 *   tag (its own latency and the removed count are kept), the window until `pending` is 0 and
 *   the collection is back to the hot set, after (baseline).
 *
 * A control connection polls `stats` every RECLAIM_POLL_MS in every window, so each window
 * carries the same extra requests. Every GET must find its record: a wrong reply counts as an
 * error and makes the benchmark fail, as does a count that does not add up.
 */
#ifndef MDX_BENCH_RECLAIM_H
#define MDX_BENCH_RECLAIM_H

#include <stddef.h>
#include <stdint.h>

#include "bench/wire.h"

#define RECLAIM_COLL    "bench"
#define RECLAIM_TAG     "bulk"
#define RECLAIM_POLL_MS 5

enum { RECLAIM_EXPIRY = 1, RECLAIM_INVALIDATE = 2 };
enum { RECLAIM_BEFORE, RECLAIM_DURING, RECLAIM_AFTER, RECLAIM__WINDOWS };

typedef struct {
    uint64_t hot, doomed; /* records */
    uint64_t value_size;  /* bytes of "v" */
    uint64_t conns;       /* closed-loop GET connections */
    uint64_t rounds;
    double baseline_s; /* each window without reclaim */
    double warmup_s;   /* GETs not counted before the first window */
    double margin_s;   /* expiry: spare time planned between the doomed load and the expiry */
    double timeout_s;  /* a reclaim taking longer fails the run */
    int cases;         /* RECLAIM_EXPIRY | RECLAIM_INVALIDATE */
    int quiet;         /* no progress on stderr */
    int server_pid;    /* > 0: memdexd's pid, to read its RSS after each reclaim */
} reclaim_cfg_t;

/** One case of one round. */
typedef struct {
    bench_window_t w[RECLAIM__WINDOWS];
    double load_s;        /* loading the doomed records */
    double reclaim_ms;    /* expiry: from the moment they expire; invalidate: from the reply;
                             until the collection holds the hot set only and nothing is pending */
    double first_ms;      /* expiry: from the moment until stats first showed fewer records */
    double call_ms;       /* invalidate: the call's own latency */
    uint64_t removed;     /* invalidate: its reply; expiry: the server's expired counter moved by */
    uint64_t records_mid; /* records in the collection before the event */
    uint64_t records_end; /* and after it */
    uint64_t polls;       /* stats calls during the reclaim window */
    uint64_t max_run_us;  /* memdexd's longest reclaim run so far (stats reclaim.max_us): the
                             longest the loop spent reclaiming at once */
    uint64_t max_cpu_us;  /* the most CPU time one run used (reclaim.max_cpu_us) */
    long rss_kb;          /* memdexd's resident memory once reclaimed (0: not read): stays flat
                             over the rounds when the allocator reuses what was freed */
} reclaim_case_t;

typedef struct {
    double hot_load_s;
    reclaim_case_t *exp, *inv; /* cfg->rounds each (NULL for a case not run) */
    uint64_t rounds_done;
} reclaim_res_t;

/** Runs the benchmark against the memdexd at 127.0.0.1:port, which must not hold the
 *  collection RECLAIM_COLL. Returns 0, or -1 with a message in err (a failed request, a GET
 *  that did not find its record, counts that do not add up, a reclaim over the timeout).
 *  r holds what was measured either way; free it with reclaim_res_fini. */
int reclaim_run(const reclaim_cfg_t *cfg, int port, reclaim_res_t *r, char *err, size_t errlen);
void reclaim_res_fini(const reclaim_cfg_t *cfg, reclaim_res_t *r);

/** Windows without reclaim of one case, merged (before and after); caller finis. 0 or -1. */
int reclaim_baseline(const reclaim_case_t *c, bench_window_t *out);

#endif
