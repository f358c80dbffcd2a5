#!/usr/bin/env bash
# users.sh - end-to-end test of kurierctl's user commands against a real
# redis-server on a free port: add (password on stdin), list, show,
# passwd, set (domains, enabled, and the per-user policy overrides
# --rate, --rcpt-rate, --rcpt-domains), del; the refusals (password on
# argv, short or empty password, unknown user, existing user, bad rate
# or domain values: exit 2 naming the bad part, nothing stored); and
# that no password ever reaches Redis or kurierctl's output.  Keys
# follow policy/auth.h: PREFIX user:NAME (hash) and PREFIX users (set).
#
# Environment: KURIER_BIN (kurierctl), KURIER_REDIS_CONF
# (deploy/redis.conf); see lib.sh.

source "$(dirname "$0")/lib.sh"

e2e_require KURIER_BIN KURIER_REDIS_CONF

e2e_init

# [policy] defaults, shown as "default (...)" for users without an override.
ctl_conf "
[policy]
rate = 500/h, 20/min"
PW1='Corr3ct horse battery'
PW2='st@ple-Tr0ub4dor-2'
NAME=shop@site.example

# ctl_stdin PASSWORD ARGS... - kurierctl with PASSWORD as one line on stdin.
ctl_stdin() {
	local pw=$1
	shift
	printf '%s\n' "$pw" | "$CTL" -c "$CONF" "$@"
}

# redis_dump - every key under the prefix with its contents, as text.
redis_dump() {
	local k
	redis-cli -p "$PORT" --scan --pattern 'e2e:*' | sort | while read -r k; do
		echo "key $k"
		case $(redis-cli -p "$PORT" type "$k") in
		hash) redis-cli -p "$PORT" hgetall "$k" ;;
		set) redis-cli -p "$PORT" smembers "$k" ;;
		*) redis-cli -p "$PORT" dump "$k" ;;
		esac
	done
}

# --- without Redis ----------------------------------------------------------------

check_exit "help exits 0" 0 "$CTL" help
check_match "help lists user add" "$E2E_OUT" "user add NAME --domains LIST"
check_match "help lists user passwd" "$E2E_OUT" "user passwd NAME"
check_match "help lists user del" "$E2E_OUT" "user del NAME"
check_match "help lists user list" "$E2E_OUT" "user list"
check_match "help lists user set" "$E2E_OUT" "user set NAME \[--domains LIST\] \[--enable\|--disable\] \[--rate R\|default\]"
check_match "help lists user set's recipient options" "$E2E_OUT" "\[--rcpt-rate R\|default\] \[--rcpt-domains LIST\|any\]"
check_match "help lists user show" "$E2E_OUT" "user show NAME"

check_exit "password on argv: usage error" 2 "$CTL" -c "$CONF" user add "$NAME" secretpassword --domains a.example
check_match "password on argv: says stdin" "$E2E_OUT" \
	"^kurierctl: user add takes no password argument: the password is read from stdin"
check_eq "password on argv: not echoed back" "$(printf '%s' "$E2E_OUT" | grep -c secretpassword)" 0
check_exit "password on argv (passwd): usage error" 2 "$CTL" -c "$CONF" user passwd "$NAME" secretpassword
check_exit "user add without --domains: usage error" 2 ctl_stdin "$PW1" user add "$NAME"
check_exit "user add with a bad domain: usage error" 2 ctl_stdin "$PW1" user add "$NAME" --domains 'a.example,bad..example'
check_match "user add with a bad domain: names it" "$E2E_OUT" '"bad\.\.example"'
check_exit "user without a subcommand: usage error" 2 "$CTL" -c "$CONF" user
check_exit "unknown user subcommand: usage error" 2 "$CTL" -c "$CONF" user frobnicate
check_exit "user set without a change: usage error" 2 "$CTL" -c "$CONF" user set "$NAME"
check_exit "user set --enable --disable: usage error" 2 "$CTL" -c "$CONF" user set "$NAME" --enable --disable
check_exit "user show without a name: usage error" 2 "$CTL" -c "$CONF" user show

