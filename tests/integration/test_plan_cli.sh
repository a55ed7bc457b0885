#!/usr/bin/env bash
# test_plan_cli — the `labloop plan` contract (DESIGN.md): exactly Q proposal rows under a
# header of parameter names, deterministic per seed and input, the design continued across
# stateless calls, model-based proposals inside the bounds, and every kind of bad input
# refused with exit status 2 and "FILE:LINE" on standard error (never 1, never a crash).
set -u
LABLOOP=${LABLOOP:?LABLOOP not set}
SRC=${LL_SOURCE_DIR:?LL_SOURCE_DIR not set}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

bc_conf=$SRC/config/problems/branincurrin.conf
pv_conf=$SRC/config/problems/perovskite.conf

# --- shape: header + exactly Q rows --------------------------------------------------------
"$LABLOOP" plan "$pv_conf" >"$tmp/p4.csv" 2>"$tmp/err" || fail "plan without data: exit $?"
[ "$(head -1 "$tmp/p4.csv")" = "fa,cs,iodide,anneal_c,anneal_min,spin_rpm" ] ||
    fail "header is '$(head -1 "$tmp/p4.csv")'"
[ "$(wc -l <"$tmp/p4.csv")" -eq 5 ] || fail "default batch: $(wc -l <"$tmp/p4.csv") lines, want 5"
"$LABLOOP" plan "$pv_conf" --batch 14 >"$tmp/p14.csv" || fail "--batch 14: exit $?"
[ "$(wc -l <"$tmp/p14.csv")" -eq 15 ] || fail "--batch 14: $(wc -l <"$tmp/p14.csv") lines"
# integers as integers, every row 6 numeric fields inside the bounds
awk -F, 'NR > 1 { if (NF != 6 || $6 !~ /^[0-9]+$/ || $1 < 0.1 || $1 > 1 || $2 < 0 || $2 > 0.15 ||
                      $3 < 0.5 || $3 > 1 || $4 < 80 || $4 > 150 || $5 < 5 || $5 > 30 ||
                      $6 < 2000 || $6 > 6000) bad++ } END { exit bad > 0 }' "$tmp/p14.csv" ||
    fail "design rows malformed or out of bounds"

# --- determinism and design continuation ---------------------------------------------------
"$LABLOOP" plan "$pv_conf" --batch 14 >"$tmp/p14b.csv"
cmp -s "$tmp/p14.csv" "$tmp/p14b.csv" || fail "two runs differ"
"$LABLOOP" plan "$pv_conf" --batch 14 --seed 2 >"$tmp/p14s.csv"
cmp -s "$tmp/p14.csv" "$tmp/p14s.csv" && fail "--seed 2 gives the same design"
head -5 "$tmp/p14.csv" >"$tmp/pending.csv"
"$LABLOOP" plan "$pv_conf" --pending "$tmp/pending.csv" >"$tmp/next.csv" || fail "pending: exit $?"
[ "$(tail -n +2 "$tmp/next.csv")" = "$(sed -n 6,9p "$tmp/p14.csv")" ] ||
    fail "the design does not continue after 4 pending points"

# --- model-based proposals on BraninCurrin (observations computed here with awk) ----------
"$LABLOOP" plan "$bc_conf" --batch 8 >"$tmp/bc_design.csv" || fail "branincurrin design"
awk -F, 'BEGIN { pi = 3.14159265358979; OFS = "," }
    NR == 1 { print $0, "branin", "currin"; next }
    { u = 15 * $1 - 5; v = 15 * $2
      b = (v - 5.1 / (4 * pi * pi) * u * u + 5 / pi * u - 6) ^ 2 + 10 * (1 - 1 / (8 * pi)) * cos(u) + 10
      e = ($2 > 0) ? 1 - exp(-1 / (2 * $2)) : 1; x = $1
      c = e * (2300 * x^3 + 1900 * x^2 + 2092 * x + 60) / (100 * x^3 + 500 * x^2 + 4 * x + 20)
      print $0, b, c }' "$tmp/bc_design.csv" >"$tmp/bc_obs.csv"
"$LABLOOP" plan "$bc_conf" --data "$tmp/bc_obs.csv" >"$tmp/bc1.csv" 2>"$tmp/err" ||
    fail "model-based plan: exit $? ($(cat "$tmp/err"))"
