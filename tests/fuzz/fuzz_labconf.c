/* fuzz_labconf — the lab definition loader (drivers/labconf.h) on arbitrary text.
 *
 * A lab file is outside input (an operator writes it; labsim writes a copy). Whatever the
 * bytes, the loader must return 0 or a negative code with a message, never crash or leak;
 * a definition it accepts must survive write-then-load unchanged in its instrument count.
 */
#include "drivers/labconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* libconfig 1.5 (Debian 12) leaks the string tokens it had read when it meets a syntax
 * error (no bison %destructor); that leak is in the library, not in labconf. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libconfig.so\n";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct labconf *lab = NULL, *back = NULL;
    struct ll_error err = {0};
    char *text = malloc(size + 1);
    char *out = NULL;
    size_t out_len = 0;
    FILE *f;

    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (labconf_load_string(text, "fuzz", &lab, &err) == 0) {
        f = open_memstream(&out, &out_len);
        if (f) {
            if (labconf_write(lab, f, &err) == 0) {
                fclose(f);
                f = NULL;
                if (labconf_load_string(out, "fuzz-back", &back, &err) != 0 ||
                    back->n_instruments != lab->n_instruments)
                    abort();
            }
            if (f)
                fclose(f);
        }
    } else if (err.code == 0 || err.msg[0] == '\0') {
        abort();
    }
    labconf_free(&back);
    labconf_free(&lab);
    free(out);
    free(text);
    return 0;
}
