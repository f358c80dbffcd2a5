#!/usr/bin/env bash
# suppression.sh - end-to-end test of kurierctl's suppression commands
# against a real redis-server on a free port: add (global and per sender
# domain, reasons, notes), list (every scope, one scope, the global one),
# check (every scope; global and one domain), del; the refusals (bad
# addresses, domains, reasons and notes exit 2 naming the bad part and
# store nothing; deleting what is not there exits 1); and that stored
# text is printed escaped.  Keys follow policy/policy.h: PREFIX sup:SCOPE
# (hash address -> "REASON ADDED_MS TEXT") and PREFIX sup:scopes (set).
#
# Environment: KURIER_BIN (kurierctl), KURIER_REDIS_CONF
# (deploy/redis.conf); see lib.sh.

source "$(dirname "$0")/lib.sh"

e2e_require KURIER_BIN KURIER_REDIS_CONF

e2e_init

ctl_conf

# rows OUT - the lines of a list or check output between header and count.
rows() {
	printf '%s\n' "$1" | sed -e '1d' -e '$d'
}

# --- without Redis ------------------------------------------------------------------

check_exit "help exits 0" 0 "$CTL" help
check_match "help lists suppression list" "$E2E_OUT" "suppression list \[--domain D\]"
check_match "help lists suppression add" "$E2E_OUT" \
	"suppression add ADDRESS \[--domain D\] \[--reason hard-bounce\|complaint\|soft-bounce-limit\|manual\]"
check_match "help lists suppression del" "$E2E_OUT" "suppression del ADDRESS \[--domain D\]"
check_match "help lists suppression check" "$E2E_OUT" "suppression check ADDRESS \[--domain D\]"

check_exit "suppression without a subcommand: usage error" 2 ctl suppression
check_match "suppression without a subcommand: names them" "$E2E_OUT" "list, add, del or check"
check_exit "unknown suppression subcommand: usage error" 2 ctl suppression purge
for cmd in add del check; do
	check_exit "suppression $cmd without an address: usage error" 2 ctl suppression "$cmd"
	check_match "suppression $cmd without an address: says so" "$E2E_OUT" \
		"^kurierctl: suppression $cmd needs an ADDRESS"
done
check_exit "address without @: usage error" 2 ctl suppression add nobody.example
check_match "address without @: names it and the cause" "$E2E_OUT" \
	'^kurierctl: not a mail address "nobody\.example": missing .@'
check_exit "address with a bad domain: usage error" 2 ctl suppression add 'a@bad..example'
check_match "address with a bad domain: names it" "$E2E_OUT" \
	'^kurierctl: not a mail address "a@bad\.\.example": .*domain'
check_exit "address with a space: usage error" 2 ctl suppression check 'a b@example.net'
check_match "address with a space: names it" "$E2E_OUT" '^kurierctl: not a mail address "a b@example\.net"'
check_exit "address with trailing text: usage error" 2 ctl suppression del '<a@example.net>x'
check_exit "address with an empty local part: usage error" 2 ctl suppression add '@example.net'
LONG=$(printf 'x%.0s' $(seq 65))@example.net
check_exit "local part of 65 characters: usage error" 2 ctl suppression add "$LONG"
check_exit "two addresses: usage error" 2 ctl suppression add a@example.net b@example.net
check_match "two addresses: names the second" "$E2E_OUT" '^kurierctl: unexpected argument "b@example\.net"'
check_exit "suppression list with an argument: usage error" 2 ctl suppression list a@example.net
check_exit "bad --domain: usage error" 2 ctl suppression add a@example.net --domain 'shop..example'
check_match "bad --domain: names it" "$E2E_OUT" '^kurierctl: not a domain name in --domain "shop\.\.example"'
check_exit "two domains in --domain: usage error" 2 ctl suppression list --domain a.example,b.example
check_exit "--domain without a value: usage error" 2 ctl suppression list --domain
check_exit "unknown --reason: usage error" 2 ctl suppression add a@example.net --reason spam
check_match "unknown --reason: names it and the choices" "$E2E_OUT" \
	'^kurierctl: unknown --reason "spam": use hard-bounce, complaint, soft-bounce-limit or manual$'
