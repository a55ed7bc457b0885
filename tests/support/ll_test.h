/* ll_test — small helpers shared by the cmocka test programs.
 *
 * cmocka has no assertion for doubles; ll_assert_close states its tolerance:
 * |got - want| <= abs_tol + rel_tol * |want|. Every test main() calls ll_test_init()
 * first (it turns GSL's aborting error handler off, as every main of ours must).
 */
#ifndef LL_TEST_H
#define LL_TEST_H

/* cmocka.h needs these four before it */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

/* cmocka's _fail() (behind fail() and fail_msg()) leaves the test by longjmp but is not
 * declared noreturn, so the static analyser follows paths past a failed test and reports
 * values only such a path leaves unset. Telling the analyser keeps its reports real. */
#ifdef __clang_analyzer__
void _fail(const char *const file, const int line) __attribute__((noreturn));
#endif

void ll_test_init(void);

void ll_assert_close_impl(double got,
                          double want,
                          double rel_tol,
                          double abs_tol,
                          const char *expr,
                          const char *file,
                          int line);

#define ll_assert_close(got, want, rel, abs)                                                       \
    ll_assert_close_impl((got), (want), (rel), (abs), #got, __FILE__, __LINE__)

/* Path of a file in the source tree ($LL_SOURCE_DIR/rel, or rel relative to the working
 * directory when the variable is unset). Returns a static buffer. */
const char *ll_test_source_path(const char *rel);

/* Makes a fresh temporary directory and returns its path (static buffer). */
const char *ll_test_tmpdir(void);

#endif
