#!/usr/bin/env bash
# users.sh - end-to-end test of kurierctl's user commands against a real
# redis-server on a free port: add (password on stdin), list, passwd,
# set, del; the refusals (password on argv, short or empty password,
# unknown user, existing user); and that no password ever reaches Redis
# or kurierctl's output.  Keys follow policy/auth.h: PREFIX user:NAME
# (hash) and PREFIX users (set).
#
# Environment: KURIER_BIN (kurierctl), KURIER_REDIS_CONF
# (deploy/redis.conf); see lib.sh.

source "$(dirname "$0")/lib.sh"

for v in KURIER_BIN KURIER_REDIS_CONF; do
	if [ -z "${!v:-}" ]; then
		echo "# $v is not set (see tests/e2e/lib.sh)"
		exit 1
	fi
done

e2e_init

CTL=$KURIER_BIN/kurierctl
PORT=$(free_port)
CONF=$E2E_TMP/kurier.conf
write_conf "$CONF" "$PORT"
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
check_match "help lists user set" "$E2E_OUT" "user set NAME \[--domains LIST\] \[--enable\|--disable\]"

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
check_exit "malformed user name exits 1" 1 "$CTL" -c "$CONF" user del 'no such:name'
check_match "malformed user name: says what a name is" "$E2E_OUT" "is not a user name \(1-64 characters"

DEAD=$(free_port)
write_conf "$E2E_TMP/dead.conf" "$DEAD" "connect_timeout = 500ms"
check_exit "redis unreachable: user list exits 1" 1 "$CTL" -c "$E2E_TMP/dead.conf" user list
check_match "redis unreachable: says so" "$E2E_OUT" "^kurierctl: cannot reach Redis at 127\.0\.0\.1:$DEAD"

# --- against Redis ----------------------------------------------------------------------

if ! start_redis "$E2E_TMP/redis" "$PORT"; then
	fail "redis-server starts"
	e2e_done
	exit 1
fi

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
check_match "user list: header" "$(printf '%s\n' "$E2E_OUT" | head -1)" "^NAME +ENABLED +DOMAINS$"
check_match "user list: the user, enabled, its domains" "$E2E_OUT" \
	"^shop@site\.example +yes +shop\.example news\.shop\.example$"
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
check_match "user list: shown disabled" "$E2E_OUT" "^shop@site\.example +no +shop\.example news\.shop\.example$"
check_eq "stored enabled flag" "$(redis-cli -p "$PORT" hget "e2e:user:$NAME" enabled)" 0
check_exit "user set --enable --domains exits 0" 0 "$CTL" -c "$CONF" user set "$NAME" --enable --domains B.example
check_exit "user list after --enable" 0 "$CTL" -c "$CONF" user list
check_match "user list: enabled, new domains" "$E2E_OUT" "^shop@site\.example +yes +b\.example$"
check_exit "user set of an unknown user exits 1" 1 "$CTL" -c "$CONF" user set nobody --disable
check_match "user set of an unknown user: says so" "$E2E_OUT" "^kurierctl: no user nobody"

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
