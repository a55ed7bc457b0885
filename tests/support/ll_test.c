/* ll_test — see ll_test.h. */
#include "ll_test.h"

#include <gsl/gsl_errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

void ll_test_init(void)
{
    gsl_set_error_handler_off();
}

void ll_assert_close_impl(double got,
                          double want,
                          double rel_tol,
                          double abs_tol,
                          const char *expr,
                          const char *file,
                          int line)
{
    double tol = abs_tol + rel_tol * fabs(want);
    if (isfinite(got) && fabs(got - want) <= tol)
        return;
    print_error("%s = %.17g, want %.17g (tolerance %.3g)\n", expr, got, want, tol);
    _fail(file, line);
}

const char *ll_test_source_path(const char *rel)
{
    static char path[4096];
    const char *dir = getenv("LL_SOURCE_DIR");
    if (dir == NULL)
        snprintf(path, sizeof(path), "%s", rel);
    else
        snprintf(path, sizeof(path), "%s/%s", dir, rel);
    return path;
}

const char *ll_test_tmpdir(void)
{
    static char path[256];
    const char *base = getenv("TMPDIR");
    snprintf(path, sizeof(path), "%s/labloop-test-XXXXXX", base ? base : "/tmp");
    if (mkdtemp(path) == NULL) {
        perror("mkdtemp");
        abort();
    }
    return path;
}