"$LABLOOP" plan "$bc_conf" --data "$tmp/bc_obs.csv" >"$tmp/bc2.csv"
[ "$(wc -l <"$tmp/bc1.csv")" -eq 5 ] || fail "model-based: $(wc -l <"$tmp/bc1.csv") lines"
cmp -s "$tmp/bc1.csv" "$tmp/bc2.csv" || fail "model-based proposals differ between runs"
awk -F, 'NR > 1 && (NF != 2 || $1 < 0 || $1 > 1 || $2 < 0 || $2 > 1) { bad++ } END { exit bad > 0 }' \
    "$tmp/bc1.csv" || fail "model-based proposal out of bounds"
"$LABLOOP" plan "$bc_conf" --data "$tmp/bc_obs.csv" --pending <(head -3 "$tmp/bc1.csv") \
    --batch 3 >"$tmp/bc3.csv" || fail "model-based with pending: exit $?"
[ "$(wc -l <"$tmp/bc3.csv")" -eq 4 ] || fail "model-based --batch 3: $(wc -l <"$tmp/bc3.csv") lines"

# --- --explain: the same rows with source, acquisition and the models' predictions ------------
"$LABLOOP" plan "$bc_conf" --data "$tmp/bc_obs.csv" --explain "$tmp/bc_why.csv" >"$tmp/bc4.csv" ||
    fail "--explain: exit $?"
cmp -s "$tmp/bc1.csv" "$tmp/bc4.csv" || fail "--explain changed the proposals on standard output"
want_head="$(head -1 "$tmp/bc1.csv"),source,acquisition,branin_predicted,branin_sd,currin_predicted,currin_sd"
[ "$(head -1 "$tmp/bc_why.csv")" = "$want_head" ] || fail "--explain header: $(head -1 "$tmp/bc_why.csv")"
[ "$(cut -d, -f1-2 "$tmp/bc_why.csv" | tail -n +2)" = "$(tail -n +2 "$tmp/bc1.csv")" ] ||
    fail "--explain rows are not the proposals"
# model rows: a positive acquisition, finite predictions, positive standard deviations, and
# Currin's prediction inside its range (about 1 .. 14)
awk -F, 'NR > 1 && !($3 == "model" && $4 > 0 && $6 > 0 && $8 > 0 && $7 > 0 && $7 < 20) { bad++ }
    END { exit (bad > 0 || NR != 5) }' "$tmp/bc_why.csv" || fail "--explain model rows: $(cat "$tmp/bc_why.csv")"
"$LABLOOP" plan "$pv_conf" --explain "$tmp/pv_why.csv" >/dev/null || fail "--explain design: exit $?"
awk -F, 'NR > 1 && !($7 == "design" && $9 == "" && $10 == "") { bad++ } END { exit bad > 0 }' \
    "$tmp/pv_why.csv" || fail "--explain design rows: $(cat "$tmp/pv_why.csv")"

