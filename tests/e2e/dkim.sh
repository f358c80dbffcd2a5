#!/usr/bin/env bash
# dkim.sh - end-to-end test of DKIM keys and signatures: keys made by
# deliver/dkimkey (through dkimsign_tool, and through kurierctl dkim
# keygen once kurierctl has it), sample messages signed by
# deliver/dkimsign with rsa-sha256, ed25519-sha256 and both, and every
# signature checked by another implementation, dkimpy
# (tests/e2e/dkim_verify.py), against the TXT records kurier printed.
# Then one changed body byte, and a changed Subject, must each make
# every signature fail.
#
# opendkim-testmsg is not used: the 2.11.0~beta2 one fails with
# "dkim_chunk(): Syntax error" on any input, even in its own signing
# mode, and it verifies only through live DNS.
#
# Environment: KURIER_TOOLS (dkimsign_tool); KURIER_BIN (kurierctl,
# optional); see lib.sh.  Needs python3 with the dkim and nacl modules
# (Debian python3-dkim, python3-nacl).

source "$(dirname "$0")/lib.sh"

e2e_require KURIER_TOOLS

e2e_init

TOOL=$KURIER_TOOLS/dkimsign_tool
VERIFY=$(dirname "$0")/dkim_verify.py
DATA=$E2E_TMP/data
RECS=$E2E_TMP/records
MSGS=$E2E_TMP/msgs
mkdir -p "$MSGS"
: >"$RECS"

# A python3 that has dkimpy and PyNaCl (a pyenv one may not).
PY=
for p in python3 /usr/bin/python3; do
	if "$p" -c 'import dkim, nacl' 2>/dev/null; then
		PY=$p
		break
	fi
done
if [ -z "$PY" ]; then
	fail "python3 with the dkim and nacl modules" "install python3-dkim and python3-nacl"
	e2e_done
	exit 1
fi

# verify EXPECT FILE - dkim_verify.py on FILE against the records.
verify() {
	"$PY" "$VERIFY" --expect "$1" "$RECS" "$2"
}

# --- keys ----------------------------------------------------------------------

check_exit "keygen rsa" 0 "$TOOL" keygen "$DATA" example.com s1 rsa
check_match "keygen rsa: the TXT record, p= cut into strings of 255" "$E2E_OUT" \
	'^s1\._domainkey\.example\.com\. IN TXT \( "v=DKIM1; k=rsa; p=MII[A-Za-z0-9+/]{234}" "[A-Za-z0-9+/=]+" \)$'
RSA_REC=$E2E_OUT
printf '%s\n' "$RSA_REC" >>"$RECS"

check_exit "keygen ed25519 (names in any case)" 0 "$TOOL" keygen "$DATA" Example.COM E1 ed25519
check_match "keygen ed25519: the TXT record, raw 32-byte key" "$E2E_OUT" \
	'^e1\._domainkey\.example\.com\. IN TXT \( "v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=" \)$'
printf '%s\n' "$E2E_OUT" >>"$RECS"

check_eq "data_dir/dkim is 0700" "$(stat -c %a "$DATA/dkim")" 700
check_eq "rsa key file is 0600" "$(stat -c %a "$DATA/dkim/example.com.s1.key")" 600
check_eq "ed25519 key file is 0600, lower-case name" "$(stat -c %a "$DATA/dkim/example.com.e1.key")" 600
check_match "key file is PEM" "$(head -1 "$DATA/dkim/example.com.s1.key")" '^-----BEGIN PRIVATE KEY-----$'
check_eq "openssl reads the rsa key: 2048 bits" \
	"$(openssl pkey -in "$DATA/dkim/example.com.s1.key" -noout -text 2>/dev/null | head -1)" \
	"Private-Key: (2048 bit, 2 primes)"

before=$(sha256sum <"$DATA/dkim/example.com.s1.key")
check_exit "keygen refuses to overwrite" 1 "$TOOL" keygen "$DATA" example.com s1 ed25519
check_match "keygen refuses to overwrite: names the file" "$E2E_OUT" \
	"$DATA/dkim/example\.com\.s1\.key exists: refusing to overwrite"
check_eq "keygen refuses to overwrite: key unchanged" "$(sha256sum <"$DATA/dkim/example.com.s1.key")" "$before"

check_exit "record of an existing key" 0 "$TOOL" record "$DATA" example.com s1
check_eq "record of an existing key: as keygen printed it" "$E2E_OUT" "$RSA_REC"