# Bad policy values: exit 2 before any connection, naming the bad part.
check_exit "user set --rate with a bad window: usage error" 2 "$CTL" -c "$CONF" user set "$NAME" --rate 500/x
check_match "bad --rate: names the value and the cause" "$E2E_OUT" \
	'^kurierctl: bad --rate "500/x": the window of a rate must be'
check_exit "user set --rate, bad entry of a list: usage error" 2 "$CTL" -c "$CONF" user set "$NAME" --rate '500/h,20/fortnight'
check_match "bad --rate entry: names the entry and the list" "$E2E_OUT" \
	'^kurierctl: bad --rate entry "20/fortnight" in "500/h,20/fortnight": the window'
check_exit "user set --rate without a window: usage error" 2 "$CTL" -c "$CONF" user set "$NAME" --rate 500
check_match "--rate without a window: says what a rate is" "$E2E_OUT" 'a rate is COUNT/WINDOW'
check_exit "user set --rate 0/h: usage error" 2 "$CTL" -c "$CONF" user set "$NAME" --rate 0/h
check_exit "user set --rate 1000000001/h (over the largest count): usage error" 2 \
	"$CTL" -c "$CONF" user set "$NAME" --rate 1000000001/h
check_match "--rate over the largest count: says the range" "$E2E_OUT" 'from 1 to 1000000000'
check_exit "user set --rate, two rates with one window: usage error" 2 "$CTL" -c "$CONF" user set "$NAME" --rate 1/h,2/h
check_match "two rates with one window: says so" "$E2E_OUT" 'two rates with the same window'
check_exit "user set --rate, five rates: usage error" 2 "$CTL" -c "$CONF" user set "$NAME" --rate 1/s,2/min,3/h,4/d,5/10s
check_match "five rates: says at most 4" "$E2E_OUT" 'at most 4 rates'
check_exit "user set --rate '': usage error" 2 "$CTL" -c "$CONF" user set "$NAME" --rate ''
check_exit "user set --rate without a value: usage error" 2 "$CTL" -c "$CONF" user set "$NAME" --rate
check_exit "user set --rcpt-rate with a bad count: usage error" 2 "$CTL" -c "$CONF" user set "$NAME" --rcpt-rate ten/d
check_match "bad --rcpt-rate: names the option and the value" "$E2E_OUT" '^kurierctl: bad --rcpt-rate "ten/d": the count'
check_exit "user set --rcpt-domains with a bad domain: usage error" 2 "$CTL" -c "$CONF" user set "$NAME" --rcpt-domains 'a.example,bad..example'
check_match "bad --rcpt-domains: names the domain" "$E2E_OUT" \
	'^kurierctl: not a domain name in --rcpt-domains "bad\.\.example"'
check_exit "user set --rcpt-domains '': usage error" 2 "$CTL" -c "$CONF" user set "$NAME" --rcpt-domains ''
check_match "empty --rcpt-domains: points at any" "$E2E_OUT" 'or any for no restriction'
check_exit "user add --rate is not an add option: usage error" 2 ctl_stdin "$PW1" user add "$NAME" --domains a.example --rate 5/h

check_exit "malformed user name exits 1" 1 "$CTL" -c "$CONF" user del 'no such:name'
check_match "malformed user name: says what a name is" "$E2E_OUT" "is not a user name \(1-64 characters"

DEAD=$(free_port)
write_conf "$E2E_TMP/dead.conf" "$DEAD" "connect_timeout = 500ms"
check_exit "redis unreachable: user list exits 1" 1 "$CTL" -c "$E2E_TMP/dead.conf" user list
check_match "redis unreachable: says so" "$E2E_OUT" "^kurierctl: cannot reach Redis at 127\.0\.0\.1:$DEAD"

# --- against Redis ----------------------------------------------------------------------

start_redis "$E2E_TMP/redis" "$PORT" || e2e_abort "redis-server starts"

check_exit "user list, none yet" 0 "$CTL" -c "$CONF" user list
check_eq "user list, none yet: 0 users" "$(printf '%s\n' "$E2E_OUT" | tail -1)" "0 users"

