/*
 * Allocator wrapper (see alloc.h). Usable sizes come from malloc_usable_size, which both glibc
 * and jemalloc export, so accounting matches what the allocator really holds for each block.
 */
#include "common/alloc.h"

#include <malloc.h>
#include <stdlib.h>

#if MDX_USE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

static size_t used_bytes;
static uint64_t alloc_calls;

#if MDX_FAULT_INJECTION
static long fail_countdown = -1;
static int fail_triggered;

static int inject_failure(void)
{
    if (fail_countdown < 0)
        return 0;
    if (fail_countdown == 0) {
        fail_triggered = 1;
        return 1;
    }
    fail_countdown--;
    return 0;
}
#else
#define inject_failure() 0
#endif

void mdx_alloc_fail_after(long n)
{
#if MDX_FAULT_INJECTION
    fail_countdown = n;
    fail_triggered = 0;
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
    return fail_triggered;
#else
    return 0;
#endif
}

void *mdx_malloc(size_t size)
{
    alloc_calls++;
    if (inject_failure())
        return NULL;
    void *p = malloc(size ? size : 1);
    if (p)
        used_bytes += malloc_usable_size(p);
    return p;
}

void *mdx_calloc(size_t n, size_t size)
{
    alloc_calls++;
    if (size && n > SIZE_MAX / size)
        return NULL;
    if (inject_failure())
        return NULL;
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p)
        used_bytes += malloc_usable_size(p);
    return p;
}

void *mdx_realloc(void *p, size_t size)
{
    if (!p)
        return mdx_malloc(size);
    alloc_calls++;
    if (inject_failure())
        return NULL;
    size_t old = malloc_usable_size(p);
    void *q = realloc(p, size ? size : 1);
    if (!q)
        return NULL;
    used_bytes = used_bytes - old + malloc_usable_size(q);
    return q;
}

void mdx_free(void *p)
{
    if (!p)
        return;
    used_bytes -= malloc_usable_size(p);
    free(p);
}

size_t mdx_alloc_size(const void *p)
{
    return p ? malloc_usable_size((void *)p) : 0;
}

size_t mdx_alloc_used(void)
{
    return used_bytes;
}

uint64_t mdx_alloc_count(void)
{
    return alloc_calls;
}

size_t mdx_alloc_allocator_bytes(void)
{
#if MDX_USE_JEMALLOC
    uint64_t epoch = 1;
    size_t sz = sizeof(epoch);
    mallctl("epoch", &epoch, &sz, &epoch, sz);
    size_t allocated = 0;
    sz = sizeof(allocated);
    if (mallctl("stats.allocated", &allocated, &sz, NULL, 0) == 0)
        return allocated;
#endif
    return used_bytes;
}
