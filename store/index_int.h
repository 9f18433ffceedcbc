/*
 * Index creation from a known list of records, for the snapshot loader. Not a public header.
 *
 * mdx_index_create visits the records through the primary table, in hash order, which is a
 * random walk through memory (a cache miss per record). The loader knows every record it
 * inserted, in insertion order, which is close to address order, so it hands that list over.
 */
#ifndef MDX_STORE_INDEX_INT_H
#define MDX_STORE_INDEX_INT_H

#include "store/store_int.h"

/** Bytes of scratch memory a build over n records uses (0 when it would overflow). */
size_t mdx__index_scratch_bytes(size_t n);

/** mdx_index_create, visiting recs[0..n) instead of the primary table when they are all of c's
 *  records (the caller guarantees that every live record of c is listed once; when the
 *  creation reclaims expired records, n no longer matches and the primary table is walked).
 *  recs may be NULL. When scratch holds at least mdx__index_scratch_bytes(records of c) bytes
 *  the build works there instead of allocating (successive builds reuse pages already
 *  faulted in); scratch may be NULL. Same errors and contract as mdx_index_create. Borrows
 *  recs and scratch for the call. */
int mdx__index_create_from(mdx_coll_t *c, const char *name, const char *field,
                           mdx_index_kind_t kind, int unique, mdx_rec_t *const *recs, size_t n,
                           void *scratch, size_t scratch_bytes);

#endif
