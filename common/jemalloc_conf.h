/*
 * jemalloc settings for memdex's own programs (memdexd, memdex-bench).
 *
 * background_thread:true moves the return of freed pages to the kernel (madvise) off the
 * thread that frees. Without it, freeing a million expired or invalidated records spends about
 * 42% of the reclaim slices in madvise and its TLB flushes on the loop thread
 * (docs/benchmarks-reclaim.md).
 *
 * dirty_decay_ms:-1 keeps freed pages for reuse instead of returning them to the kernel. Even
 * with the background thread, jemalloc's decay sometimes purges inline, inside a free() on
 * the loop thread: freeing 1,000,000 expired records in 250 us slices had runs of 4.5 to
 * 14.7 ms of CPU with the default decay and at most 0.70 to 0.96 ms without (in process,
 * two runs each). The cost is that the process keeps its high-water mark of memory after a
 * mass delete; the next writes reuse it (memcached never returns memory either, and
 * maxmemory bounds what the store holds). `MALLOC_CONF=background_thread:true,
 * dirty_decay_ms:10000` restores jemalloc's default for a deployment that wants the RSS back.
 *
 * lg_extent_max_active_fit:20 is what makes "the next writes reuse it" true. A mass free
 * coalesces the freed slabs into a few large dirty extents, and by default (6) jemalloc does
 * not carve a slab out of a dirty extent more than 64 times its size, so with no decay those
 * extents were never reused and every reload mapped fresh memory: memdexd's RSS grew by
 * 100-180 MiB per 1,000,000 records expired and written again (486 -> 1,401 MiB over 5
 * rounds of memdex-bench reclaim). With a ratio of 2^20 they are reused and the RSS stays at
 * its first high-water mark (docs/benchmarks-reclaim.md).
 *
 * Transparent huge pages (thp:always) are NOT on by default, although they make random reads
 * on a large heap cheaper (a snapshot load of 1,000,000 records: 1.19-1.62 s with them against
 * 1.79-1.82 s without, side by side): with them, one reclaim run during a mass expiry used up
 * to 4.3-7.9 ms of CPU against 1.0-1.3 ms without, and GET p99 during the reclaim rose to
 * 1.5-1.9x the baseline against 1.0x (docs/benchmarks-reclaim.md). memdex favours the tail
 * latency; `MALLOC_CONF=thp:always,metadata_thp:auto,background_thread:true` turns them on
 * for a deployment that prefers throughput.
 *
 * Included once by each program's main file: it defines jemalloc's `malloc_conf` symbol, which
 * the MALLOC_CONF environment variable still overrides. The library (libmemdex) does not set
 * it: a host program chooses its own allocator settings (docs/embedding.md).
 */
#ifndef MDX_COMMON_JEMALLOC_CONF_H
#define MDX_COMMON_JEMALLOC_CONF_H

#if MDX_USE_JEMALLOC
const char *malloc_conf = "background_thread:true,dirty_decay_ms:-1,lg_extent_max_active_fit:20";
#endif

#endif