# --- bad input: exit 2 and FILE:LINE on stderr ---------------------------------------------
# expect_bad NAME PATTERN ARGS...: runs labloop plan ARGS, wants exit 2 and PATTERN in stderr
expect_bad() {
    local name=$1 pattern=$2
    shift 2
    "$LABLOOP" plan "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ $rc -ne 2 ]; then
        fail "$name: exit $rc, want 2 (stderr: $(cat "$tmp/err"))"
    elif ! grep -q -- "$pattern" "$tmp/err"; then
        fail "$name: stderr '$(cat "$tmp/err")' lacks '$pattern'"
    elif [ -s "$tmp/out" ]; then
        fail "$name: printed proposals despite the error"
    fi
}
hdr="x0,x1,branin,currin"
printf '%s\n0.5,0.5,10,3\n' "x0,x1,branin" >"$tmp/missing.csv"
expect_bad "missing column" "missing.csv:1: missing column 'currin'" "$bc_conf" --data "$tmp/missing.csv"
printf '%s,x2\n0.5,0.5,10,3,1\n' "$hdr" >"$tmp/extra.csv"
expect_bad "extra column" "extra.csv:1:.*unknown column 'x2'" "$bc_conf" --data "$tmp/extra.csv"
printf 'x0,x1,x0,branin,currin\n' >"$tmp/dup.csv"
expect_bad "duplicate column" "dup.csv:1:.*appears twice" "$bc_conf" --data "$tmp/dup.csv"
printf '%s\n0.5,0.5,10,3\n0.5,0.2,nan,3\n' "$hdr" >"$tmp/nan.csv"
expect_bad "NaN" "nan.csv:3:.*not a finite number" "$bc_conf" --data "$tmp/nan.csv"
printf '%s\n0.5,0.5,10,3\n0.5,abc,1,3\n' "$hdr" >"$tmp/text.csv"
expect_bad "text in a number" "text.csv:3:.*'abc' is not a number" "$bc_conf" --data "$tmp/text.csv"
: >"$tmp/empty.csv"
expect_bad "empty file" "empty.csv:1: empty file" "$bc_conf" --data "$tmp/empty.csv"
printf '%s\n0.5,0.5,10,3\n1.5,0.5,10,3\n' "$hdr" >"$tmp/bounds.csv"
expect_bad "value outside bounds" "bounds.csv:3: parameter 'x0' = 1.5 is outside" "$bc_conf" --data "$tmp/bounds.csv"
printf '%s\n0.5,0.5,10,3,7\n' "$hdr" >"$tmp/toomany.csv"
expect_bad "too many fields" "toomany.csv:2:.*too many fields" "$bc_conf" --data "$tmp/toomany.csv"
printf '%s\n0.5,0.5,10\n' "$hdr" >"$tmp/toofew.csv"
expect_bad "too few fields" "toofew.csv:2:.*too few fields" "$bc_conf" --data "$tmp/toofew.csv"
printf '%s\n0.5,0.5,10,3\n' "$hdr" >"$tmp/pend_obj.csv"
expect_bad "objectives in pending" "pend_obj.csv:1:.*unknown column 'branin'" "$bc_conf" --pending "$tmp/pend_obj.csv"
expect_bad "missing data file" "nonexistent.csv" "$bc_conf" --data "$tmp/nonexistent.csv"
sed 's/low = 0.0; high = 1.0; },$/low = 1.0; high = 0.0; },/' "$bc_conf" >"$tmp/inverted.conf"
expect_bad "inverted bounds" "inverted.conf:11: parameter 'x0': bounds inverted" "$tmp/inverted.conf"
sed 's/name = "x1"/name = "x0"/' "$bc_conf" >"$tmp/dupparam.conf"
expect_bad "duplicate parameter" "dupparam.conf:12: parameter 'x0' is defined twice" "$tmp/dupparam.conf"
sed 's/goal = "min"; ref = 18.0;/goal = "lowest"; ref = 18.0;/' "$bc_conf" >"$tmp/goal.conf"
expect_bad "unknown goal" "goal.conf:15: objective 'branin': unknown goal" "$tmp/goal.conf"
sed 's/acquisition = "ehvi"/acquisition = "qnehvi"/' "$bc_conf" >"$tmp/acq.conf"
expect_bad "unknown acquisition" "acq.conf:9: campaign: unknown acquisition" "$tmp/acq.conf"
printf 'campaign: { parameters = ( { name = "a"; low = 0; high = 1; } ) \n' >"$tmp/syntax.conf"
expect_bad "syntax error" "syntax.conf:[0-9]*: " "$tmp/syntax.conf"
expect_bad "missing campaign file" "nonexistent.conf" "$tmp/nonexistent.conf"
expect_bad "bad --batch" "--batch" "$bc_conf" --batch 0
expect_bad "bad --batch text" "--batch" "$bc_conf" --batch four
expect_bad "unknown option" "unknown option" "$bc_conf" --frobnicate
expect_bad "no campaign" "usage"
# binary garbage (fixed, so the test is repeatable) as data and as campaign: refused with a
# line, never a crash
LC_ALL=C awk 'BEGIN { srand(7); printf "x0,x1,branin,currin\n"
                      for (i = 0; i < 3000; i++) printf "%c", int(rand() * 255) + 1 }' \
    >"$tmp/garbage.csv"
