/*
 * The allocator wrapper of libmemdex-client: common/alloc.h's API over the C library's
 * malloc, safe to call from many threads at once.
 *
 * It replaces common/alloc.c inside the client library (which bundles common/ and protocol/,
 * see client/CMakeLists.txt) for two reasons. The engine's wrapper keeps plain counters for
 * the one thread that owns a store, but a client library runs in many threads of someone
 * else's process: its counters here are relaxed atomics. And the engine's wrapper is built on
 * jemalloc in release builds, which a client library must not force on the programs that link
 * it (Debian's jemalloc replaces malloc for the whole process).
 *
 * Fault injection (MDX_FAULT_INJECTION=1 builds) works as in common/alloc.c, so client tests
 * can sweep allocation failures; the countdown is shared by all threads.
 */
#include "common/alloc.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdlib.h>

static atomic_size_t used_bytes;
static atomic_uint_fast64_t alloc_calls;

#if MDX_FAULT_INJECTION
static atomic_long fail_countdown = -1;
static atomic_int fail_triggered;

static int inject_failure(void)
{
    long n = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    for (;;) {
        if (n < 0)
            return 0;
        if (n == 0) {
            atomic_store_explicit(&fail_triggered, 1, memory_order_relaxed);
            return 1;
        }
        if (atomic_compare_exchange_weak_explicit(&fail_countdown, &n, n - 1, memory_order_relaxed,
                                                  memory_order_relaxed))
            return 0;
    }
}
#else
#define inject_failure() 0
#endif

void mdx_alloc_fail_after(long n)
{
#if MDX_FAULT_INJECTION
    atomic_store(&fail_countdown, n);
    atomic_store(&fail_triggered, 0);
#else
    (void)n;
#endif
}

void mdx_alloc_fail_reset(void)
{
    mdx_alloc_fail_after(-1);
}

int mdx_alloc_fail_triggered(void)
{
#if MDX_FAULT_INJECTION
    return atomic_load(&fail_triggered);
#else
    return 0;
#endif
}

static void count(void *p)
{
    if (p)
        atomic_fetch_add_explicit(&used_bytes, malloc_usable_size(p), memory_order_relaxed);
}

void *mdx_malloc(size_t size)
{
    atomic_fetch_add_explicit(&alloc_calls, 1, memory_order_relaxed);
    if (inject_failure())
        return NULL;
    void *p = malloc(size ? size : 1);
    count(p);
    return p;
}

void *mdx_calloc(size_t n, size_t size)
{
    atomic_fetch_add_explicit(&alloc_calls, 1, memory_order_relaxed);
    if (size && n > SIZE_MAX / size)
        return NULL;
    if (inject_failure())
        return NULL;
    void *p = calloc(n ? n : 1, size ? size : 1);
    count(p);
    return p;
}

void *mdx_realloc(void *p, size_t size)
{
    if (!p)
        return mdx_malloc(size);
    atomic_fetch_add_explicit(&alloc_calls, 1, memory_order_relaxed);
    if (inject_failure())
        return NULL;
    size_t old = malloc_usable_size(p);
    void *q = realloc(p, size ? size : 1);
    if (!q)
        return NULL;
    atomic_fetch_sub_explicit(&used_bytes, old, memory_order_relaxed);
    count(q);
    return q;
}

void mdx_free(void *p)
{
    if (!p)
        return;
    atomic_fetch_sub_explicit(&used_bytes, malloc_usable_size(p), memory_order_relaxed);
    free(p);
}

size_t mdx_alloc_size(const void *p)
{
    return p ? malloc_usable_size((void *)p) : 0;
}

size_t mdx_alloc_used(void)
{
    return atomic_load_explicit(&used_bytes, memory_order_relaxed);
}

size_t mdx_alloc_allocator_bytes(void)
{
    return mdx_alloc_used();
}

uint64_t mdx_alloc_count(void)
{
    return atomic_load_explicit(&alloc_calls, memory_order_relaxed);
}
