/*
 * Frame codec: a frame is a 4-byte big-endian payload length followed by that many bytes.
 *
 * mdx_frame_next() does no I/O and keeps no state, so a caller can feed it whatever it has
 * read so far, one byte or a megabyte at a time. The declared length is checked against the
 * limit as soon as the 4 header bytes are there: a peer that announces 4 GiB is refused before
 * it has sent (and the server has buffered) any of it.
 */
#include <limits.h>

#include "memdex/protocol.h"

long mdx_frame_next(const uint8_t *buf, size_t len, size_t max_frame, const uint8_t **payload,
                    size_t *plen)
{
    if (len < MDX_FRAME_HEADER)
        return 0;
    uint32_t l = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
    if (l > max_frame)
        return -MDX_EFRAMETOOBIG;
#if LONG_MAX <= UINT32_MAX
    /* A 32-bit long must still hold header + payload, whatever max_frame says. */
    if (l > (unsigned long)LONG_MAX - MDX_FRAME_HEADER)
        return -MDX_EFRAMETOOBIG;
#endif
    if (len - MDX_FRAME_HEADER < l)
        return 0;
    *payload = buf + MDX_FRAME_HEADER;
    *plen = l;
    return (long)(MDX_FRAME_HEADER + (size_t)l);
}
