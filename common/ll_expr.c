/* ll_expr — see ll_expr.h. */
#include "common/ll_expr.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct parser {
    const char *text, *p;
    const char *const *names;
    const double *values;
    size_t n;
    struct ll_error *err;
    int failed;
};

static void skip_ws(struct parser *ps)
{
    while (isspace((unsigned char)*ps->p))
        ps->p++;
}

static double perr(struct parser *ps, const char *msg, const char *detail)
{
    if (!ps->failed)
        ll_error_set(ps->err,
                     -EINVAL,
                     "expression '%s': column %d: %s%s",
                     ps->text,
                     (int)(ps->p - ps->text) + 1,
                     msg,
                     detail != NULL ? detail : "");
    ps->failed = 1;
    return 0.0;
}

static double parse_expr(struct parser *ps);

static double parse_factor(struct parser *ps)
{
    skip_ws(ps);
    if (ps->failed)
        return 0.0;
    char c = *ps->p;
    if (c == '-' || c == '+') {
        ps->p++;
        double v = parse_factor(ps);
        return c == '-' ? -v : v;
    }
    if (c == '(') {
        ps->p++;
        double v = parse_expr(ps);
        skip_ws(ps);
        if (*ps->p != ')')
            return perr(ps, "expected ')'", NULL);
        ps->p++;
        return v;
    }
    if (c == '$') {
        if (ps->p[1] != '{')
            return perr(ps, "expected '{' after '$'", NULL);
        const char *start = ps->p + 2;
        const char *end = strchr(start, '}');
        if (end == NULL)
            return perr(ps, "missing '}'", NULL);
        size_t len = (size_t)(end - start);
        for (size_t i = 0; i < ps->n; i++)
            if (strlen(ps->names[i]) == len && strncmp(ps->names[i], start, len) == 0) {
                ps->p = end + 1;
                return ps->values[i];
            }
        char name[80];
        snprintf(name, sizeof(name), "'%.*s'", (int)(len < 64 ? len : 64), start);
        return perr(ps, "unknown parameter ", name);
    }
    if (isdigit((unsigned char)c) || c == '.') {
        char *end = NULL;
        double v = strtod(ps->p, &end);
        if (end == ps->p)
            return perr(ps, "expected a number", NULL);
        ps->p = end;
        return v;
    }
    if (c == '\0')
        return perr(ps, "unexpected end", NULL);
    return perr(ps, "unexpected character", NULL);
}

static double parse_term(struct parser *ps)
{
    double v = parse_factor(ps);
    for (;;) {
        skip_ws(ps);
        char c = *ps->p;
        if (ps->failed || (c != '*' && c != '/'))
            return v;
        ps->p++;
        double w = parse_factor(ps);
        if (c == '*') {
            v *= w;
        } else {
            if (w == 0.0 && !ps->failed)
                return perr(ps, "division by zero", NULL);
            v /= w;
        }
    }
}

static double parse_expr(struct parser *ps)
{
    double v = parse_term(ps);
    for (;;) {
        skip_ws(ps);
        char c = *ps->p;
        if (ps->failed || (c != '+' && c != '-'))
            return v;
        ps->p++;
        double w = parse_term(ps);
        v = c == '+' ? v + w : v - w;
    }
}

int ll_expr_eval(const char *text,
                 const char *const *names,
                 const double *values,
                 size_t n,
                 double *ret_value,
                 struct ll_error *reterr)
{
    struct parser ps = {
        .text = text, .p = text, .names = names, .values = values, .n = n, .err = reterr};
    if (*ps.p == '=')
        ps.p++;
    double v = parse_expr(&ps);
    skip_ws(&ps);
    if (!ps.failed && *ps.p != '\0')
        perr(&ps, "unexpected text after the expression", NULL);
    if (!ps.failed && !isfinite(v))
        perr(&ps, "the result is not a finite number", NULL);
    if (ps.failed)
        return -EINVAL;
    *ret_value = v;
    return 0;
}
