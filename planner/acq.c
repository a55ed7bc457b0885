/* acq — acquisition functions and their derivatives (see acq.h). */
#include "planner/acq.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define MIN_SIGMA 1e-12

int acq_kind_from_name(const char *name, enum acq_kind *ret)
{
    static const struct {
        const char *name;
        enum acq_kind kind;
    } names[] = {
        {"ehvi",        ACQ_EHVI       },
        {"ei",          ACQ_EI         },
        {"ucb",         ACQ_UCB        },
        {"pi",          ACQ_PI         },
        {"uncertainty", ACQ_UNCERTAINTY},
        {"random",      ACQ_RANDOM     },
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(name, names[i].name) == 0) {
            *ret = names[i].kind;
            return 0;
        }
    return -EINVAL;
}

static double norm_pdf(double z)
{
    return 0.3989422804014327 * exp(-0.5 * z * z);
}

static double norm_cdf(double z)
{
    return 0.5 * erfc(-z * 0.7071067811865476);
}

/* EI for minimisation and its derivatives w.r.t. mu and var. */
static double expected_improvement(double best, double mu, double var, double *dmu, double *dvar)
{
    double s = sqrt(var > 0 ? var : 0);
    if (s < MIN_SIGMA) {
        double imp = best - mu;
        if (dmu) {
            *dmu = imp > 0 ? -1 : 0;
            *dvar = 0;
        }
        return imp > 0 ? imp : 0;
    }
    double z = (best - mu) / s, cdf = norm_cdf(z), pdf = norm_pdf(z);
    if (dmu) {
        *dmu = -cdf;
        *dvar = pdf / (2 * s);
    }
    return (best - mu) * cdf + s * pdf;
}

double acq_value(const struct acq_context *ctx,
                 const double *mu,
                 const double *var,
                 double *ret_dmu,
                 double *ret_dvar)
{
    size_t m = ctx->m;
    double v = (double)NAN;
    for (size_t k = 0; k < m; k++)
        if (!isfinite(mu[k]) || !isfinite(var[k]))
            return (double)NAN;
    switch (ctx->kind) {
    case ACQ_EHVI:
        if (m == 1)
            return expected_improvement(ctx->best, mu[0], var[0], ret_dmu, ret_dvar);
        {
            double sigma[CAMPAIGN_MAX_OBJECTIVES] = {0}, dsigma[CAMPAIGN_MAX_OBJECTIVES] = {0};
            for (size_t k = 0; k < m; k++)
                sigma[k] = sqrt(var[k] > 0 ? var[k] : 0);
            if (ret_dmu == NULL)
                return ehvi_front_eval(ctx->front, mu, sigma);
            v = ehvi_front_eval_grad(ctx->front, mu, sigma, ret_dmu, dsigma);
            for (size_t k = 0; k < m; k++)
                ret_dvar[k] = sigma[k] > MIN_SIGMA ? dsigma[k] / (2 * sigma[k]) : 0;
        }
        return v;
    case ACQ_EI:
        return expected_improvement(ctx->best, mu[0], var[0], ret_dmu, ret_dvar);
    case ACQ_PI: {
        double s = sqrt(var[0] > 0 ? var[0] : 0);
        double t = ctx->best - ctx->xi - mu[0];
        if (s < MIN_SIGMA) {
            if (ret_dmu) {
                ret_dmu[0] = 0;
                ret_dvar[0] = 0;
            }
            return t > 0 ? 1 : 0;
        }
        double z = t / s;
        if (ret_dmu) {
            ret_dmu[0] = -norm_pdf(z) / s;
            ret_dvar[0] = -norm_pdf(z) * z / s / (2 * s);
        }
        return norm_cdf(z);
    }
    case ACQ_UCB: {
        double s = sqrt(var[0] > 0 ? var[0] : 0);
        if (ret_dmu) {
            ret_dmu[0] = -1;
            ret_dvar[0] = s > MIN_SIGMA ? ctx->beta / (2 * s) : 0;
        }
        return -(mu[0] - ctx->beta * s);
    }
    case ACQ_UNCERTAINTY:
        v = 0;
        for (size_t k = 0; k < m; k++) {
            double scale = ctx->scale[k] > 0 ? ctx->scale[k] : 1;
            v += var[k] / scale;
            if (ret_dmu) {
                ret_dmu[k] = 0;
                ret_dvar[k] = 1 / scale;
            }
        }
        return v;
    case ACQ_RANDOM:
        break;
    }
    return (double)NAN;
}
