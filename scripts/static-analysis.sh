#!/usr/bin/env bash
# Static analysis, the last stage of CI (STYLE.md): cppcheck
# (--enable=warning,performance,portability) and clang-tidy (the checks in .clang-tidy:
# clang-analyzer-*, bugprone-*, functions of at most 150 lines) over the project's C files,
# and sql-lint (scripts/sql-lint.py: no SQL built from variables) over every source file.
#
#   scripts/static-analysis.sh              every tracked .c file (libraries, daemon,
#                                           simulators, tests, benchmarks, fuzz targets)
#   scripts/static-analysis.sh FILE...      only these .c files
#   scripts/static-analysis.sh --changed [REV]
#                                           the .c files that differ from REV (default
#                                           HEAD: uncommitted changes) plus untracked ones;
#                                           a changed header is analysed through the .c
#                                           files that include it, so run the whole tree
#                                           after changing a header
#
# Findings print as file:line: ...; the exit status is 1 when there is any finding.
# The compile database comes from a Debug configure (asserts on, so the analyser sees
# the invariants) in build-analysis-static/ (LL_ANALYSIS_BUILD_DIR overrides); nothing
# is compiled. False positives are silenced at the line, with a reason:
#   // cppcheck-suppress ID  -- why          /* NOLINT(check-name): why */
set -euo pipefail
cd "$(dirname "$0")/.."
builddir=${LL_ANALYSIS_BUILD_DIR:-build-analysis-static}
jobs=${LL_ANALYSIS_JOBS:-$(nproc)}
start=$(date +%s)

for tool in cppcheck clang-tidy clang; do
    command -v "$tool" >/dev/null 2>&1 || { echo "static-analysis: $tool not found" >&2; exit 2; }
done

if [ "${1:-}" = "--changed" ]; then
    rev=${2:-HEAD}
    mapfile -t files < <({ git diff --name-only --diff-filter=d "$rev" -- '*.c'
                           git ls-files --others --exclude-standard -- '*.c'; } |
                         grep -v -e '^tests/fuzz/corpus/' -e '^build' | sort -u)
elif [ $# -gt 0 ]; then
    files=("$@")
else
    mapfile -t files < <(git ls-files '*.c' | grep -v -e '^tests/fuzz/corpus/' -e '^build')
fi
[ ${#files[@]} -gt 0 ] || { echo "static-analysis: no files"; exit 0; }

cmake -S . -B "$builddir" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug >/dev/null

# Reports live in the build folder (not /tmp, which other jobs may sweep); kept after the
# run for reading: cppcheck.txt, tidy.txt (with notes), tidy-findings.txt.
out=$builddir/static-analysis
rm -rf "$out"
mkdir -p "$out"
status=0

echo "== cppcheck (${#files[@]} files)"
# One configuration (-D given), the project include root, no system headers (their
# absence is reported as missingIncludeSystem, which says nothing about our code).
if ! cppcheck -q -j"$jobs" --std=c11 --language=c -I. -D_GNU_SOURCE -D__linux__ \
        --enable=warning,performance,portability --inline-suppr --error-exitcode=1 \
        --suppress=missingIncludeSystem \
        --template='{file}:{line}: {severity}: {message} [cppcheck-{id}]' \
        "${files[@]}" 2>"$out/cppcheck.txt"; then
    status=1
fi
cat "$out/cppcheck.txt"
grep -q . "$out/cppcheck.txt" && status=1

echo "== clang-tidy (${#files[@]} files, -P$jobs)"
# Each file separately so a crash in one cannot hide the others; -quiet drops the
# "N warnings generated" chatter; findings in our headers are printed once per file
# that includes them and de-duplicated below.
tidy_rc=0
printf '%s\n' "${files[@]}" |
    xargs -P"$jobs" -n1 clang-tidy -p "$builddir" --quiet --warnings-as-errors='*' \
        >"$out/tidy.txt" 2>"$out/tidy.err" || tidy_rc=$?
[ "$tidy_rc" -eq 0 ] || status=1
# Keep the diagnostic lines (path:line:col: warning|error: ... [check]) plus their notes.
grep -E '^[^ ].*:[0-9]+:[0-9]+: (warning|error):' "$out/tidy.txt" |
    sed -e "s|^$PWD/||" | sort -u >"$out/tidy-findings.txt" || true
cat "$out/tidy-findings.txt"
if grep -qE 'error: .*(no such file|unable to|compilation database)' "$out/tidy.err"; then
    grep -E 'error:' "$out/tidy.err" >&2
    status=1
fi

echo "== sql-lint"
# reliability.md S5: SQL is never built from variables (scripts/sql-lint.py says how it
# checks); over every tracked source file but the tests, which poke databases on purpose.
git ls-files '*.c' | grep -v -e '^tests/' -e '^build' | xargs python3 scripts/sql-lint.py \
    >"$out/sql-lint.txt" || true
cat "$out/sql-lint.txt"
n_sql=$(grep -c . "$out/sql-lint.txt" || true)
[ "$n_sql" -eq 0 ] || status=1

n_cpp=$(grep -c . "$out/cppcheck.txt" || true)
n_tidy=$(grep -c . "$out/tidy-findings.txt" || true)
if [ "$tidy_rc" -ne 0 ] && [ "$n_tidy" -eq 0 ]; then
    # clang-tidy failed without a diagnostic of ours: a crash or a file it cannot compile
    echo "clang-tidy failed (exit $tidy_rc) without findings; its messages:" >&2
    grep -v 'warnings\? generated' "$out/tidy.err" "$out/tidy.txt" | tail -20 >&2
fi
echo "== static analysis: cppcheck $n_cpp, clang-tidy $n_tidy, sql-lint $n_sql finding(s) in $(($(date +%s) - start)) s"
if [ "$n_tidy" -gt 0 ]; then
    echo "clang-tidy findings per check:"
    grep -oE '\[[a-zA-Z0-9._-]+' "$out/tidy-findings.txt" | tr -d '[' | sort | uniq -c | sort -rn
fi
exit "$status"