check_exit "short password refused" 1 ctl_stdin 'short7!' user add "$NAME" --domains shop.example
check_match "short password: says so" "$E2E_OUT" "password too short \(7 characters\): use at least 8"
check_exit "empty password refused" 1 "$CTL" -c "$CONF" user add "$NAME" --domains shop.example </dev/null
check_match "empty password: says so" "$E2E_OUT" "^kurierctl: empty password refused"
check_exit "empty line refused" 1 ctl_stdin '' user add "$NAME" --domains shop.example
check_eq "refused passwords stored nothing" "$(redis-cli -p "$PORT" --scan --pattern 'e2e:*' | wc -l)" 0

check_exit "user add via stdin exits 0" 0 ctl_stdin "$PW1" user add "$NAME" --domains 'shop.example,News.Shop.Example'
check_eq "user add: says what it did" "$E2E_OUT" "$NAME: added, may send as shop.example news.shop.example"
check_eq "stored hash is yescrypt" "$(redis-cli -p "$PORT" hget "e2e:user:$NAME" hash | cut -c1-3)" '$y$'
check_exit "second user exits 0" 0 ctl_stdin "$PW2" user add alerts --domains alerts.example

check_exit "user list exits 0" 0 "$CTL" -c "$CONF" user list
check_match "user list: header" "$(printf '%s\n' "$E2E_OUT" | head -1)" \
	"^NAME +ENABLED +DOMAINS +RATE +RCPT RATE +RCPT DOMAINS$"
check_match "user list: the user, enabled, its domains, the [policy] rates, any recipient" "$E2E_OUT" \
	"^shop@site\.example +yes +shop\.example news\.shop\.example +default \(500/h, 20/min\) +default \(none\) +any$"
check_eq "user list: sorted, then the count" \
	"$(printf '%s\n' "$E2E_OUT" | awk 'NR > 1 { print $1 }' | tr '\n' ' ')" "alerts shop@site.example 2 "

check_exit "user add again exits 1" 1 ctl_stdin "$PW2" user add "$NAME" --domains other.example
check_eq "user add again: says what to do" "$E2E_OUT" \
	"kurierctl: user $NAME already exists: use user passwd or user set"
check_eq "user add again: domains unchanged" "$(redis-cli -p "$PORT" hget "e2e:user:$NAME" domains)" \
	"shop.example news.shop.example"

BEFORE=$(redis-cli -p "$PORT" hget "e2e:user:$NAME" hash)
check_exit "user passwd exits 0" 0 ctl_stdin "$PW2" user passwd "$NAME"
check_eq "user passwd: says so" "$E2E_OUT" "$NAME: password changed"
AFTER=$(redis-cli -p "$PORT" hget "e2e:user:$NAME" hash)
check_eq "user passwd: a new hash" "$([ -n "$AFTER" ] && [ "$AFTER" != "$BEFORE" ] && echo changed)" changed
check_exit "user passwd of an unknown user exits 1" 1 ctl_stdin "$PW2" user passwd nobody
check_eq "user passwd of an unknown user: says so" "$E2E_OUT" \
	"kurierctl: no user nobody (kurierctl user list shows every user)"

check_exit "user set --disable exits 0" 0 "$CTL" -c "$CONF" user set "$NAME" --disable
check_eq "user set --disable: says so" "$E2E_OUT" "$NAME: disabled"
check_exit "user list after --disable" 0 "$CTL" -c "$CONF" user list
check_match "user list: shown disabled" "$E2E_OUT" "^shop@site\.example +no +shop\.example news\.shop\.example +default"
check_eq "stored enabled flag" "$(redis-cli -p "$PORT" hget "e2e:user:$NAME" enabled)" 0
check_exit "user show of a disabled user exits 0" 0 "$CTL" -c "$CONF" user show "$NAME"
check_match "user show: disabled" "$E2E_OUT" "^enabled +no \(cannot log in\)$"
check_exit "user set --enable --domains exits 0" 0 "$CTL" -c "$CONF" user set "$NAME" --enable --domains B.example
check_exit "user list after --enable" 0 "$CTL" -c "$CONF" user list
check_match "user list: enabled, new domains" "$E2E_OUT" "^shop@site\.example +yes +b\.example +default"
check_exit "user set of an unknown user exits 1" 1 "$CTL" -c "$CONF" user set nobody --disable
check_match "user set of an unknown user: says so" "$E2E_OUT" "^kurierctl: no user nobody"

