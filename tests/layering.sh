#!/usr/bin/env bash
# layering.sh - the dependency rules of docs/design.md, read off the
# #include "..." lines of every C source and header in the tree:
#   1. core/ includes nothing outside core/.
#   2. queue/ and policy/ include only core/ (and themselves), never each other.
#   3. relay/, deliver/ and mailbox/ include core/, queue/ and policy/
#      (and themselves), never each other.
#   4. cmd/ may include anything; nothing includes cmd/.
#   5. A folder's *_int.h is included only by files inside that folder.
# Every quoted include names its path from the top of the tree
# ("core/buf.h"), so the folder it reaches is the first path component.
# Prints one line per violation (file:line: the include, and the rule)
# and exits 1 if there is any.  `layering.sh DIR` checks the tree at DIR
# (tests/layering_test.sh feeds it trees that break each rule).
set -uo pipefail
cd "${1:-$(dirname "$0")/..}" || exit 2

bad=0
files=0
includes=0

allowed() {
	local from=$1 to=$2
	[ "$from" = "$to" ] && return 0
	case "$from" in
	core) return 1 ;;
	queue | policy) [ "$to" = core ] ;;
	relay | deliver | mailbox) case "$to" in core | queue | policy) return 0 ;; *) return 1 ;; esac ;;
	cmd | tests) [ "$to" != cmd ] || [ "$from" = cmd ] ;;
	*) return 1 ;;
	esac
}

while IFS= read -r file; do
	files=$((files + 1))
	from=${file%%/*}
	while IFS=: read -r line text; do
		[ -n "$line" ] || continue
		includes=$((includes + 1))
		path=${text#*\"}
		path=${path%%\"*}
		to=${path%%/*}
		if [ "$to" = "$path" ]; then
			echo "$file:$line: #include \"$path\": name the folder (\"core/$path\", ...)"
			bad=$((bad + 1))
			continue
		fi
		if ! allowed "$from" "$to"; then
			echo "$file:$line: #include \"$path\": $from/ may not include $to/"
			bad=$((bad + 1))
		fi
		case "$path" in
		*_int.h)
			if [ "$from" != "$to" ]; then
				echo "$file:$line: #include \"$path\": $to/'s internal header, used only inside $to/"
				bad=$((bad + 1))
			fi
			;;
		esac
	done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$file" | sed 's/^\([0-9]*\):/\1:/')
done < <(find . \( -path ./build -o -path ./.git -o -name node_modules \) -prune -o \
	-type f \( -name '*.c' -o -name '*.h' \) -print | sed 's|^\./||' | sort)

if [ "$bad" -gt 0 ]; then
	echo "layering: $bad include(s) break the rules of docs/design.md"
	exit 1
fi
echo "ok - layering: $includes includes in $files files follow the rules"
