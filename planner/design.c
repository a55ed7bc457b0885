/* design — scrambled Sobol sequences (see design.h for the idea). */
#include "planner/design.h"

#include <errno.h>
#include <gsl/gsl_qrng.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define BITS 30
#define ALL_BITS ((1u << BITS) - 1u)

struct design {
    size_t d;
    gsl_qrng *q;
    uint32_t row[DESIGN_MAX_DIM][BITS]; /* row[j][i]: mask of input bits for output bit i */
    uint32_t shift[DESIGN_MAX_DIM];
    double buf[DESIGN_MAX_DIM];
};

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int design_new(size_t d, unsigned long seed, unsigned long stream, struct design **ret)
{
    *ret = NULL;
    if (d < 1 || d > DESIGN_MAX_DIM)
        return -EINVAL;
    struct design *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return -ENOMEM;
    g->q = gsl_qrng_alloc(gsl_qrng_sobol, (unsigned)d);
    if (g->q == NULL) {
        free(g);
        return -ENOMEM;
    }
    g->d = d;
    uint64_t state = (uint64_t)seed * 0xD1B54A32D192ED03ull ^ ((uint64_t)stream + 0x5851F42Dull);
    splitmix64(&state);
    for (size_t j = 0; j < d; j++) {
        /* output bit i (counted from the most significant, weight 2^-(i+1)) is the parity of
         * input bit i and a random subset of the more significant input bits */
        for (int i = 0; i < BITS; i++) {
            uint32_t own = 1u << (BITS - 1 - i);
            uint32_t higher = ALL_BITS & ~((own << 1) - 1u);
            g->row[j][i] = own | ((uint32_t)splitmix64(&state) & higher);
        }
        g->shift[j] = (uint32_t)splitmix64(&state) & ALL_BITS;
    }
    *ret = g;
    return 0;
}

static uint32_t parity32(uint32_t v)
{
    v ^= v >> 16;
    v ^= v >> 8;
    v ^= v >> 4;
    v ^= v >> 2;
    v ^= v >> 1;
    return v & 1u;
}

void design_next(struct design *g, double *ret_u)
{
    gsl_qrng_get(g->q, g->buf);
    for (size_t j = 0; j < g->d; j++) {
        uint32_t v = (uint32_t)ldexp(g->buf[j], BITS) & ALL_BITS, y = 0;
        for (int i = 0; i < BITS; i++)
            y |= parity32(v & g->row[j][i]) << (BITS - 1 - i);
        y ^= g->shift[j];
        ret_u[j] = ldexp((double)y + 0.5, -BITS);
    }
}

void design_skip(struct design *g, size_t n)
{
    for (size_t i = 0; i < n; i++)
        gsl_qrng_get(g->q, g->buf);
}

void design_free(struct design **g)
{
    if (g == NULL || *g == NULL)
        return;
    gsl_qrng_free((*g)->q);
    free(*g);
    *g = NULL;
}
