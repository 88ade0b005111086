#!/bin/sh
# Replays each fuzz target's corpus (tests/fuzz/corpus/NAME/) once: every
# input that ever crashed or was interesting must still run clean.
fail=0; pass=0
for f in "$@"; do
	name=$(basename "$f")
	dir=tests/fuzz/corpus/${name#fuzz_}
	if [ ! -d "$dir" ] || [ -z "$(ls -A "$dir")" ]; then
		echo "replay: no corpus for $name in $dir"; fail=$((fail + 1)); continue
	fi
	n=$(ls "$dir" | wc -l)
	if "$f" -runs=0 "$dir" >"build/fuzz/$name.log" 2>&1; then
		echo "replay: $name: $n inputs ok"; pass=$((pass + 1))
	else
		echo "replay: $name FAILED (see build/fuzz/$name.log)"; tail -30 "build/fuzz/$name.log"; fail=$((fail + 1))
	fi
done
echo "fuzz-replay: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
