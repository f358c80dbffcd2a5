#!/usr/bin/env bash
# mailbox.sh - end-to-end test of kurierctl's mailbox commands against a
# real redis-server on a free port, with messages stored through the
# mailbox store by the mbox_append tool: list (the table, the header
# fields it shows, escaping of stored text, --folder, an empty INBOX),
# show (byte for byte to a pipe), stats (in all and per user), dedup, and
# the refusals (usage errors exit 2 and touch nothing; an unknown user,
# folder or UID exits 1 naming it; no Redis exits 1).
#
# Environment: KURIER_BIN (kurierctl), KURIER_TOOLS (mbox_append),
# KURIER_REDIS_CONF (deploy/redis.conf); see lib.sh.

source "$(dirname "$0")/lib.sh"

e2e_require KURIER_BIN KURIER_TOOLS KURIER_REDIS_CONF

e2e_init

ctl_conf
APPEND=$KURIER_TOOLS/mbox_append

# The messages: a classified return (CRLF), an auto-reply with a folded
# subject and an escape byte in it (LF only: stored as CRLF), a plain one.
M1=$E2E_TMP/m1.eml
M2=$E2E_TMP/m2.eml
M3=$E2E_TMP/m3.eml
printf 'X-Kurier-Class: hard\r\nX-Kurier-Reason: user-unknown\r\nX-Kurier-Recipient: gone@example.net\r\nX-Kurier-Queue-Id: 0123456789abcdef\r\nFrom: MAILER-DAEMON@mx.example.net\r\nSubject: Undelivered Mail Returned to Sender\r\n\r\nThe mail system said: 550 5.1.1 no such user\r\n' >"$M1"
printf 'X-Kurier-Class: auto-reply\nX-Kurier-Recipient: away@example.org\nSubject: Out of office:\n back on \033[31mMonday\nAuto-Submitted: auto-replied\n\nI am away.\n' >"$M2"
printf 'From: someone@example.com\r\nSubject: hello\r\n\r\nhi\r\n' >"$M3"
# What the store keeps of M2: CRLF line ends.
sed 's/$/\r/' "$M2" >"$E2E_TMP/m2.crlf"

# --- without Redis ------------------------------------------------------------------

check_exit "help exits 0" 0 "$CTL" help
check_match "help lists mailbox list" "$E2E_OUT" "mailbox list USER \[--folder F\]"
check_match "help lists mailbox show" "$E2E_OUT" "mailbox show USER UID \[--folder F\]"
check_match "help lists mailbox stats" "$E2E_OUT" "mailbox stats"
check_exit "mailbox without a subcommand: usage error" 2 ctl mailbox
check_match "mailbox without a subcommand: names them" "$E2E_OUT" "list, show or stats"
check_exit "list without USER: usage error" 2 ctl mailbox list
check_match "list without USER: says so" "$E2E_OUT" "^kurierctl: missing USER"
check_exit "list of a bad user name: usage error" 2 ctl mailbox list 'bad user'
check_match "list of a bad user name: names it" "$E2E_OUT" '^kurierctl: not a user name "bad user"'
check_exit "list with two users: usage error" 2 ctl mailbox list shop admin
check_exit "list with an unknown option: usage error" 2 ctl mailbox list shop --all
check_exit "--folder without a value: usage error" 2 ctl mailbox list shop --folder
check_exit "--folder with a bad name: usage error" 2 ctl mailbox list shop --folder 'a//b'
check_match "--folder with a bad name: names it" "$E2E_OUT" '^kurierctl: not a folder name in --folder "a//b"'
check_exit "show without UID: usage error" 2 ctl mailbox show shop
check_match "show without UID: says so" "$E2E_OUT" "^kurierctl: missing UID"
check_exit "show UID 0: usage error" 2 ctl mailbox show shop 0
check_exit "show UID x: usage error" 2 ctl mailbox show shop x
check_exit "show UID 2^32: usage error" 2 ctl mailbox show shop 4294967296
check_exit "stats with an argument: usage error" 2 ctl mailbox stats shop
check_exit "stats without Redis: exit 1" 1 ctl mailbox stats
check_match "stats without Redis: says so" "$E2E_OUT" "^kurierctl: cannot reach Redis at 127\.0\.0\.1:$PORT"

start_redis "$E2E_TMP/redis" "$PORT" || e2e_abort "redis-server started"

# --- an empty store -----------------------------------------------------------------

check_exit "stats of an empty store: exit 0" 0 ctl mailbox stats
check_eq "stats of an empty store: zeros" "$E2E_OUT" "$(printf 'users     0\nmessages  0\nbytes     0')"
check_exit "list of an unknown user: exit 1" 1 ctl mailbox list nobody
check_eq "list of an unknown user: names user and folder" "$E2E_OUT" \
	"kurierctl: no folder INBOX for user nobody (kurierctl mailbox stats lists the users that have a mailbox)"
check_exit "show of an unknown user: exit 1" 1 ctl mailbox show nobody 1
check_eq "nothing stored by reads and refusals" "$(keys)" ""

# --- stored messages ----------------------------------------------------------------

check_exit "append three messages: exit 0" 0 "$APPEND" -c "$CONF" -u shop "$M1" "$M2" "$M3"
check_match "append: UIDs 1, 2, 3" "$(printf '%s' "$E2E_OUT" | awk '{print $2}' | tr '\n' ' ')" "^1 2 3 $"
check_exit "append for a second user: exit 0" 0 "$APPEND" -c "$CONF" -u admin@shop.example -F '\Seen' "$M3"
check_exit "append with a dedup key: stored" 0 "$APPEND" -c "$CONF" -u admin@shop.example -k 'evt-1 dsn' "$M1"
check_match "append with a dedup key: UID 2" "$E2E_OUT" "^[0-9]+ 2 "
check_exit "append again with the same key: not stored" 0 "$APPEND" -c "$CONF" -u admin@shop.example -k 'evt-1 dsn' "$M2"
check_match "append again with the same key: the first UID" "$E2E_OUT" "^duplicate 2 "
check_exit "append to a folder that does not exist: exit 1" 1 "$APPEND" -c "$CONF" -u shop -f Archive "$M1"

