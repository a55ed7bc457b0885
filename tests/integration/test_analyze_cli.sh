#!/bin/bash
# test_analyze_cli — `labloop analyze MEASUREMENT.json` as DESIGN.md specifies it: the example
# station messages give JSON with the documented numbers and exit 0; invalid input (table
# below) exits 2 with one line on standard error naming the file and the bad field.
set -u

LABLOOP=${LABLOOP:?LABLOOP is not set}
SRC=${LL_SOURCE_DIR:?LL_SOURCE_DIR is not set}
DATA="$SRC/tests/data/measurements"
PY=/usr/bin/python3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
failures=0

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# --- valid messages: exit 0, JSON on stdout with the keys of each kind ---------------------
check_ok() { # file, then python expressions over d that must all be true
    local file=$1
    shift
    if ! "$LABLOOP" analyze "$file" >"$TMP/out.json" 2>"$TMP/err.txt"; then
        fail "$file: exit $? ($(cat "$TMP/err.txt"))"
        return
    fi
    for expr in "$@"; do
        if ! "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if ($expr) else 1)" \
            "$TMP/out.json"; then
            fail "$file: expected $expr in $(head -c 600 "$TMP/out.json")"
        fi
    done
}

check_ok "$DATA/jv_pair.json" \
    "d['kind'] == 'jv' and d['analysis_version'] == '1.0'" \
    "abs(d['pce_pct'] - 20.0) < 0.2" \
    "abs(d['voc_v'] - 1.1657) < 0.002" \
    "abs(d['ff'] - 0.7889) < 0.005" \
    "'jsc_ma_cm2' in d and abs(d['hysteresis_index'] - 0.08) < 0.02" \
    "d['sample'] == 'S0041' and d['seq'] == 17 and d['warnings'] == []"
check_ok "$DATA/jv_load_convention.json" \
    "abs(d['pce_pct'] - 20.1178) < 0.05" "'hysteresis_index' not in d" \
    "d['details']['sweeps'][0]['load_convention'] is True"
check_ok "$DATA/eis_llzo_3temps.json" \
    "d['kind'] == 'eis'" \
    "abs(d['sigma_s_cm'] / 3.333e-4 - 1) < 0.03" \
    "'r_bulk_ohm' in d and 'fit_residual' in d and d['fit_residual'] < 0.05" \
    "d['bulk_resolved'] is False" \
    "abs(d['ea_ev'] - 0.42) < 0.03 and d['ea_sd_ev'] > 0" \
    "len(d['details']['spectra']) == 3"
check_ok "$DATA/stability_measured.json" \
    "d['t80_measured'] is True and d['t80_lower_bound'] is False" \
    "abs(d['t80_h'] - 420) < 15" \
    "abs(d['log10_t80_h'] - __import__('math').log10(d['t80_h'])) < 1e-9"
check_ok "$DATA/stability_early.json" \
    "d['t80_measured'] is False and d['t80_lower_bound'] is True" \
    "d['t80_h'] >= d['last_time_h'] == 600" \
    "d['t80_sd_h'] > 0 and abs(d['t80_h'] / 2000 - 1) < 0.25"

# standard input
if ! "$LABLOOP" analyze - <"$DATA/jv_pair.json" >/dev/null 2>&1; then
    fail "analyze - (standard input) failed"
fi

# --- invalid input: exit 2 and a message naming the file and the field --------------------
# name | how to make the file from jv_pair.json (python, d = the message) or a shell command |
# text the message must contain
mutate() { # out, python statements over d
    "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); $2; open(sys.argv[2],'w').write(json.dumps(d))" \
        "$DATA/jv_pair.json" "$1"
}

check_bad() { # file, expected text
    local file=$1 want=$2 status
    "$LABLOOP" analyze "$file" >"$TMP/out.json" 2>"$TMP/err.txt"
    status=$?
    if [ "$status" -ne 2 ]; then
        fail "$file: exit $status, want 2 (stderr: $(cat "$TMP/err.txt"))"
    elif ! grep -qF -- "$want" "$TMP/err.txt"; then
        fail "$file: message '$(cat "$TMP/err.txt")' does not contain '$want'"
    elif ! grep -qF -- "$file" "$TMP/err.txt"; then
        fail "$file: message '$(cat "$TMP/err.txt")' does not name the file"
    elif [ -s "$TMP/out.json" ]; then
        fail "$file: printed something on standard output"
    fi
}

mutate "$TMP/lengths.json" "d['data']['sweeps'][1]['current_ma_cm2'].pop()"
check_bad "$TMP/lengths.json" "data.sweeps[1].current_ma_cm2: 140 points but voltage_v has 141"
mutate "$TMP/nan.json" "d['data']['sweeps'][0]['voltage_v'][12] = 'NaN'"
check_bad "$TMP/nan.json" "data.sweeps[0].voltage_v[12]: not a finite number"
mutate "$TMP/area.json" "d['data']['area_cm2'] = -0.09"
check_bad "$TMP/area.json" "data.area_cm2: must be > 0"
mutate "$TMP/one.json" "d['data']['sweeps'][0]['voltage_v'] = [1.0]; d['data']['sweeps'][0]['current_ma_cm2'] = [1.0]"
check_bad "$TMP/one.json" "data.sweeps[0].voltage_v: 1 point, need 3"
mutate "$TMP/missing.json" "del d['data']['irradiance_mw_cm2']"
check_bad "$TMP/missing.json" "data.irradiance_mw_cm2: missing"
mutate "$TMP/kind.json" "d['kind'] = 'xrd'"
check_bad "$TMP/kind.json" "kind: unknown kind"
mutate "$TMP/wrongkind.json" "d['kind'] = 'eis'"
check_bad "$TMP/wrongkind.json" "data.thickness_cm: missing"
mutate "$TMP/novoc.json" "s = d['data']['sweeps']; s[0]['current_ma_cm2'] = [abs(x) + 1 for x in s[0]['current_ma_cm2']]"
check_bad "$TMP/novoc.json" "data.sweeps[0]: the curve never crosses J = 0"
mutate "$TMP/nov0.json" "s = d['data']['sweeps'][0]; s['voltage_v'] = [v + 0.5 for v in s['voltage_v']]"
check_bad "$TMP/nov0.json" "data.sweeps[0]: the curve never crosses V = 0"
printf '{"v": 1, "type": "hello", "station": "jv-1", "kinds": ["jv"]}' >"$TMP/hello.json"
check_bad "$TMP/hello.json" "type: a \"hello\" message has no data"
printf '{"v": 1, "type": ' >"$TMP/broken.json"
check_bad "$TMP/broken.json" "invalid JSON"
: >"$TMP/empty.json"
check_bad "$TMP/empty.json" "empty file"
check_bad "$TMP/does-not-exist.json" "cannot open"
mkdir "$TMP/adir.json"
check_bad "$TMP/adir.json" "cannot read"
head -c $((4 * 1024 * 1024 + 1)) /dev/zero | tr '\0' ' ' >"$TMP/big.json"
check_bad "$TMP/big.json" "oversize"

# usage
"$LABLOOP" analyze >/dev/null 2>&1
[ $? -eq 2 ] || fail "analyze without a file: want exit 2"
"$LABLOOP" analyze --help | grep -q "usage: labloop analyze" || fail "analyze --help"

if [ "$failures" -ne 0 ]; then
    echo "$failures failure(s)" >&2
    exit 1
fi
echo "test_analyze_cli: all checks passed"