check_exit "keygen with a bad domain" 1 "$TOOL" keygen "$DATA" ../example.com s1 rsa
check_match "keygen with a bad domain: says so" "$E2E_OUT" 'not a domain name'
check_exit "keygen with a bad selector" 1 "$TOOL" keygen "$DATA" example.com 's/1' rsa
check_match "keygen with a bad selector: says so" "$E2E_OUT" 'not a DKIM selector'
check_exit "keygen with a bad algorithm" 1 "$TOOL" keygen "$DATA" example.com s2 dsa
check_eq "refused keygens wrote nothing" "$(ls "$DATA/dkim" | sort | tr '\n' ' ')" \
	"example.com.e1.key example.com.s1.key "

check_exit "sign without a key: names the fix" 1 "$TOOL" "$DATA" example.org s1 </dev/null
check_match "sign without a key: names the fix" "$E2E_OUT" \
	'example\.org\.s1\.key: cannot open: No such file or directory \(run kurierctl dkim keygen example\.org --selector s1\)'
chmod 644 "$DATA/dkim/example.com.e1.key"
check_exit "a world-readable key is refused" 1 "$TOOL" "$DATA" example.com e1 </dev/null
check_match "a world-readable key is refused: says chmod" "$E2E_OUT" 'chmod 600'
chmod 600 "$DATA/dkim/example.com.e1.key"

# --- sample messages -------------------------------------------------------------

printf '%s\r\n' \
	'From: Kurier Test <test@example.com>' \
	'To: someone@example.net' \
	'Subject: plain' \
	'Date: Mon, 02 Mar 2026 10:00:00 +0000' \
	'Message-ID: <plain.1@example.com>' \
	'' \
	'A plain message.' \
	'Two lines.' >"$MSGS/plain"

printf '%s\r\n' \
	'From: =?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <joerg@example.com>' \
	'To: "Zoë" <zoe@example.net>' \
	'Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=' \
	'MIME-Version: 1.0' \
	'Content-Type: text/plain; charset=utf-8' \
	'Content-Transfer-Encoding: 8bit' \
	'' \
	'Grüße aus Köln, 10 € und ein Brief 📨.' \
	'Ça va?  Ünïcödé   with  runs of  spaces   ' \
	'' \
	'' >"$MSGS/utf8"

{
	printf '%s\r\n' \
		'From: "Example, Newsletter" <news@example.com> (weekly)' \
		'To: a@example.net, b@example.net, c@example.net, d@example.net,' \
		'	e@example.net,   f@example.net,' \
		'  g@example.net' \
		'Cc: h@example.net' \
		'Subject: a subject long enough that the sender folded it onto' \
		' a second line, and then onto' \
		'	a third line   with    odd   spacing' \
		'List-Unsubscribe: <https://example.com/unsubscribe/0123456789abcdef>,' \
		' <mailto:unsubscribe@example.com?subject=0123456789abcdef>' \
		'List-Unsubscribe-Post: List-Unsubscribe=One-Click' \
		'X-Not-Signed: this field is not in h=' \
		''
	for i in $(seq 1 60); do
		printf 'Line %d of a body long enough to be hashed in several pieces.\r\n' "$i"
	done
} >"$MSGS/folded"

printf 'From: test@example.com\r\nTo: someone@example.net\r\nSubject: no line end\r\n\r\nThe last line has no CRLF' \
	>"$MSGS/noeol"

printf 'From: test@example.com\r\nTo: someone@example.net\r\nSubject: empty body\r\n\r\n' \
	>"$MSGS/empty"

# tamper_body IN OUT - change one body byte (add one if the body is empty).
tamper_body() {
	"$PY" - "$1" "$2" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
i = d.index(b"\r\n\r\n") + 4
if i == len(d):
    d += b"x"
else:
    j = i + (len(d) - i) // 2
    while d[j:j + 1] in (b"\r", b"\n", b" ", b"\t"):
        j -= 1
    d = d[:j] + (b"Z" if d[j:j + 1] != b"Z" else b"Y") + d[j + 1:]
open(sys.argv[2], "wb").write(d)
PY
}

# tamper_subject IN OUT - put "Re: " in front of the Subject.
tamper_subject() {
	"$PY" - "$1" "$2" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
assert b"\r\nSubject: " in d
open(sys.argv[2], "wb").write(d.replace(b"\r\nSubject: ", b"\r\nSubject: Re: ", 1))
PY
}

