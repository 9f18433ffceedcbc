/*
 * jemalloc settings for memdex's own programs (memdexd, memdex-bench): transparent huge pages
 * and a background thread for purging.
 *
 * memdex's data is a large heap read at random: every get is a few dependent cache misses, and
 * on a 4 KiB-page heap of gigabytes each miss is also a TLB miss (a random read measured 600 ns
 * with 4 KiB pages and 358 ns with 2 MiB pages on the reference machine). jemalloc backs its
 * memory with huge pages when asked (thp:always, effective when the kernel's THP mode is
 * "madvise" or "always"). The usual reason to avoid THP in a data store is fork: copy-on-write
 * of 2 MiB pages makes a fork-based snapshot slow and memory-hungry. memdex never forks.
 *
 * background_thread:true moves the return of freed pages to the kernel (madvise) off the
 * thread that frees. Without it, freeing a million expired or invalidated records spends about
 * 42% of the reclaim slices in madvise and its TLB flushes on the loop thread
 * (docs/benchmarks-reclaim.md).
 *
 * Included once by each program's main file: it defines jemalloc's `malloc_conf` symbol, which
 * the MALLOC_CONF environment variable still overrides. The library (libmemdex) does not set
 * it: a host program chooses its own allocator settings (docs/embedding.md).
 */
#ifndef MDX_COMMON_JEMALLOC_CONF_H
#define MDX_COMMON_JEMALLOC_CONF_H

#if MDX_USE_JEMALLOC
const char *malloc_conf = "thp:always,metadata_thp:auto,background_thread:true";
#endif

#endif
