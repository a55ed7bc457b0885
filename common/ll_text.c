/* ll_text — see ll_text.h. */
#include "common/ll_text.h"

#include <string.h>

size_t ll_utf8_cut(const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    if (n < max || s[n] == '\0')
        return n;
    /* s[n] is the first byte left out: a continuation byte (10xxxxxx) means the cut splits a
     * character, so drop its leading bytes too */
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}