for msg in plain utf8 folded noeol empty; do
	for algo in rsa ed25519 all; do
		name="$msg/$algo"
		out=$E2E_TMP/$msg.$algo
		want=1
		[ "$algo" = all ] && want=2
		if ! "$TOOL" -a "$algo" "$DATA" example.com s1,e1 <"$MSGS/$msg" >"$out" 2>"$out.err"; then
			fail "$name: signed" "$(tail -3 "$out.err")"
			continue
		fi
		pass "$name: signed"
		check_eq "$name: message kept byte for byte after the signatures" \
			"$(tail -c "$(stat -c %s "$MSGS/$msg")" "$out" | sha256sum)" \
			"$(sha256sum <"$MSGS/$msg")"
		check_exit "$name: dkimpy verifies $want signature(s)" 0 verify "$want" "$out"
		check_eq "$name: dkimpy says pass for each" "$(printf '%s\n' "$E2E_OUT" | grep -c '^pass ')" "$want"
		tamper_body "$out" "$out.body"
		check_exit "$name: a changed body byte fails" 1 verify "$want" "$out.body"
		check_eq "$name: a changed body byte fails every signature" \
			"$(printf '%s\n' "$E2E_OUT" | grep -c '^fail ')" "$want"
		tamper_subject "$out" "$out.subject"
		check_exit "$name: a changed Subject fails" 1 verify "$want" "$out.subject"
		check_eq "$name: a changed Subject fails every signature" \
			"$(printf '%s\n' "$E2E_OUT" | grep -c '^fail ')" "$want"
	done
done

# Over-signing: a second From added after signing must fail.
"$PY" - "$E2E_TMP/plain.all" "$E2E_TMP/plain.all.from" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
open(sys.argv[2], "wb").write(d.replace(b"\r\nFrom: ", b"\r\nFrom: Mallory <m@example.com>\r\nFrom: ", 1))
PY
check_exit "an added From fails (From is over-signed)" 1 verify 2 "$E2E_TMP/plain.all.from"

# h= and the absence of l=, from the signature itself.
h=$(sed -n '/^DKIM-Signature/,/b=/p' "$E2E_TMP/folded.rsa" | tr -d '\r\n\t ' | sed 's/.*;h=\([^;]*\);.*/\1/')
check_eq "h= lists the present signed fields and From once more" "$h" \
	"From:To:Cc:Subject:List-Unsubscribe:List-Unsubscribe-Post:From"
check_eq "no l= tag" "$(sed -n '/^DKIM-Signature/,/b=/p' "$E2E_TMP/folded.rsa" | tr -d '\r\n\t ' | grep -c ';l=')" 0

# Not signed: From domain without a key, two From fields.
printf 'From: test@example.org\r\nSubject: x\r\n\r\nbody\r\n' >"$MSGS/other"
check_exit "From domain without a key: not signed" 1 "$TOOL" "$DATA" example.com s1 <"$MSGS/other"
check_match "From domain without a key: says so" "$E2E_OUT" 'unsigned: no DKIM key for example\.org'
printf 'From: a@example.com\r\nFrom: b@example.com\r\nSubject: x\r\n\r\nbody\r\n' >"$MSGS/two"
check_exit "two From fields: not signed" 1 "$TOOL" "$DATA" example.com s1 <"$MSGS/two"
check_match "two From fields: says so" "$E2E_OUT" 'unsigned: the message has 2 From fields'

# --- kurierctl dkim keygen, once kurierctl has it --------------------------------

CTL=${KURIER_BIN:+$KURIER_BIN/kurierctl}
if [ -n "$CTL" ] && [ -x "$CTL" ] && "$CTL" help 2>&1 | grep -q 'dkim keygen'; then
	CONF=$E2E_TMP/kurier.conf
	write_conf "$CONF" "$(free_port)"
	check_exit "kurierctl dkim keygen" 0 "$CTL" -c "$CONF" dkim keygen ctl.example --selector k1 --algo ed25519
	rec=$(printf '%s\n' "$E2E_OUT" | grep -E '^k1\._domainkey\.ctl\.example\. IN TXT \(')
	check_match "kurierctl dkim keygen: prints the TXT record" "$rec" 'k=ed25519; p='
	check_eq "kurierctl dkim keygen: key file 0600" "$(stat -c %a "$E2E_TMP/data/dkim/ctl.example.k1.key" 2>&1)" 600
	printf '%s\n' "$rec" >>"$RECS"
	printf 'From: a@ctl.example\r\nSubject: x\r\n\r\nbody\r\n' >"$MSGS/ctl"
	if "$TOOL" "$E2E_TMP/data" ctl.example k1 <"$MSGS/ctl" >"$E2E_TMP/ctl.signed" 2>/dev/null; then
		check_exit "kurierctl's key signs, its record verifies" 0 verify 1 "$E2E_TMP/ctl.signed"
	else
		fail "kurierctl's key signs"
	fi
	if "$CTL" -c "$CONF" dkim keygen ctl.example --selector k1 >/dev/null 2>&1; then
		fail "kurierctl dkim keygen refuses to overwrite"
	else
		pass "kurierctl dkim keygen refuses to overwrite"
	fi
else
	echo "# kurierctl has no 'dkim keygen' yet: its part is skipped"
fi

e2e_done
