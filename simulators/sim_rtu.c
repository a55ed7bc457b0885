/* sim_rtu — a simulated Modbus RTU line (see sim_rtu.h).
 *
 * Framing of the master's frames: the length follows from the function code (8 bytes for
 * 01-06, 9 + byte count for 15/16); any other function is found by its CRC. A frame with a
 * bad CRC loses its first byte and parsing resumes at the next one, as sim_furnace_feed()
 * does for one slave. References: MODBUS over Serial Line V1.02 §2.5 (t3.5, frame
 * delimiting), hardware.md §1.1 (character times per baud rate).
 */
#include "simulators/sim_rtu.h"

#include "common/ll_crc.h"

#include <errno.h>
#include <string.h>

void sim_rtu_init(struct sim_rtu_line *l,
                  const struct labconf_instrument *inst,
                  double turnaround_us)
{
    int baud = inst->baud > 0 ? inst->baud : 9600;
    int bits = 1 + (inst->data_bits > 0 ? inst->data_bits : 8) +
               (inst->parity == 'E' || inst->parity == 'O' ? 1 : 0) +
               (inst->stop_bits > 0 ? inst->stop_bits : 1);

    memset(l, 0, sizeof(*l));
    l->char_us = 1e6 * bits / baud;
    l->t35_us = baud > 19200 ? 1750.0 : 3.5 * l->char_us;
    l->turnaround_us = turnaround_us;
    l->next_id = 1;
}

void sim_rtu_untimed(struct sim_rtu_line *l)
{
    l->char_us = 0.0;
    l->t35_us = 0.0;
    l->turnaround_us = 0.0;
}

int sim_rtu_add_slave(struct sim_rtu_line *l, struct sim_furnace *f)
{
    if (l->n_slaves == SIM_RTU_MAX_SLAVES)
        return -ENOSPC;
    for (int i = 0; i < l->n_slaves; i++)
        if (l->slaves[i]->slave == f->slave)
            return -EEXIST;
    l->slaves[l->n_slaves++] = f;
    return 0;
}

void sim_rtu_flush_partial(struct sim_rtu_line *l)
{
    l->n_rx = 0;
}

void sim_rtu_cut(struct sim_rtu_line *l)
{
    l->n_rx = 0;
    l->n_win = 0;
    l->req_end_us = 0;
    l->reply_free_us = 0;
}

