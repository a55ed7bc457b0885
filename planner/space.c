/* space — unit-cube scaling, discrete rounding and linear constraints (see space.h). */
#include "planner/space.h"

#include <math.h>
#include <string.h>

void space_init(struct space *s, const struct campaign *c)
{
    memset(s, 0, sizeof(*s));
    s->d = c->n_params;
    for (size_t j = 0; j < s->d; j++) {
        const struct campaign_param *p = &c->params[j];
        s->kind[j] = p->kind;
        s->low[j] = p->low;
        s->high[j] = p->high;
        s->n_levels[j] = p->n_levels;
        memcpy(s->levels[j], p->levels, sizeof(p->levels));
        if (p->kind != CAMPAIGN_PARAM_CONTINUOUS)
            s->has_discrete = 1;
    }
    s->n_con = c->n_constraints;
    for (size_t k = 0; k < s->n_con; k++) {
        const struct campaign_constraint *cc = &c->constraints[k];
        double b = cc->rhs, norm = 0;
        for (size_t j = 0; j < s->d; j++) {
            s->a[k][j] = cc->coef[j] * (s->high[j] - s->low[j]);
            b -= cc->coef[j] * s->low[j];
            norm += s->a[k][j] * s->a[k][j];
        }
        norm = sqrt(norm);
        if (norm > 0) {
            for (size_t j = 0; j < s->d; j++)
                s->a[k][j] /= norm;
            b /= norm;
        }
        s->b[k] = b;
        s->equality[k] = cc->equality;
    }
}

void space_to_unit(const struct space *s, const double *x, double *ret_u)
{
    for (size_t j = 0; j < s->d; j++)
        ret_u[j] = (x[j] - s->low[j]) / (s->high[j] - s->low[j]);
}

/* Value of parameter j at unit coordinate u: clamped, rounded or snapped. */
static double value_at(const struct space *s, size_t j, double u)
{
    double lo = s->low[j], hi = s->high[j];
    double x = lo + (u < 0 ? 0 : u > 1 ? 1 : u) * (hi - lo);
    if (x < lo)
        x = lo;
    if (x > hi)
        x = hi;
    switch (s->kind[j]) {
    case CAMPAIGN_PARAM_INTEGER:
        x = floor(x + 0.5);
        if (x > hi)
            x = hi;
        if (x < lo)
            x = lo;
        break;
    case CAMPAIGN_PARAM_LEVELS: {
        double best = s->levels[j][0];
        for (size_t l = 1; l < s->n_levels[j]; l++)
            if (fabs(s->levels[j][l] - x) < fabs(best - x))
                best = s->levels[j][l];
        x = best;
        break;
    }
    case CAMPAIGN_PARAM_CONTINUOUS:
        break;
    }
    return x;
}

void space_from_unit(const struct space *s, const double *u, double *ret_x)
{
    for (size_t j = 0; j < s->d; j++)
        ret_x[j] = value_at(s, j, u[j]);
}

void space_round_unit(const struct space *s, double *u)
{
    for (size_t j = 0; j < s->d; j++) {
        if (u[j] < 0)
            u[j] = 0;
        if (u[j] > 1)
            u[j] = 1;
        if (s->kind[j] != CAMPAIGN_PARAM_CONTINUOUS)
            u[j] = (value_at(s, j, u[j]) - s->low[j]) / (s->high[j] - s->low[j]);
    }
}

double space_violation(const struct space *s, const double *u)
{
    double worst = 0;
    for (size_t j = 0; j < s->d; j++) {
        if (-u[j] > worst)
            worst = -u[j];
        if (u[j] - 1 > worst)
            worst = u[j] - 1;
    }
    for (size_t k = 0; k < s->n_con; k++) {
        double r = -s->b[k];
        for (size_t j = 0; j < s->d; j++)
            r += s->a[k][j] * u[j];
        if (s->equality[k])
            r = fabs(r);
        if (r > worst)
            worst = r;
    }
    return worst;
}

void space_project(const struct space *s, double *u, const int *fixed)
{
    for (size_t j = 0; j < s->d; j++)
        u[j] = u[j] < 0 ? 0 : u[j] > 1 ? 1 : u[j];
    if (s->n_con == 0)
        return;
    for (int it = 0; it < 200; it++) {
        double worst = 0;
        for (size_t k = 0; k < s->n_con; k++) {
            double r = -s->b[k], norm2 = 0;
            for (size_t j = 0; j < s->d; j++) {
                r += s->a[k][j] * u[j];
                if (fixed == NULL || !fixed[j])
                    norm2 += s->a[k][j] * s->a[k][j];
            }
            if (!s->equality[k] && r <= 0)
                continue;
            if (fabs(r) > worst)
                worst = fabs(r);
            if (norm2 <= 0)
                continue;
            for (size_t j = 0; j < s->d; j++)
                if (fixed == NULL || !fixed[j])
                    u[j] -= r * s->a[k][j] / norm2;
        }
        for (size_t j = 0; j < s->d; j++)
            u[j] = u[j] < 0 ? 0 : u[j] > 1 ? 1 : u[j];
        if (worst < 0.01 * SPACE_FEAS_TOL)
            break;
    }
}

int space_make_feasible(const struct space *s, double *u)
{
    space_project(s, u, NULL);
    if (s->has_discrete) {
        space_round_unit(s, u);
        if (s->n_con > 0 && space_violation(s, u) > SPACE_FEAS_TOL) {
            /* move only the continuous coordinates to repair what rounding broke */
            int fixed[CAMPAIGN_MAX_PARAMS];
            for (size_t j = 0; j < s->d; j++)
                fixed[j] = s->kind[j] != CAMPAIGN_PARAM_CONTINUOUS;
            space_project(s, u, fixed);
        }
    }
    return space_violation(s, u) <= SPACE_FEAS_TOL;
}

int space_in_bounds(const struct space *s, const double *x, size_t *ret_bad)
{
    for (size_t j = 0; j < s->d; j++)
        if (!(x[j] >= s->low[j] && x[j] <= s->high[j])) {
            if (ret_bad)
                *ret_bad = j;
            return 0;
        }
    return 1;
}