check_exit "list: exit 0" 0 ctl mailbox list shop
LIST=$E2E_OUT
check_match "list: header" "$(printf '%s\n' "$LIST" | head -1)" \
	"^UID  DATE \(UTC\) +SIZE  FLAGS +CLASS +RECIPIENT +SUBJECT$"
check_eq "list: three rows and the count" "$(printf '%s\n' "$LIST" | wc -l | tr -d ' ')" 5
ROW1=$(printf '%s\n' "$LIST" | sed -n 2p)
check_match "list: UID 1, date, size, no flags" "$ROW1" \
	"^1    [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8}  +$(wc -c <"$M1")  -  "
check_match "list: UID 1 class, recipient and subject from its header" "$ROW1" \
	"  hard  +gone@example\.net  +Undelivered Mail Returned to Sender$"
ROW2=$(printf '%s\n' "$LIST" | sed -n 3p)
check_match "list: a folded subject unfolded, an escape byte shown as \\x1b" "$ROW2" \
	'  auto-reply  away@example\.org  +Out of office: back on \\x1b\[31mMonday$'
check_match "list: size as stored (CRLF)" "$ROW2" "  $(wc -c <"$E2E_TMP/m2.crlf")  "
check_match "list: a message without kurier fields shows -" "$(printf '%s\n' "$LIST" | sed -n 4p)" \
	"^3 .*  -  +-  +-  +hello$"
check_match "list: the count and the folder's state" "$(printf '%s\n' "$LIST" | tail -1)" \
	"^3 messages in INBOX of shop \(UIDVALIDITY [0-9]+, HIGHESTMODSEQ 4\)$"
check_exit "list --folder inbox (any case): exit 0" 0 ctl mailbox list shop --folder inbox
check_match "list --folder inbox: the same INBOX" "$E2E_OUT" "^3 messages in INBOX of shop"
check_exit "list with flags: exit 0" 0 ctl mailbox list admin@shop.example
check_match "list with flags: shown" "$(printf '%s\n' "$E2E_OUT" | sed -n 2p)" '^1 .*  \\\\Seen  '
check_exit "list of an unknown folder: exit 1" 1 ctl mailbox list shop --folder Archive
check_match "list of an unknown folder: names it" "$E2E_OUT" "^kurierctl: no folder Archive for user shop"

"$CTL" -c "$CONF" mailbox show shop 1 >"$E2E_TMP/show1" 2>"$E2E_TMP/show1.err"
check_eq "show to a pipe: exit 0" "$?" 0
if cmp -s "$M1" "$E2E_TMP/show1"; then pass "show: the message byte for byte"; else fail "show: the message byte for byte" "$(head -c 300 "$E2E_TMP/show1")"; fi
"$CTL" -c "$CONF" mailbox show shop 2 --folder INBOX >"$E2E_TMP/show2"
if cmp -s "$E2E_TMP/m2.crlf" "$E2E_TMP/show2"; then pass "show: an LF message as stored, CRLF"; else fail "show: an LF message as stored, CRLF"; fi
check_exit "show of an unknown UID: exit 1" 1 ctl mailbox show shop 9
check_eq "show of an unknown UID: names it" "$E2E_OUT" \
	"kurierctl: no message with UID 9 in folder INBOX of user shop (kurierctl mailbox list shop shows the UIDs)"

check_exit "stats: exit 0" 0 ctl mailbox stats
B1=$(wc -c <"$M1")
B2=$(wc -c <"$E2E_TMP/m2.crlf")
B3=$(wc -c <"$M3")
check_eq "stats: totals and one row per user" "$E2E_OUT" "$(printf 'users     2\nmessages  5\nbytes     %d\n\n%-18s  %7s  %8s  %12s\n%-18s  %7d  %8d  %12d\n%-18s  %7d  %8d  %12d' \
	$((2 * B1 + B2 + 2 * B3)) USER FOLDERS MESSAGES BYTES admin@shop.example 1 2 $((B1 + B3)) shop 1 3 $((B1 + B2 + B3)))"

# A folder larger than one page of heads (200): every message, in UID order.
mapfile -t many < <(for _ in $(seq 450); do echo "$M1"; done)
check_exit "append 450 messages: exit 0" 0 "$APPEND" -q -c "$CONF" -u bulk "${many[@]}"
check_exit "list of 450: exit 0" 0 ctl mailbox list bulk
check_eq "list of 450: UIDs 1 to 450 in order" \
	"$(printf '%s\n' "$E2E_OUT" | sed -e '1d' -e '$d' | awk '{ print $1 }' | tr '\n' ' ')" "$(seq 450 | tr '\n' ' ')"
check_eq "list of 450: every row with its subject" \
	"$(printf '%s\n' "$E2E_OUT" | grep -c 'hard  *gone@example\.net  *Undelivered Mail Returned to Sender$')" 450
check_match "list of 450: the count" "$(printf '%s\n' "$E2E_OUT" | tail -1)" "^450 messages in INBOX of bulk "

# The raw bytes are stored once per append, under the prefix.
check_eq "one blob per stored message" "$(redis-cli -p "$PORT" --scan --pattern 'e2e:mbx:r:*' | wc -l | tr -d ' ')" 455

e2e_done
