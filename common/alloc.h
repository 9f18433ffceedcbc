/*
 * The allocator wrapper: the only code in memdex that calls malloc. Backed by jemalloc in
 * release builds and by libc under sanitizers (ASan cannot see inside jemalloc).
 *
 * It counts the usable size of every live block so the engine can report memory and enforce a
 * limit without guessing, and, in builds with MDX_FAULT_INJECTION=1, lets a test make the N-th
 * allocation from now fail (SQLite-style out-of-memory sweeps). Single-threaded by design: the
 * engine belongs to one thread; the counters are not atomic.
 */
#ifndef MDX_COMMON_ALLOC_H
#define MDX_COMMON_ALLOC_H

#include <stddef.h>
#include <stdint.h>

/** malloc. Returns NULL on failure (real or injected). */
void *mdx_malloc(size_t size);
/** calloc with an overflow check on n * size. Returns NULL on failure or overflow. */
void *mdx_calloc(size_t n, size_t size);
/** realloc. On failure returns NULL and leaves p untouched and still owned by the caller. */
void *mdx_realloc(void *p, size_t size);
/** free. Accepts NULL. */
void mdx_free(void *p);
/** Usable size of a live block from mdx_malloc (0 for NULL). */
size_t mdx_alloc_size(const void *p);

/** Bytes in live blocks allocated through this wrapper (usable sizes). */
size_t mdx_alloc_used(void);
/** Bytes the allocator reports as allocated process-wide (jemalloc stats.allocated); under
 *  libc this is mdx_alloc_used(). */
size_t mdx_alloc_allocator_bytes(void);
/** Number of allocations (malloc, calloc, realloc) made so far. */
uint64_t mdx_alloc_count(void);

/** Fault injection (MDX_FAULT_INJECTION=1 builds; a no-op otherwise): the n-th allocation
 *  from now (0 = the next one) and every one after it fail until mdx_alloc_fail_reset().
 *  Pass n < 0 to disable. */
void mdx_alloc_fail_after(long n);
void mdx_alloc_fail_reset(void);
/** True when at least one allocation has been refused by injection since the last reset. */
int mdx_alloc_fail_triggered(void);

#endif