check_exit "--reason on del: usage error" 2 ctl suppression del a@example.net --reason manual
check_exit "--note with a control character: usage error" 2 ctl suppression add a@example.net --note $'two\nlines'
check_match "--note with a control character: says so" "$E2E_OUT" "^kurierctl: --note holds a control character"
NOTE256=$(printf 'n%.0s' $(seq 256))
check_exit "--note of 256 bytes: usage error" 2 ctl suppression add a@example.net --note "$NOTE256"
check_match "--note of 256 bytes: says the limit" "$E2E_OUT" "at most 255 bytes"
check_exit "unknown option: usage error" 2 ctl suppression list --all

DEAD=$(free_port)
write_conf "$E2E_TMP/dead.conf" "$DEAD" "connect_timeout = 500ms"
check_exit "redis unreachable: suppression list exits 1" 1 "$CTL" -c "$E2E_TMP/dead.conf" suppression list
check_match "redis unreachable: says so, with the cause" "$E2E_OUT" \
	"^kurierctl: cannot reach Redis at 127\.0\.0\.1:$DEAD \(.+\): is redis-server running\?"

# --- against Redis ----------------------------------------------------------------------

start_redis "$E2E_TMP/redis" "$PORT" || e2e_abort "redis-server starts"

# The refusals above stored nothing; an empty list is a count of 0.
check_exit "list, empty: exits 0" 0 ctl suppression list
check_eq "list, empty: header and 0 entries" "$E2E_OUT" \
	"$(printf 'SCOPE  ADDRESS  REASON       ADDED (UTC)          TEXT\n0 entries')"
check_eq "nothing stored by refused commands" "$(keys)" ""
check_exit "refused with Redis up: bad address" 2 ctl suppression add nobody.example
check_exit "refused with Redis up: --note of 256 bytes" 2 ctl suppression add a@example.net --note "$NOTE256"
check_eq "still nothing stored" "$(keys)" ""

# Global (no --domain): the default reason is manual; the address is lower-cased.
check_exit "add global exits 0" 0 ctl suppression add 'User@Example.NET'
check_eq "add global: says what it did" "$E2E_OUT" \
	"user@example.net: suppressed, scope * (every sender), reason manual"
check_match "add global: stored under sup:*, lower case" \
	"$(redis-cli -p "$PORT" hget 'e2e:sup:*' user@example.net)" "^manual [0-9]{13}"
check_eq "add global: scope listed" "$(redis-cli -p "$PORT" sismember e2e:sup:scopes '*')" 1

# Per sender domain, with a reason and a note; <...> accepted.
check_exit "add for a domain exits 0" 0 ctl suppression add '<user@example.net>' --domain Shop.Example \
	--reason complaint --note 'asked to stop, ticket 42'
check_eq "add for a domain: says what it did" "$E2E_OUT" \
	"user@example.net: suppressed, scope shop.example, reason complaint"
check_match "add for a domain: stored under sup:shop.example with the note" \
	"$(redis-cli -p "$PORT" hget e2e:sup:shop.example user@example.net)" \
	"^complaint [0-9]{13} asked to stop, ticket 42$"
check_exit "add a hard bounce exits 0" 0 ctl suppression add b@x.example --reason hard-bounce \
	--note '550 5.1.1 <b@x.example>: user unknown'
check_exit "add explicit global (--domain '*') exits 0" 0 ctl suppression add a@y.example --domain '*'
check_eq "add explicit global: same scope" "$(redis-cli -p "$PORT" hexists 'e2e:sup:*' a@y.example)" 1
# A note of 255 bytes is the largest taken.
NOTE255=$(printf 'n%.0s' $(seq 255))
check_exit "--note of 255 bytes exits 0" 0 ctl suppression add long@y.example --domain other.example --note "$NOTE255"
check_eq "--note of 255 bytes: stored whole" \
	"$(redis-cli -p "$PORT" hget e2e:sup:other.example long@y.example | cut -d' ' -f3-)" "$NOTE255"

check_exit "list exits 0" 0 ctl suppression list
check_match "list: header" "$(printf '%s\n' "$E2E_OUT" | head -1)" \
	"^SCOPE +ADDRESS +REASON +ADDED \(UTC\) +TEXT$"
