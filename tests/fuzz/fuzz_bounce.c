/*
 * fuzz_bounce - libFuzzer target for mailbox/bounce, the parser and
 * classifier of returned messages: the input is a whole message, as the
 * inbound MX would store it.
 *
 * Every input must parse (bounce_parse returns 0) into a result that
 * keeps its contract: a known type; at most 1000 recipients, each with
 * NUL-terminated strings (diagnostics of at most 1000 bytes, one line),
 * a status that is empty or "class.subject.detail" with class 2, 4 or
 * 5, a known class and a reason; a none return without recipients; and
 * complaints and auto-replies whose recipients carry their class.  Then
 * bounce_result_free() must release everything (LeakSanitizer checks).
 * Any breach aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailbox/bounce.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_status(const char *s)
{
	size_t n = strlen(s);

	if (n == 0)
		return;
	if (n < 5 || n > 9 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		abort();
}

static void
check_line(const char *s, size_t max)
{
	if (s == NULL || strlen(s) > max || strchr(s, '\n') != NULL || strchr(s, '\r') != NULL)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bounce_result r;

	if (bounce_parse((const char *)data, size, &r) != 0)
		abort();
	if (r.type != BOUNCE_TYPE_NONE && r.type != BOUNCE_TYPE_DSN &&
	    r.type != BOUNCE_TYPE_COMPLAINT && r.type != BOUNCE_TYPE_AUTO_REPLY)
		abort();
	if (r.nrcpt > 1000 || (r.nrcpt > 0 && r.rcpt == NULL))
		abort();
	if (r.type == BOUNCE_TYPE_NONE && r.nrcpt != 0)
		abort();
	check_line(r.reporting_mta, 1000);
	check_line(r.feedback_type, 1000);
	check_line(r.orig_message_id, 1000);
	check_line(r.orig_return_path, 1000);
	for (size_t i = 0; i < r.nrcpt; i++) {
		const struct bounce_rcpt *rc = &r.rcpt[i];

		check_line(rc->recipient, 1000);
		check_line(rc->original_recipient, 1000);
		check_line(rc->action, 1000);
		check_line(rc->remote_mta, 1000);
		check_line(rc->diagnostic, 1000);
		if (memchr(rc->status, '\0', sizeof rc->status) == NULL)
			abort();
		check_status(rc->status);
		if (rc->reason == NULL || rc->reason[0] == '\0')
			abort();
		if (rc->cls != BOUNCE_CLASS_NONE && rc->cls != BOUNCE_CLASS_HARD &&
		    rc->cls != BOUNCE_CLASS_SOFT && rc->cls != BOUNCE_CLASS_COMPLAINT &&
		    rc->cls != BOUNCE_CLASS_AUTO_REPLY)
			abort();
		if ((r.type == BOUNCE_TYPE_COMPLAINT) != (rc->cls == BOUNCE_CLASS_COMPLAINT))
			abort();
		if ((r.type == BOUNCE_TYPE_AUTO_REPLY) != (rc->cls == BOUNCE_CLASS_AUTO_REPLY))
			abort();
		/* Hard only for a permanent failure. */
		if (rc->cls == BOUNCE_CLASS_HARD && rc->status[0] != '5')
			abort();
	}
	bounce_result_free(&r);
	return 0;
}
