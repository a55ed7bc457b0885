/* spn1 — framing and parsing of the SPN/1 coater line protocol (hardware.md §2.3,
 * docs/instruments.md §3).
 *
 * A frame is `<SEQ> <VERB>[ <ARG>...]*<CRC>\r\n`, ASCII, at most 128 bytes with the line
 * end; CRC-16/CCITT-FALSE over the bytes from the first digit of SEQ to the byte before
 * `*`, as four hex digits. A reply is `<SEQ> OK[ <data>]` or `<SEQ> ERR <Enn>[ <TOKEN>]`.
 * The reply parser takes untrusted bytes (the line may carry noise): it checks the length,
 * the character set, the CRC and the grammar, and never reads past len.
 */
#include "common/ll_crc.h"
#include "drivers/driver_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int spn1_format(unsigned seq, const char *body, char *buf, size_t size)
{
    int n;
    uint16_t crc;

    for (const char *c = body; *c; c++)
        if (*c < 0x20 || *c > 0x7e || *c == '*')
            return -EINVAL;
    n = snprintf(buf, size, "%u %s", seq & 0xffffu, body);
    if (n < 0 || (size_t)n + 7 > size || n + 7 > SPN1_LINE_MAX)
        return -EINVAL;
    crc = ll_crc16_ccitt_false((const uint8_t *)buf, (size_t)n);
    n += snprintf(buf + n, size - (size_t)n, "*%04X\r\n", (unsigned)crc);
    return n;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int spn1_parse_reply(const char *line, size_t len, struct spn1_reply *ret)
{
    size_t star, i = 0, body_start;
    unsigned crc = 0, seq = 0;

    memset(ret, 0, sizeof(*ret));
    if (len < 7 || len > SPN1_LINE_MAX)
        return -EPROTO;
    for (size_t k = 0; k < len; k++)
        if ((unsigned char)line[k] < 0x20 || (unsigned char)line[k] > 0x7e)
            return -EPROTO;
    star = len - 5;
    if (line[star] != '*')
        return -EPROTO;
    for (size_t k = star + 1; k < len; k++) {
        int h = hexval(line[k]);
        if (h < 0)
            return -EPROTO;
        crc = crc << 4 | (unsigned)h;
    }
    if (crc != ll_crc16_ccitt_false((const uint8_t *)line, star))
        return -EBADMSG;
    /* SEQ */
    while (i < star && i < 5 && line[i] >= '0' && line[i] <= '9')
        seq = seq * 10 + (unsigned)(line[i++] - '0');
    if (i == 0 || seq > 65535 || i >= star || line[i] != ' ')
        return -EPROTO;
    ret->seq = seq;
    i++;
    body_start = i;
    if (star - body_start >= 2 && memcmp(line + body_start, "OK", 2) == 0) {
        i = body_start + 2;
        ret->ok = true;
        if (i == star)
            return 0;
        if (line[i] != ' ' || i + 1 == star)
            return -EPROTO;
        i++;
        memcpy(ret->data, line + i, star - i);
        ret->data[star - i] = '\0';
        return 0;
    }
    /* ERR Enn[ TOKEN] */
    if (star - body_start < 7 || memcmp(line + body_start, "ERR E", 5) != 0)
        return -EPROTO;
    i = body_start + 5;
    if (line[i] < '0' || line[i] > '9' || line[i + 1] < '0' || line[i + 1] > '9')
        return -EPROTO;
    ret->err_code = (line[i] - '0') * 10 + (line[i + 1] - '0');
    i += 2;
    if (i < star) {
        if (line[i] != ' ' || i + 1 == star)
            return -EPROTO;
        i++;
        memcpy(ret->data, line + i, star - i);
        ret->data[star - i] = '\0';
    }
    return 0;
}

int spn1_field(const char *data, const char *key, char *buf, size_t size)
{
    size_t klen = strlen(key);
    const char *p = data;

    while (*p) {
        const char *end = strchr(p, ' ');
        size_t tlen = end ? (size_t)(end - p) : strlen(p);
        if (tlen > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
            size_t vlen = tlen - klen - 1;
            if (vlen >= size)
                return -ENOSPC;
            memcpy(buf, p + klen + 1, vlen);
            buf[vlen] = '\0';
            return 0;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return -ENOENT;
}

int spn1_error_code(int err_code)
{
    switch (err_code) {
    case 1: /* BAD_CRC: the frame was damaged on the way; the caller retransmits */
        return DRV_EPROTO;
    case 4: /* STATE / BUSY / SEQ_REUSED */
        return DRV_EBUSY;
    case 8:  /* WATCHDOG */
    case 99: /* INTERNAL */
        return DRV_EFAULT;
    default: /* E02 syntax, E03 range, E05 lid, E06 vacuum, E07 overspeed, E09 e-stop, E10 */
        return DRV_EREFUSED;
    }
}