check_eq "list: every scope, sorted by scope then address" \
	"$(rows "$E2E_OUT" | awk '{ print $1, $2, $3 }' | tr '\n' ';')" \
	"* a@y.example manual;* b@x.example hard-bounce;* user@example.net manual;other.example long@y.example manual;shop.example user@example.net complaint;"
check_eq "list: the count last" "$(printf '%s\n' "$E2E_OUT" | tail -1)" "5 entries"
check_match "list: date in UTC and the text" "$E2E_OUT" \
	"^\* +b@x\.example +hard-bounce +20[0-9]{2}-[0-9]{2}-[0-9]{2} [0-9:]{8} +550 5\.1\.1 <b@x\.example>: user unknown$"
check_match "list: an entry without text shows -" "$E2E_OUT" "^\* +a@y\.example +manual +[0-9-]+ [0-9:]+ +-$"

check_exit "list --domain exits 0" 0 ctl suppression list --domain SHOP.example
check_eq "list --domain: that scope only" "$(rows "$E2E_OUT" | awk '{ print $1, $2 }')" "shop.example user@example.net"
check_eq "list --domain: count" "$(printf '%s\n' "$E2E_OUT" | tail -1)" "1 entry"
check_exit "list --domain '*' exits 0" 0 ctl suppression list --domain '*'
check_eq "list --domain '*': global only" "$(rows "$E2E_OUT" | awk '{ print $2 }' | tr '\n' ' ')" \
	"a@y.example b@x.example user@example.net "
check_exit "list --domain with no entries exits 0" 0 ctl suppression list --domain empty.example
check_eq "list --domain with no entries: 0 entries" "$(printf '%s\n' "$E2E_OUT" | tail -1)" "0 entries"

check_exit "check exits 0" 0 ctl suppression check USER@example.net
check_eq "check: suppressed, two entries" "$(printf '%s\n' "$E2E_OUT" | head -1)" "user@example.net: suppressed (2 entries)"
check_match "check: column header" "$E2E_OUT" "^  SCOPE +REASON +ADDED \(UTC\) +TEXT$"
check_match "check: the global entry" "$E2E_OUT" "^  \* +manual +20[0-9-]+ [0-9:]+ +-$"
check_match "check: the domain entry with its note" "$E2E_OUT" \
	"^  shop\.example +complaint +20[0-9-]+ [0-9:]+ +asked to stop, ticket 42$"
check_exit "check --domain of another sender exits 0" 0 ctl suppression check user@example.net --domain other.example
check_eq "check --domain: the global entry applies, not shop.example's" \
	"$(printf '%s\n' "$E2E_OUT" | sed 1,2d | awk '{ print $1 }' | tr '\n' ' ')" "* "
check_exit "check --domain '*' exits 0" 0 ctl suppression check long@y.example --domain '*'
check_eq "check --domain '*': global only" "$E2E_OUT" "long@y.example: not suppressed (scope *)"
check_exit "check of an address not listed exits 0" 0 ctl suppression check nobody@example.net
check_eq "check of an address not listed: says so" "$E2E_OUT" "nobody@example.net: not suppressed"
check_exit "check --domain of an address not listed exits 0" 0 ctl suppression check nobody@example.net --domain shop.example
check_eq "check --domain of an address not listed: names the scopes" "$E2E_OUT" \
	"nobody@example.net: not suppressed (scopes * and shop.example)"

# Adding again replaces the entry.
check_exit "add again with another reason exits 0" 0 ctl suppression add a@y.example --reason hard-bounce --note again
check_match "add again: replaced" "$(redis-cli -p "$PORT" hget 'e2e:sup:*' a@y.example)" "^hard-bounce [0-9]{13} again$"
check_exit "list after replacing" 0 ctl suppression list --domain '*'
check_eq "list after replacing: still 3 global entries" "$(printf '%s\n' "$E2E_OUT" | tail -1)" "3 entries"

# Stored text is printed escaped: no control byte reaches the terminal.
redis-cli -p "$PORT" hset 'e2e:sup:*' evil@x.example $'manual 1790000000000 bad \x1b[2J text' >/dev/null
check_exit "check of an entry with control bytes exits 0" 0 ctl suppression check evil@x.example
check_match "control bytes shown as \\xNN" "$E2E_OUT" 'bad \\x1b\[2J text$'
check_eq "no raw control byte in the output" \
	"$(printf '%s' "$E2E_OUT" | tr -d '\n' | LC_ALL=C grep -c '[[:cntrl:]]')" 0