expect_bad "garbage rows" "garbage.csv:[0-9]*:" "$bc_conf" --data "$tmp/garbage.csv"
printf 'campaign: {\001\377 = ;; parameters = ( { name = \n' >"$tmp/garbage.conf"
expect_bad "garbage campaign" "garbage.conf:[0-9]*:" "$tmp/garbage.conf"
expect_bad "explain file" "no/such/dir/why.csv: cannot write" "$pv_conf" --explain "$tmp/no/such/dir/why.csv"
# a failed plan leaves no explanation behind (the file is opened only once there are proposals)
expect_bad "explain after bad data" "garbage.csv:[0-9]*:" "$bc_conf" --data "$tmp/garbage.csv" --explain "$tmp/stale_why.csv"
[ ! -e "$tmp/stale_why.csv" ] || fail "a failed plan left its --explain file"
# a write error on the explanation is reported (exit 1), and nothing is removed in its place
if [ -w /dev/full ]; then
    "$LABLOOP" plan "$pv_conf" --explain /dev/full >/dev/null 2>"$tmp/err"
    rc=$?
    [ $rc -eq 1 ] && grep -q "/dev/full: cannot write" "$tmp/err" ||
        fail "--explain /dev/full: exit $rc ($(cat "$tmp/err"))"
    [ -c /dev/full ] || fail "--explain /dev/full removed the device"
fi

# --- a computed objective (expr): its column is optional in OBS.csv and checked when given --
cat >"$tmp/cost.conf" <<'EOF'
campaign: { batch = 4; initial = 8; seed = 3;
  parameters = ( { name = "a"; low = 0; high = 1; }, { name = "b"; low = 0; high = 1; } );
  objectives = ( { name = "y"; goal = "max"; ref = -2; },
                 { name = "cost"; goal = "min"; ref = 12; expr = "1 + 10 * ${b} + ${a}"; } ); };
EOF
"$LABLOOP" plan "$tmp/cost.conf" --batch 8 >"$tmp/cost_design.csv" || fail "cost design: exit $?"
awk -F, 'BEGIN { OFS = "," } NR == 1 { print $0, "y"; next } { print $0, -($1 - 0.3) ^ 2 }' \
    "$tmp/cost_design.csv" >"$tmp/cost_obs.csv"
awk -F, 'BEGIN { OFS = "," } NR == 1 { print "cost", $0; next } { print 1 + 10 * $2 + $1, $0 }' \
    "$tmp/cost_obs.csv" >"$tmp/cost_obs_full.csv"
"$LABLOOP" plan "$tmp/cost.conf" --data "$tmp/cost_obs.csv" --explain "$tmp/cost_why.csv" \
    >"$tmp/cost1.csv" 2>"$tmp/err" || fail "computed objective left out: exit $? ($(cat "$tmp/err"))"
"$LABLOOP" plan "$tmp/cost.conf" --data "$tmp/cost_obs_full.csv" >"$tmp/cost2.csv" 2>"$tmp/err" ||
    fail "computed objective given: exit $? ($(cat "$tmp/err"))"
cmp -s "$tmp/cost1.csv" "$tmp/cost2.csv" || fail "the computed column changed the proposals"
# the explanation predicts the cost exactly, with sd 0
awk -F, 'NR > 1 { c = 1 + 10 * $2 + $1; d = $7 - c; if (d < 0) d = -d
                  if (d > 1e-4 * c || $8 != 0 || $5 == "" || $6 <= 0) bad++ }
         END { exit (NR != 5 || bad > 0) }' "$tmp/cost_why.csv" ||
    fail "--explain of a computed objective: $(cat "$tmp/cost_why.csv")"
awk -F, 'BEGIN { OFS = "," } NR == 4 { $1 = $1 + 0.5 } { print }' "$tmp/cost_obs_full.csv" \
    >"$tmp/cost_obs_bad.csv"
expect_bad "computed objective that disagrees" \
    "cost_obs_bad.csv:4: .*column 'cost' is .* its expression gives" \
    "$tmp/cost.conf" --data "$tmp/cost_obs_bad.csv"

if [ $failures -ne 0 ]; then
    echo "$failures failure(s)" >&2
    exit 1
fi
echo "labloop plan: contract holds"
