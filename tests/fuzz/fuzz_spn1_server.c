/* fuzz_spn1_server — labsim's SPN/1 coater line parser (simulators/sim_coater.h).
 *
 * The input is a stream of lines as a host (or line noise) would send them; each is handed
 * to sim_coater_line() with the simulated spin advanced between lines. Besides the
 * sanitizers' checks, every reply must be one well-formed SPN/1 frame: "<SEQ> OK|ERR ...",
 * at most 128 + 64 bytes, ending in "*XXXX\r\n" with the right CRC-16/CCITT-FALSE.
 */
#include "common/ll_crc.h"
#include "simulators/sim_coater.h"
#include "simulators/sim_fault.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_reply(const char *r, size_t n)
{
    if (n == 0)
        return;
    if (n < 10 || r[n - 2] != '\r' || r[n - 1] != '\n' || r[n - 7] != '*' || strlen(r) != n)
        abort();
    char hex[5];
    memcpy(hex, r + n - 6, 4);
    hex[4] = '\0';
    char *end = NULL;
    unsigned long crc = strtoul(hex, &end, 16);
    if (*end != '\0' || crc != ll_crc16_ccitt_false((const uint8_t *)r, n - 7))
        abort();
    const char *sp = strchr(r, ' ');
    if (sp == NULL || (strncmp(sp + 1, "OK", 2) != 0 && strncmp(sp + 1, "ERR E", 5) != 0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sim_coater c;
    static struct sim_faults faults;
    sim_faults_init(&faults, "coater.lid=0.05,coater.overspeed=0.05,coater.garbage=0.0", 1, NULL);
    sim_coater_init(&c, 8000, 5000, &faults);
    char out[512];
    int64_t now_ms = 0;
    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i < size && data[i] != '\n')
            continue;
        size_t len = i - start;
        if (len > 0 && data[start + len - 1] == '\r')
            len--;
        size_t n = sim_coater_line(&c, (const char *)data + start, len, now_ms, out, sizeof(out));
        if (n >= sizeof(out))
            abort();
        out[n] = '\0';
        check_reply(out, n);
        now_ms += 250;
        sim_coater_advance(&c, 2.5, now_ms);
        start = i + 1;
    }
    return 0;
}