# --- per-user policy overrides ------------------------------------------------------------

check_exit "user set --rate exits 0" 0 "$CTL" -c "$CONF" user set "$NAME" --rate '100/h, 5/min'
check_eq "user set --rate: says the stored rate" "$E2E_OUT" "$NAME: rate 100/h, 5/min"
check_eq "user set --rate: stored normalised" "$(redis-cli -p "$PORT" hget "e2e:user:$NAME" rate)" "100/h, 5/min"
check_exit "user set --rcpt-rate --rcpt-domains exits 0" 0 "$CTL" -c "$CONF" user set "$NAME" \
	--rcpt-rate 5000/day --rcpt-domains 'B.example,a.example'
check_eq "user set --rcpt-rate --rcpt-domains: says so" "$E2E_OUT" \
	"$NAME: rcpt rate 5000/d; rcpt domains b.example a.example"
check_eq "stored rcpt_rate" "$(redis-cli -p "$PORT" hget "e2e:user:$NAME" rcpt_rate)" "5000/d"
check_eq "stored rcpt_domains" "$(redis-cli -p "$PORT" hget "e2e:user:$NAME" rcpt_domains)" "b.example a.example"
check_eq "--rcpt-rate left --rate alone" "$(redis-cli -p "$PORT" hget "e2e:user:$NAME" rate)" "100/h, 5/min"

check_exit "user show exits 0" 0 "$CTL" -c "$CONF" user show "$NAME"
check_match "user show: name" "$E2E_OUT" "^name +$NAME$"
check_match "user show: enabled" "$E2E_OUT" "^enabled +yes$"
check_match "user show: domains" "$E2E_OUT" "^domains +b\.example$"
check_match "user show: rate" "$E2E_OUT" "^rate +100/h, 5/min$"
check_match "user show: rcpt rate" "$E2E_OUT" "^rcpt rate +5000/d$"
check_match "user show: rcpt domains" "$E2E_OUT" "^rcpt domains +b\.example a\.example$"
check_match "user show: created, UTC" "$E2E_OUT" "^created +20[0-9]{2}-[0-9]{2}-[0-9]{2} [0-9:]{8} UTC$"
check_match "user show: changed, UTC" "$E2E_OUT" "^changed +20[0-9]{2}-[0-9]{2}-[0-9]{2} [0-9:]{8} UTC$"
check_exit "user list with overrides" 0 "$CTL" -c "$CONF" user list
check_match "user list: the overrides" "$E2E_OUT" \
	"^shop@site\.example +yes +b\.example +100/h, 5/min +5000/d +b\.example a\.example$"
check_match "user list: the other user keeps the defaults" "$E2E_OUT" \
	"^alerts +yes +alerts\.example +default \(500/h, 20/min\) +default \(none\) +any$"

# Refused values change nothing in Redis.
check_exit "bad --rate after a good one: usage error" 2 "$CTL" -c "$CONF" user set "$NAME" --rate 5/min --rcpt-rate 0/d
check_eq "refused user set: rate unchanged" "$(redis-cli -p "$PORT" hget "e2e:user:$NAME" rate)" "100/h, 5/min"
check_eq "refused user set: rcpt_rate unchanged" "$(redis-cli -p "$PORT" hget "e2e:user:$NAME" rcpt_rate)" "5000/d"

# Boundaries: the largest count and window are taken, as is "none".
check_exit "user set --rate 1000000000/31d exits 0" 0 "$CTL" -c "$CONF" user set "$NAME" --rate 1000000000/31d
check_eq "largest rate stored" "$(redis-cli -p "$PORT" hget "e2e:user:$NAME" rate)" "1000000000/31d"
check_exit "user set --rate 1/32d: usage error" 2 "$CTL" -c "$CONF" user set "$NAME" --rate 1/32d
check_match "window over 31 days: says the range" "$E2E_OUT" 'from 1s to 31d'
check_exit "user set --rate none exits 0" 0 "$CTL" -c "$CONF" user set "$NAME" --rate none
check_eq "user set --rate none: says so" "$E2E_OUT" "$NAME: rate none"
check_eq "--rate none stored as an override" "$(redis-cli -p "$PORT" hget "e2e:user:$NAME" rate)" "none"

