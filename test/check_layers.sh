#!/usr/bin/env bash
#
# test/check_layers.sh: the engine's files call each other in one direction only
# (README "Design notes": API files -> scheduling -> transitions -> storage helpers).
#
# Every src/*.c and src/*.h says its layer in its opening comment ("Layer: storage",
# "transitions", "scheduling" or "api").  This script fails (exit 1, naming the files) if
#   1. a file has no Layer line;
#   2. a file includes a header of a higher layer (an upward include);
#   3. the call graph of the built objects -- file A -> file B when A.o uses a symbol that
#      B.o defines (nm) -- has an upward edge or a circle (tsort), so what the headers
#      allow is also what the code does;
#   4. the C code writes pipeline.event anywhere but once, or changes a stage
#      ("SET stage") outside transition.c.
# Needs the objects (src/*.o): run it after make (scripts/test does).  Exit 0 = all hold.
set -euo pipefail
cd "$(dirname "$0")/.."

bad=0
err() { echo "check_layers: $*" >&2; bad=1; }

rank() {
	case $1 in
	storage) echo 0 ;; transitions) echo 1 ;; scheduling) echo 2 ;; api) echo 3 ;;
	*) echo -1 ;;
	esac
}

declare -A layer
for f in src/*.c src/*.h; do
	l=$(head -n 40 "$f" | sed -n 's/^ \* Layer: \([a-z]*\).*/\1/p' | head -n 1)
	if [[ -z $l || $(rank "$l") -lt 0 ]]; then
		err "$f: no \"Layer: storage|transitions|scheduling|api\" line in its opening comment"
		continue
	fi
	layer[$(basename "$f")]=$l
done

# 2. includes go down (or stay in the layer)
for f in src/*.c src/*.h; do
	b=$(basename "$f")
	[[ -n ${layer[$b]:-} ]] || continue
	while read -r h; do
		[[ -f src/$h ]] || continue	# PostgreSQL's headers
		[[ -n ${layer[$h]:-} ]] || continue
		if (($(rank "${layer[$h]}") > $(rank "${layer[$b]}"))); then
			err "$f (${layer[$b]}) includes $h (${layer[$h]}): an upward include"
		fi
	done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f")
done

# 3. the call graph of the objects
objs=(src/*.o)
if [[ ! -e ${objs[0]} ]]; then
	err "no src/*.o: build first (make)"
else
	declare -A definer
	for o in "${objs[@]}"; do
		while read -r sym; do definer[$sym]=$(basename "$o" .o).c; done \
			< <(nm -g --defined-only "$o" | awk '{print $3}')
	done
	edges=$(mktemp)
	trap 'rm -f "$edges"' EXIT
	for o in "${objs[@]}"; do
		a=$(basename "$o" .o).c
		while read -r sym; do
			b=${definer[$sym]:-}
			[[ -n $b && $b != "$a" ]] || continue
			echo "$a $b" >>"$edges"
			if [[ -n ${layer[$a]:-} && -n ${layer[$b]:-} ]] &&
				(($(rank "${layer[$b]}") > $(rank "${layer[$a]}"))); then
				err "$a (${layer[$a]}) calls $sym in $b (${layer[$b]}): an upward call"
			fi
		done < <(nm -u "$o" | awk '{print $2}')
	done
	sort -u -o "$edges" "$edges"
	# tsort: a file that needs another is listed after it; a circle is reported on stderr
	if ! out=$(tsort "$edges" 2>&1 >/dev/null) || [[ -n $out ]]; then
		err "the call graph of src/*.c has a circle:"
		echo "$out" >&2
	fi
	echo "check_layers: call graph: $(wc -l <"$edges") edges among ${#objs[@]} objects"
fi

# 4. one writer of events and stages
n=$(cat src/*.c src/*.h | grep -c 'INSERT INTO pipeline\.event' || true)
((n == 1)) || err "INSERT INTO pipeline.event appears $n times in src/ (must be once, in transition.c)"
grep -l 'INSERT INTO pipeline\.event' src/*.c src/*.h | grep -qx 'src/transition.c' ||
	err "INSERT INTO pipeline.event is not in src/transition.c"
for f in src/*.c; do
	[[ $f == src/transition.c ]] && continue
	if grep -n 'SET stage\b' "$f" >&2; then
		err "$f changes a stage (SET stage): only transition.c may"
	fi
done

if ((bad)); then
	echo "check_layers: FAILED" >&2
	exit 1
fi
echo "check_layers: ok (layers hold, no circle, one event writer)"
