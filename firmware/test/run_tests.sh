#!/bin/sh
# run_tests.sh NAME RUNNER PROGRAM...
# Runs each Unity-style test program (through RUNNER, e.g. qemu-i386, when
# that is not empty), prints its output, and closes with one line
#   NAME: P passed, F failed
# counted over all programs. A program that dies before its summary line
# (a sanitizer report, a crash) counts as one more failure. Exits 1 when
# anything failed.
name=$1
runner=$2
shift 2
passed=0
failed=0
for prog in "$@"; do
  out=$(mktemp)
  if [ -n "$runner" ]; then
    $runner "$prog" >"$out" 2>&1
  else
    "$prog" >"$out" 2>&1
  fi
  rc=$?
  cat "$out"
  summary=$(grep -E '^[0-9]+ Tests [0-9]+ Failures [0-9]+ Ignored$' "$out" | tail -n 1)
  rm -f "$out"
  if [ -z "$summary" ]; then
    echo "$prog: exited with status $rc before its summary line"
    failed=$((failed + 1))
    continue
  fi
  tests=$(echo "$summary" | cut -d' ' -f1)
  fails=$(echo "$summary" | cut -d' ' -f3)
  passed=$((passed + tests - fails))
  failed=$((failed + fails))
  if [ "$rc" -ne 0 ] && [ "$fails" -eq 0 ]; then
    echo "$prog: exited with status $rc after passing"
    failed=$((failed + 1))
  fi
done
echo "$name: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