check_match "stored time shown in UTC" "$E2E_OUT" " 2026-09-21 [0-9:]{8} "

check_exit "del from a domain exits 0" 0 ctl suppression del user@example.net --domain shop.example
check_eq "del from a domain: says so" "$E2E_OUT" "user@example.net: no longer suppressed in scope shop.example"
check_eq "del from a domain: gone from that scope" \
	"$(redis-cli -p "$PORT" hexists e2e:sup:shop.example user@example.net)" 0
check_eq "del from a domain: the global entry stays" \
	"$(redis-cli -p "$PORT" hexists 'e2e:sup:*' user@example.net)" 1
check_exit "del from a domain again exits 1" 1 ctl suppression del user@example.net --domain shop.example
check_eq "del again: says so and what to do" "$E2E_OUT" \
	"kurierctl: user@example.net is not suppressed in scope shop.example (kurierctl suppression check user@example.net shows every scope)"
check_exit "del global exits 0" 0 ctl suppression del USER@example.net
check_eq "del global: says so" "$E2E_OUT" "user@example.net: no longer suppressed in scope * (every sender)"
check_exit "check after both dels exits 0" 0 ctl suppression check user@example.net
check_eq "check after both dels: not suppressed" "$E2E_OUT" "user@example.net: not suppressed"
check_exit "del of an address never listed exits 1" 1 ctl suppression del nobody@example.net
check_match "del of an address never listed: says so" "$E2E_OUT" \
	"^kurierctl: nobody@example\.net is not suppressed in scope \* \(every sender\)"

check_exit "list at the end exits 0" 0 ctl suppression list
check_eq "list at the end: what is left" "$(rows "$E2E_OUT" | awk '{ print $1, $2 }' | tr '\n' ';')" \
	"* a@y.example;* b@x.example;* evil@x.example;other.example long@y.example;"
check_eq "list at the end: count" "$(printf '%s\n' "$E2E_OUT" | tail -1)" "4 entries"

# A list longer than a page (kurierctl asks 1000 at a time): 3000 entries
# stored in the documented format, every one printed once, the count last.
redis-cli -p "$PORT" eval "for i = 1, 3000 do redis.call('HSET', KEYS[1], 'bulk' .. i .. '@example.net', 'manual 1790000000000 row ' .. i) end redis.call('SADD', KEYS[2], 'bulk.example') return 1" \
	2 e2e:sup:bulk.example e2e:sup:scopes >/dev/null
check_eq "3000 entries stored" "$(redis-cli -p "$PORT" hlen e2e:sup:bulk.example)" 3000
check_exit "list of 3000 entries exits 0" 0 ctl suppression list --domain bulk.example
check_match "list of 3000: header first" "$(printf '%s\n' "$E2E_OUT" | head -1)" "^SCOPE +ADDRESS +REASON"
check_eq "list of 3000: 3000 rows" "$(rows "$E2E_OUT" | grep -c '^bulk\.example  *bulk[0-9]*@example\.net  *manual ')" 3000
check_eq "list of 3000: no row twice" "$(rows "$E2E_OUT" | sort | uniq -d | wc -l)" 0
check_eq "list of 3000: every address" "$(rows "$E2E_OUT" | awk '{ print $2 }' | sort -u | wc -l)" 3000
check_eq "list of 3000: the count last" "$(printf '%s\n' "$E2E_OUT" | tail -1)" "3000 entries"
check_exit "list of every scope with 3000 in one exits 0" 0 ctl suppression list
check_eq "list of every scope: 3004 rows, each once" \
	"$(rows "$E2E_OUT" | awk '{ print $1, $2 }' | sort -u | wc -l) $(rows "$E2E_OUT" | wc -l)" "3004 3004"
check_eq "list of every scope: scopes in sorted order" \
	"$(rows "$E2E_OUT" | awk '{ print $1 }' | uniq | tr '\n' ' ')" "* bulk.example other.example "
check_eq "list of every scope: the count last" "$(printf '%s\n' "$E2E_OUT" | tail -1)" "3004 entries"

e2e_done