/* Length of the frame at the start of buf: > 0 known, 0 need more bytes. */
static size_t frame_length(const uint8_t *buf, size_t n)
{
    uint8_t fc;

    if (n < 2)
        return 0;
    fc = buf[1];
    if (fc >= 1 && fc <= 6)
        return n >= 8 ? 8 : 0;
    if (fc == 15 || fc == 16) {
        if (n < 7)
            return 0;
        return n >= 9 + (size_t)buf[6] ? 9 + (size_t)buf[6] : 0;
    }
    for (size_t len = 4; len <= n; len++) {
        uint16_t crc = ll_crc16_modbus(buf, len - 2);
        if (buf[len - 2] == (crc & 0xFF) && buf[len - 1] == (crc >> 8))
            return len;
    }
    return 0;
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* Forgets the answers that are over (their t3.5 too) at now_us. */
static void prune(struct sim_rtu_line *l, int64_t now_us)
{
    int k = 0;

    for (int i = 0; i < l->n_win; i++)
        if (l->win[i].end_us + (int64_t)l->t35_us > now_us)
            l->win[k++] = l->win[i];
    l->n_win = k;
}

/* Does a frame from the master that starts at start_us hit a frame on the line (a request
 * still going out, an answer's characters)? A start inside the t3.5 after a frame is only a
 * gap violation (counted): a lenient slave still takes it, and labsim hands answers over up
 * to a millisecond late, so a master that keeps the gap from the answer's arrival may look
 * early here. */
static bool line_busy_at(struct sim_rtu_line *l, int64_t start_us)
{
    int64_t gap = (int64_t)l->t35_us;
    bool busy = start_us < l->req_end_us, early = start_us < l->req_end_us + gap;

    for (int i = 0; i < l->n_win; i++) {
        if (start_us >= l->win[i].start_us && start_us < l->win[i].end_us)
            busy = true;
        if (start_us >= l->win[i].start_us && start_us < l->win[i].end_us + gap)
            early = true;
    }
    if (early && !busy)
        l->st.gap_violations++;
    return busy;
}

/* A colliding frame [start_us, end_us]: every answer whose characters overlap it is
 * garbled. */
static void collide(struct sim_rtu_line *l,
                    int64_t start_us,
                    int64_t end_us,
                    uint64_t *garbled,
                    int max_garbled,
                    int *n_garbled)
{
    l->st.collisions++;
    for (int i = 0; i < l->n_win; i++)
        if (l->win[i].end_us > start_us && l->win[i].start_us <= end_us && *n_garbled < max_garbled)
            garbled[(*n_garbled)++] = l->win[i].id;
    if (end_us > l->req_end_us)
        l->req_end_us = end_us;
}

/* Hands one good frame to every slave; the answer (if any) goes into *out, scheduled after
 * the frame's end. Returns 1 when there is an answer. */
static int dispatch(struct sim_rtu_line *l,
                    const uint8_t *frame,
                    size_t len,
                    int64_t end_us,
                    struct sim_rtu_reply *out)
{
    size_t n = 0;
    int delay_ms = 0;

    l->st.frames++;
    for (int i = 0; i < l->n_slaves && n == 0; i++) {
        struct sim_furnace *f = l->slaves[i];
        f->reply_delay_ms = 0;
        n = sim_furnace_handle(f, frame, len, out->bytes, sizeof(out->bytes));
        delay_ms = f->reply_delay_ms;
    }
    if (n == 0)
        return 0;
    int64_t start =
        max64(end_us + (int64_t)(l->t35_us + l->turnaround_us) + 1000 * delay_ms, l->reply_free_us);
    int64_t end = start + (int64_t)((double)n * l->char_us);
    out->len = n;
    out->due_us = end;
    out->id = l->next_id++;
    l->reply_free_us = end + (int64_t)l->t35_us;
    if (l->n_win < SIM_RTU_MAX_PENDING)
        l->win[l->n_win++] = (struct sim_rtu_window){start, end, out->id};
    l->st.replies++;
    l->st.bytes_tx += (int64_t)n;
    l->st.busy_us += (int64_t)((double)n * l->char_us + l->t35_us);
    return 1;
}

int sim_rtu_rx(struct sim_rtu_line *l,
               const uint8_t *data,
               size_t len,
               int64_t now_us,
               struct sim_rtu_reply *out,
               int max_out,
               uint64_t *garbled,
               int max_garbled,
               int *n_garbled)
{
    int n_out = 0, frames_in_chunk = 0;

    *n_garbled = 0;
    prune(l, now_us);
    l->st.bytes_rx += (int64_t)len;
    if (l->n_rx == 0) {
        l->rx_start_us = now_us;
        l->rx_hit = line_busy_at(l, now_us);
    }
    while (len > 0) {
        size_t take = sizeof(l->rx) - l->n_rx;
        if (take > len)
            take = len;
        memcpy(l->rx + l->n_rx, data, take);
        l->n_rx += take;
        data += take;
        len -= take;
        for (;;) {
            size_t flen = frame_length(l->rx, l->n_rx);
            bool ok;
            if (flen == 0) {
                if (l->n_rx < sizeof(l->rx))
                    break;
                flen = 1; /* no frame fits: drop a byte */
            }
            ok = flen >= 4;
            if (ok) {
                uint16_t crc = ll_crc16_modbus(l->rx, flen - 2);
                ok = l->rx[flen - 2] == (crc & 0xFF) && l->rx[flen - 1] == (crc >> 8);
            }
            if (!ok) {
                l->st.bad_frames++;
                flen = 1;
            } else {
                int64_t start = l->rx_start_us;
                int64_t end = max64(start + (int64_t)((double)flen * l->char_us), now_us);
                l->st.busy_us += (int64_t)((double)flen * l->char_us + l->t35_us);
                /* a second frame in one read followed the first without the gap */
                if (l->rx_hit || frames_in_chunk > 0) {
                    collide(l, start, end, garbled, max_garbled, n_garbled);
                } else {
                    l->req_end_us = end;
                    if (n_out < max_out && dispatch(l, l->rx, flen, end, &out[n_out]))
                        n_out++;
                }
                frames_in_chunk++;
                l->rx_start_us = end;
                l->rx_hit = false;
            }
            memmove(l->rx, l->rx + flen, l->n_rx - flen);
            l->n_rx -= flen;
        }
    }
    if (frames_in_chunk > 0 && l->n_rx > 0)
        l->rx_hit = true; /* the next frame began without the gap */
    return n_out;
}
