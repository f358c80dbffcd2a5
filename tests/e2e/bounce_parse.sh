#!/usr/bin/env bash
# bounce_parse.sh - end-to-end test of kurierctl bounce parse: the whole
# real-world corpus (../shared/testdata/bounces, beside the repository;
# its absence fails the test) through --json, every line checked with
# python3's json module (one object per file, in order, with the fields
# and values the contract names); the table output on a few returns; a
# file that cannot be read among good ones (named on stderr, the others
# still printed, exit 1); hostile bytes (NUL, invalid UTF-8, control
# characters) that must still give valid JSON; usage errors (exit 2).
# No Redis and no configuration are needed: none is given.
#
# Environment: KURIER_BIN (kurierctl); see lib.sh.

source "$(dirname "$0")/lib.sh"

e2e_require KURIER_BIN

e2e_init
cd "$(dirname "$0")/../.." || exit 1

CTL=$KURIER_BIN/kurierctl
CORPUS=../shared/testdata/bounces

if [ ! -d "$CORPUS/bounce" ] || [ ! -d "$CORPUS/not-bounce" ]; then
	fail "corpus at $CORPUS" "not found from $(pwd)"
	e2e_done
	exit 1
fi
pass "corpus at $CORPUS"

files=("$CORPUS"/bounce/* "$CORPUS"/not-bounce/*)
nfiles=${#files[@]}

# --- --json over the corpus ------------------------------------------------------

# No -c: the default config path need not exist for bounce parse.
"$CTL" bounce parse --json "${files[@]}" >"$E2E_TMP/corpus.json" 2>"$E2E_TMP/corpus.err"
rc=$?
check_eq "corpus --json: exit 0" "$rc" 0
check_eq "corpus --json: nothing on stderr" "$(cat "$E2E_TMP/corpus.err")" ""
printf '%s\n' "${files[@]}" >"$E2E_TMP/files"

# validate.py prints "ok" lines or "bad: ..." lines, then the summary.
cat >"$E2E_TMP/validate.py" <<'PY'
import collections, json, sys

files = [l.rstrip("\n") for l in open(sys.argv[1], encoding="utf-8")]
lines = open(sys.argv[2], "rb").read().split(b"\n")
if lines and lines[-1] == b"":
    lines.pop()
bad = []
types = collections.Counter()
classes = collections.Counter()
recognised = counted = 0
if len(lines) != len(files):
    bad.append("%d lines for %d files" % (len(lines), len(files)))
for i, raw in enumerate(lines):
    try:
        o = json.loads(raw.decode("utf-8"))
    except Exception as e:
        bad.append("line %d: not JSON: %s" % (i + 1, e))
        continue
    if set(o) != {"file", "type", "recipients"}:
        bad.append("line %d: keys %s" % (i + 1, sorted(o)))
        continue
    if i < len(files) and o["file"] != files[i]:
        bad.append("line %d: file %s, want %s" % (i + 1, o["file"], files[i]))
    if o["type"] not in ("dsn", "complaint", "auto-reply", "none"):
        bad.append("%s: type %s" % (o["file"], o["type"]))
    types[o["type"]] += 1
    name = o["file"].rsplit("/", 1)[-1]
    ok = bool(o["recipients"]) and o["type"] in ("dsn", "complaint")
    for r in o["recipients"]:
        if set(r) != {"recipient", "status", "class", "reason", "remote_mta", "diagnostic"}:
            bad.append("%s: recipient keys %s" % (name, sorted(r)))
            continue
        if r["class"] not in ("hard", "soft", "complaint", "auto-reply", "none"):
            bad.append("%s: class %s" % (name, r["class"]))
        if not r["reason"]:
            bad.append("%s: no reason" % name)
        if r["class"] == "hard" and not r["status"].startswith("5."):
            bad.append("%s: hard with status %r" % (name, r["status"]))
        if not r["status"] and o["type"] != "complaint":
            ok = False
        classes[r["class"]] += 1
    if "/not-bounce/" in o["file"] and (o["type"] != "none" or o["recipients"]):
        bad.append("%s: not a bounce, read as %s" % (name, o["type"]))
    if name.startswith("arf-") and o["type"] != "complaint":
        bad.append("%s: %s, not complaint" % (name, o["type"]))
    if name.startswith("rfc3834-") and o["type"] != "auto-reply":
        bad.append("%s: %s, not auto-reply" % (name, o["type"]))
    if name.startswith("rfc3464-") and not (o["recipients"] and o["recipients"][0]["status"]):
        bad.append("%s: no recipient with a status" % name)
    if name.startswith(("lhost-", "rhost-", "rfc3464-")):
        counted += 1
        recognised += ok
for b in bad:
    print("bad:", b)
print("lines %d" % len(lines))
print("recognised %d of %d" % (recognised, counted))
print("types " + " ".join("%s=%d" % kv for kv in sorted(types.items())))
print("classes " + " ".join("%s=%d" % kv for kv in sorted(classes.items())))
PY
summary=$(python3 "$E2E_TMP/validate.py" "$E2E_TMP/files" "$E2E_TMP/corpus.json" 2>&1)
echo "$summary" | sed -n '/^types\|^classes\|^recognised/s/^/# /p'
check_eq "corpus --json: every line valid, as the contract says" \
	"$(echo "$summary" | grep -c '^bad:')" 0
check_eq "corpus --json: one line per file" "$(echo "$summary" | sed -n 's/^lines //p')" "$nfiles"
recog=$(echo "$summary" | sed -n 's/^recognised \([0-9]*\) of .*/\1/p')
counted=$(echo "$summary" | sed -n 's/^recognised [0-9]* of //p')
check_eq "corpus --json: 606 lhost, rhost and rfc3464 returns" "$counted" 606
if [ -n "$recog" ] && [ "$((recog * 100))" -ge "$((counted * 95))" ]; then
	pass "corpus --json: at least 95 % recognised ($recog of $counted)"
else
	fail "corpus --json: at least 95 % recognised" "got $recog of $counted"
fi
echo "$summary" | grep '^bad:' | head -20 | sed 's/^/#   /'

# --- the table ---------------------------------------------------------------------

B=$CORPUS/bounce
check_exit "table: exit 0" 0 "$CTL" bounce parse "$B/lhost-postfix-01.eml" "$B/rfc3834-01.eml" \
	"$B/arf-01.eml" "$CORPUS/not-bounce/is-not-bounce-01.eml"
check_match "table: heading" "$E2E_OUT" "^FILE  TYPE"
check_match "table: the Postfix return, hard user-unknown" \
	"$(printf '%s\n' "$E2E_OUT" | grep -A1 'lhost-postfix-01\.eml  dsn$' | tail -n 1)" \
	"^ +[^ ]+@[^ ]+ +5\.1\.1 +hard +user-unknown "
check_match "table: the auto-reply" "$E2E_OUT" "rfc3834-01\.eml  auto-reply"
check_match "table: the complaint, with its feedback type" "$E2E_OUT" "arf-01\.eml  complaint \(abuse\)"
check_match "table: not a bounce" "$E2E_OUT" "is-not-bounce-01\.eml  none, no recipient"

# --- unreadable files ---------------------------------------------------------------

"$CTL" bounce parse --json "$B/lhost-qmail-01.eml" "$E2E_TMP/no-such-file.eml" "$B/lhost-exim-01.eml" \
	>"$E2E_TMP/out" 2>"$E2E_TMP/err"
rc=$?
check_eq "unreadable: exit 1" "$rc" 1
check_match "unreadable: named on stderr" "$(cat "$E2E_TMP/err")" \
	"kurierctl: cannot read .*no-such-file\.eml: No such file or directory"
check_eq "unreadable: the readable files still printed" "$(wc -l <"$E2E_TMP/out")" 2
mkdir "$E2E_TMP/adir"
check_exit "a directory: exit 1" 1 "$CTL" bounce parse "$E2E_TMP/adir"
check_match "a directory: named" "$E2E_OUT" "cannot read .*adir: Is a directory"

# --- hostile bytes --------------------------------------------------------------------

printf 'From: MAILER-DAEMON@x.example\nSubject: failure notice\n\n<bad\001\377\376@example.net>:\n550 5.1.1 \033[31mred\000 \xc3\x28 \xed\xa0\x80 "q" \\ end\n' \
	>"$E2E_TMP/hostile.eml"
printf '' >"$E2E_TMP/empty.eml"
head -c 300000 /dev/urandom >"$E2E_TMP/random.eml"
check_exit "hostile: exit 0" 0 "$CTL" bounce parse --json "$E2E_TMP/hostile.eml" "$E2E_TMP/empty.eml" \
	"$E2E_TMP/random.eml"
printf '%s\n' "$E2E_OUT" >"$E2E_TMP/hostile.json"
check_eq "hostile: three lines of valid JSON" "$(python3 -c '
import json, sys
n = 0
for l in open(sys.argv[1], "rb"):
    json.loads(l.decode("utf-8")); n += 1
print(n)' "$E2E_TMP/hostile.json" 2>&1)" 3
check_match "hostile: the empty file is none" "$E2E_OUT" '"file": "[^"]*empty\.eml", "type": "none", "recipients": \[\]'
check_exit "hostile: table exit 0" 0 "$CTL" bounce parse "$E2E_TMP/hostile.eml"
if printf '%s' "$E2E_OUT" | LC_ALL=C grep -q $'[\001\033\177]'; then
	fail "hostile: the table shows no control bytes"
else
	pass "hostile: the table shows no control bytes"
fi
check_exit "stdin: - reads standard input" 0 sh -c "\"$CTL\" bounce parse --json - <\"$B/lhost-qmail-01.eml\""
check_match "stdin: its line" "$E2E_OUT" '^\{"file": "-", "type": "dsn"'

# --- usage --------------------------------------------------------------------------

check_exit "usage: no file" 2 "$CTL" bounce parse
check_exit "usage: unknown option" 2 "$CTL" bounce parse --yaml "$B/lhost-qmail-01.eml"
check_match "usage: names the option" "$E2E_OUT" "unknown option \"--yaml\""

e2e_done
