/* ll_expr — small arithmetic expressions over named values, shared by the daemon's recipes
 * (daemon/recipe.h) and objectives computed from parameters (planner/campaign.h).
 *
 * Grammar (a recursive-descent parser that evaluates while it parses; the expressions are a
 * few dozen bytes):
 *   expr   := term (('+' | '-') term)*
 *   term   := factor (('*' | '/') factor)*
 *   factor := ('-' | '+') factor | NUMBER | '${' NAME '}' | '(' expr ')'
 * One leading '=' is allowed (it marks a string as an expression in a recipe).
 */
#ifndef LL_EXPR_H
#define LL_EXPR_H

#include "common/ll_error.h"

#include <stddef.h>

/* Evaluates text; "${name}" looks name up in names[0..n) and takes values[i]. Returns 0 and
 * the value in *ret_value, or -EINVAL with "expression 'TEXT': column C: problem" in reterr
 * (unknown name, syntax, division by zero, non-finite result). */
int ll_expr_eval(const char *text,
                 const char *const *names,
                 const double *values,
                 size_t n,
                 double *ret_value,
                 struct ll_error *reterr);

#endif
