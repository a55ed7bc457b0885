#!/usr/bin/env bash
# labsim's command line: bad arguments exit 2 with a usage line, a bad fault spec or lab
# file stops startup with exit 1 and a <3> log line naming the problem, the world
# subcommand still evaluates the perovskite world (the dry-run script relies on it).
set -u
LABSIM=${LABSIM:-build/simulators/labsim}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() { # check DESCRIPTION COMMAND...: the command must succeed
    local what=$1
    shift
    if "$@"; then echo "ok - $what"; else echo "FAIL - $what"; fail=1; fi
}

"$LABSIM" --runtime-dir "$tmp" --speed -3 2>"$tmp/err"
check "--speed -3: exit 2" test $? -eq 2
check "--speed -3: message" grep -q "is not a positive number" "$tmp/err"
"$LABSIM" --runtime-dir "$tmp" --world granite 2>"$tmp/err"
check "--world granite: exit 2" test $? -eq 2
"$LABSIM" --speed 2 2>"$tmp/err"
check "no --runtime-dir: exit 2 with usage" test $? -eq 2
check "usage printed" grep -q "usage: labsim" "$tmp/err"
"$LABSIM" --help >"$tmp/out"
check "--help: exit 0" test $? -eq 0
sed 's/port = 15020;/port = 0;/' "${LL_SOURCE_DIR:-.}/config/lab.conf" >"$tmp/lab.conf"
"$LABSIM" --lab "$tmp/lab.conf" --runtime-dir "$tmp" --faults "robot.sneeze=0.1" 2>"$tmp/err"
check "unknown fault: exit 1" test $? -eq 1
check "unknown fault: named in a <3> line" grep -q "^<3>labsim: event=startup_failed reason=\"--faults: unknown fault 'robot.sneeze'\"" "$tmp/err"
check "no ready file after a failed start" test ! -e "$tmp/ready"
# the robot's Modbus server binds loopback only, unless --allow-remote (reliability.md S6)
sed 's/host = "127.0.0.1";/host = "0.0.0.0";/' "$tmp/lab.conf" >"$tmp/remote.conf"
"$LABSIM" --lab "$tmp/remote.conf" --runtime-dir "$tmp/r1" 2>"$tmp/err"
check "robot host 0.0.0.0: exit 1" test $? -eq 1
check "robot host 0.0.0.0: named, with the way out" grep -q "host '0.0.0.0' is not a loopback address.*--allow-remote" "$tmp/err"
mkdir -p "$tmp/r2"
"$LABSIM" --lab "$tmp/remote.conf" --runtime-dir "$tmp/r2" --allow-remote 2>"$tmp/err2" &
pid=$!
for _ in $(seq 100); do test -e "$tmp/r2/ready" && break; sleep 0.05; done
check "--allow-remote: starts" test -e "$tmp/r2/ready"
kill -TERM $pid
wait $pid
check "--allow-remote: stops cleanly" test $? -eq 0
printf 'lab: { name = "x"; instruments = ( { name = "r"; driver = "warp"; } ); };\n' >"$tmp/bad.conf"
"$LABSIM" --lab "$tmp/bad.conf" --runtime-dir "$tmp" 2>"$tmp/err"
check "bad lab file: exit 1" test $? -eq 1
check "bad lab file: the file is named" grep -q "bad.conf:" "$tmp/err"
printf 'fa,cs,iodide,anneal_c,anneal_min,spin_rpm\n0.78,0.05,0.87,101,10,4060\n' |
    "$LABSIM" world perovskite --noise-free >"$tmp/out"
check "world perovskite: the known optimum 22.79 %" grep -q "^0.78,0.05,0.87,101,10,4060,22.79" "$tmp/out"
exit $fail
