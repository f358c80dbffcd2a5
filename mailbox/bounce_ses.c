/*
 * bounce_ses - Amazon SES notifications: the JSON that SES sends through
 * SNS to an e-mail subscription ("notificationType" Bounce, Complaint or
 * Delivery), bare or inside the SNS envelope, where its quotes are
 * escaped.  Read by looking up the few keys it needs, not by a JSON
 * parser: what matters is bounded by the message's length, and anything
 * else is ignored.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/str.h"
#include "mailbox/bounce.h"
#include "mailbox/bounce_int.h"

/* json_str - the string value of "key" at or after p (before end), unescaped into dst. */
static bool
json_str(const char *p, const char *end, const char *key, char **dst)
{
	char pat[64];
	const char *k, *v;
	struct buf b = BUF_INIT;

	snprintf(pat, sizeof pat, "\"%s\"", key);
	k = memmem(p, (size_t)(end - p), pat, strlen(pat));
	if (k == NULL)
		return false;
	v = k + strlen(pat);
	while (v < end && (*v == ' ' || *v == ':'))
		v++;
	if (v >= end || *v != '"')
		return false;
	for (v++; v < end && *v != '"'; v++) {
		if (*v == '\\' && v + 1 < end)
			v++;
		buf_appendc(&b, *v);
	}
	bounce__set(dst, b.data != NULL ? b.data : "", b.len);
	buf_free(&b);
	return true;
}

bool
bounce__ses_json(const struct bounce_scan *sc, struct bounce_result *r)
{
	const char *s, *end, *arr, *close;
	struct buf t = BUF_INIT;
	char *kind = NULL, *btype = NULL, *rmta = NULL;
	const char *list;
	bool ok = false, transient;

	if (sc->text.len == 0 || memmem(sc->text.data, sc->text.len, "notificationType", 16) == NULL)
		return false;
	/* The SNS envelope escapes the notification's quotes: drop the escapes. */
	for (size_t i = 0; i < sc->text.len; i++) {
		if (sc->text.data[i] == '\\' && i + 1 < sc->text.len && sc->text.data[i + 1] == '"')
			continue;
		buf_appendc(&t, sc->text.data[i]);
	}
	s = t.data;
	end = t.data + t.len;
	if (!json_str(s, end, "notificationType", &kind))
		goto out;
	if (strcasecmp(kind, "Bounce") == 0) {
		r->type = BOUNCE_TYPE_DSN;
		list = "\"bouncedRecipients\"";
	} else if (strcasecmp(kind, "Complaint") == 0) {
		r->type = BOUNCE_TYPE_COMPLAINT;
		list = "\"complainedRecipients\"";
		if (!json_str(s, end, "complaintFeedbackType", &r->feedback_type))
			bounce__set(&r->feedback_type, "abuse", 5);
	} else if (strcasecmp(kind, "Delivery") == 0) {
		r->type = BOUNCE_TYPE_DSN;
		list = "\"recipients\"";
	} else {
		goto out;
	}
	json_str(s, end, "bounceType", &btype);
	transient = btype != NULL && strcasecmp(btype, "Transient") == 0;
	if (json_str(s, end, "reportingMTA", &rmta))
		bounce__set(&r->reporting_mta, rmta, strlen(rmta));
	arr = memmem(s, t.len, list, strlen(list));
	if (arr == NULL || (arr = memchr(arr, '[', (size_t)(end - arr))) == NULL)
		goto out;
	close = memchr(arr, ']', (size_t)(end - arr));
	if (close == NULL)
		close = end;
	if (strcasecmp(kind, "Delivery") == 0) {
		/* ["a@b", ...]: each address delivered, with the smtpResponse. */
		char *resp = NULL;
		char code[16] = "";

		json_str(s, end, "smtpResponse", &resp);
		if (resp != NULL)
			bounce__find_status(resp, strlen(resp), code);
		for (const char *p = arr; p < close && r->nrcpt < BOUNCE_RCPT_MAX;) {
			size_t at, alen;
			struct bounce_rcpt *rc;

			if (!bounce__find_addr(p, (size_t)(close - p), &at, &alen))
				break;
			rc = bounce__rcpt_add(r);
			bounce__set(&rc->recipient, p + at, alen);
			bounce__set(&rc->action, "delivered", 9);
			str_copy(rc->status, code[0] != '\0' ? code : "2.0.0", sizeof rc->status);
			if (resp != NULL)
				bounce__set(&rc->diagnostic, resp, strlen(resp));
			p += at + alen;
		}
		free(resp);
	} else {
		/* [{"emailAddress":"a@b","action":...,"status":...,"diagnosticCode":...}, ...] */
		for (const char *p = arr; p < close && r->nrcpt < BOUNCE_RCPT_MAX;) {
			const char *obj = memchr(p, '{', (size_t)(close - p)), *oend;
			struct bounce_rcpt *rc;
			char *v = NULL;

			if (obj == NULL)
				break;
			oend = memchr(obj, '}', (size_t)(end - obj));
			if (oend == NULL)
				oend = end;
			if (!json_str(obj, oend, "emailAddress", &v)) {
				p = oend;
				continue;
			}
			rc = bounce__rcpt_add(r);
			free(rc->recipient);
			rc->recipient = v;
			v = NULL;
			if (json_str(obj, oend, "action", &v)) {
				free(rc->action);
				rc->action = v;
				v = NULL;
			}
			if (json_str(obj, oend, "status", &v))
				bounce__find_status(v, strlen(v), rc->status);
			free(v);
			json_str(obj, oend, "diagnosticCode", &rc->diagnostic);
			if (strncmp(rc->diagnostic, "smtp;", 5) == 0)
				memmove(rc->diagnostic, rc->diagnostic + 5 + (rc->diagnostic[5] == ' '),
				    strlen(rc->diagnostic + 5 + (rc->diagnostic[5] == ' ')) + 1);
			if (rc->status[0] == '\0' && r->type == BOUNCE_TYPE_DSN)
				str_copy(rc->status, transient ? "4.0.0" : "5.0.0", sizeof rc->status);
			if (rc->action[0] == '\0' && r->type == BOUNCE_TYPE_DSN)
				bounce__set(&rc->action, "failed", 6);
			p = oend;
		}
	}
	ok = r->nrcpt > 0;
	if (!ok)
		r->type = BOUNCE_TYPE_NONE;
out:
	free(kind);
	free(btype);
	free(rmta);
	buf_free(&t);
	return ok;
}
