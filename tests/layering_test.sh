#!/usr/bin/env bash
# layering_test.sh - tests/layering.sh against small trees that break
# each rule once, and one that breaks none: each must be named, the
# clean tree must pass.  Prints "N passed, N failed".
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kurier-layering.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

# tree NAME FILE INCLUDE...: a tree with FILE including each INCLUDE.
tree() {
	local dir=$tmp/$1 file=$2
	shift 2
	mkdir -p "$dir/$(dirname "$file")"
	: >"$dir/$file"
	for inc in "$@"; do
		echo "#include \"$inc\"" >>"$dir/$file"
	done
	echo "$dir"
}

# expect NAME STATUS PATTERN DIR
expect() {
	local out rc
	out=$("$here/layering.sh" "$4" 2>&1)
	rc=$?
	if [ "$rc" -eq "$2" ] && grep -q -- "$3" <<<"$out"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		echo "FAIL $1: exit $rc, output: $out"
	fi
}

expect "core reaches out" 1 "core/ may not include queue/" "$(tree t1 core/a.c core/b.h queue/queue.h)"
expect "queue includes policy" 1 "queue/ may not include policy/" "$(tree t2 queue/a.c policy/policy.h)"
expect "policy includes queue" 1 "policy/ may not include queue/" "$(tree t3 policy/a.c queue/queue.h)"
expect "relay includes deliver" 1 "relay/ may not include deliver/" "$(tree t4 relay/a.c deliver/deliver.h)"
expect "deliver includes mailbox" 1 "deliver/ may not include mailbox/" "$(tree t5 deliver/a.c mailbox/store.h)"
expect "mailbox includes relay" 1 "mailbox/ may not include relay/" "$(tree t6 mailbox/a.c relay/smtpd.h)"
expect "relay includes cmd" 1 "relay/ may not include cmd/" "$(tree t7 relay/a.c cmd/ctl.h)"
expect "tests include cmd" 1 "tests/ may not include cmd/" "$(tree t8 tests/a.c cmd/ctl.h)"
expect "foreign _int.h" 1 "internal header" "$(tree t9 deliver/a.c relay/smtpd_int.h)"
expect "bare include" 1 "name the folder" "$(tree t10 relay/a.c smtpd.h)"
expect "clean tree" 0 "ok - layering: 7 includes in 1 files" \
	"$(tree t11 cmd/a.c core/buf.h queue/queue.h policy/policy.h relay/smtpd.h deliver/deliver.h mailbox/store.h cmd/ctl.h)"
expect "own _int.h" 0 "ok - layering" "$(tree t12 relay/a.c relay/smtpd_int.h core/buf.h queue/qid.h policy/check.h)"

echo "layering: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