# Back to the defaults: the fields go.
check_exit "user set --rate default --rcpt-rate default --rcpt-domains any exits 0" 0 \
	"$CTL" -c "$CONF" user set "$NAME" --rate default --rcpt-rate default --rcpt-domains any
check_eq "back to the defaults: says so" "$E2E_OUT" \
	"$NAME: rate default (500/h, 20/min); rcpt rate default (none); rcpt domains any"
check_eq "back to the defaults: fields removed" \
	"$(for f in rate rcpt_rate rcpt_domains; do redis-cli -p "$PORT" hexists "e2e:user:$NAME" $f; done | tr '\n' ' ')" "0 0 0 "
check_exit "user show after default" 0 "$CTL" -c "$CONF" user show "$NAME"
check_match "user show: rate default with the [policy] value" "$E2E_OUT" "^rate +default \(500/h, 20/min\)$"
check_match "user show: rcpt domains any" "$E2E_OUT" "^rcpt domains +any$"

# Domains, enabled flag and a rate in one command.
check_exit "user set --disable --domains --rate exits 0" 0 "$CTL" -c "$CONF" user set "$NAME" \
	--disable --domains c.example --rate 10/min
check_eq "user set of both kinds: says all" "$E2E_OUT" "$NAME: may send as c.example; disabled; rate 10/min"
check_eq "both kinds stored" "$(redis-cli -p "$PORT" hmget "e2e:user:$NAME" domains enabled rate | tr '\n' ' ')" \
	"c.example 0 10/min "
check_exit "user set --enable" 0 "$CTL" -c "$CONF" user set "$NAME" --enable --domains b.example
check_exit "user set --rate of an unknown user exits 1" 1 "$CTL" -c "$CONF" user set nobody --rate 5/h
check_match "user set --rate of an unknown user: says so" "$E2E_OUT" "^kurierctl: no user nobody"
check_eq "user set --rate of an unknown user: not created" "$(redis-cli -p "$PORT" exists e2e:user:nobody)" 0
check_exit "user show of an unknown user exits 1" 1 "$CTL" -c "$CONF" user show nobody
check_eq "user show of an unknown user: says so" "$E2E_OUT" \
	"kurierctl: no user nobody (kurierctl user list shows every user)"

# No password anywhere: not in any key or value, not in any output.
DUMP=$(redis_dump)
check_match "redis dump has the user keys" "$DUMP" "key e2e:user:$NAME"
for pw in "$PW1" "$PW2" "short7!"; do
	check_eq "password \"$pw\" is not in Redis" "$(printf '%s' "$DUMP" | grep -cF -- "$pw")" 0
done
check_eq "no password in the last output" "$(printf '%s' "$E2E_OUT" | grep -cF -- "$PW2")" 0

check_exit "user del exits 0" 0 "$CTL" -c "$CONF" user del "$NAME"
check_eq "user del: says so" "$E2E_OUT" "$NAME: deleted"
check_eq "user del: the key is gone" "$(redis-cli -p "$PORT" exists "e2e:user:$NAME")" 0
check_eq "user del: out of the set" "$(redis-cli -p "$PORT" sismember e2e:users "$NAME")" 0
check_exit "user del again exits 1" 1 "$CTL" -c "$CONF" user del "$NAME"
check_eq "user del again: says so" "$E2E_OUT" \
	"kurierctl: no user $NAME (kurierctl user list shows every user)"
check_exit "user list after del" 0 "$CTL" -c "$CONF" user list
check_eq "user list after del: the other user only" \
	"$(printf '%s\n' "$E2E_OUT" | awk 'NR > 1 { print $1 }' | tr '\n' ' ')" "alerts 1 "

e2e_done
