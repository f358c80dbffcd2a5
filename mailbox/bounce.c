/*
 * bounce - the bounce parser's entry point: the MIME walk through GMime
 * 3, the structured reports (RFC 3464 delivery status, RFC 5965
 * feedback reports), RFC 3834 auto-replies, and the order in which a
 * message is tried as each kind.  The prose of non-standard bounces is
 * read in bounce_text.c, Amazon SES notifications in bounce_ses.c;
 * classes and reasons are bounce_class.c's; the small readers of codes,
 * addresses and fields they share are bounce_lex.c's.
 *
 * The order: a feedback report (or a provider's complaint mail) is a
 * complaint; a delivery-status part with at least one recipient is a
 * DSN; a message whose sender, subject or text says it is a bounce and
 * whose text yields a recipient with a status (or a known bounce
 * format) is a DSN; a message marked as an automatic reply (RFC 3834
 * Auto-Submitted: auto-replied, X-Autoreply, Precedence: auto_reply,
 * or an out-of-office subject) is an auto-reply; anything else is none.
 */
#include <ctype.h>
#include <errno.h>
#include <gmime/gmime.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "mailbox/bounce.h"
#include "mailbox/bounce_int.h"

/* Deepest MIME nesting walked; deeper parts are ignored. */
#define WALK_DEPTH_MAX 16

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;

static void
gmime_start(void)
{
	g_mime_init();
}

void
bounce__gmime_init(void)
{
	pthread_once(&gmime_once, gmime_start);
}

/* --- small helpers (the rest are bounce_lex.c's) ------------------------------------ */

/* set_str - *dst, a string of a result, becomes s ("" for NULL). */
static void
set_str(char **dst, const char *s)
{
	bounce__set(dst, s, s != NULL ? strlen(s) : 0);
}

/* addr_of - the address in s (a header value, a DSN field), or "". */
static void
addr_of(char **dst, const char *s)
{
	size_t at, alen;

	if (s != NULL && bounce__find_addr(s, strlen(s), &at, &alen))
		bounce__set(dst, s + at, alen);
	else
		set_str(dst, "");
}

/* --- the MIME walk ------------------------------------------------------------------ */

/* part_bytes - a leaf part's content, transfer-decoded and, for text, made UTF-8. */
static void
part_bytes(GMimePart *part, bool text, struct buf *out)
{
	GMimeDataWrapper *w = g_mime_part_get_content(part);
	GMimeStream *mem, *filtered;
	GByteArray *ba;
	const char *charset;

	if (w == NULL)
		return;
	mem = g_mime_stream_mem_new();
	filtered = g_mime_stream_filter_new(mem);
	charset = g_mime_object_get_content_type_parameter(GMIME_OBJECT(part), "charset");
	if (text && charset != NULL && g_ascii_strcasecmp(charset, "utf-8") != 0 &&
	    g_ascii_strcasecmp(charset, "us-ascii") != 0) {
		GMimeFilter *f = g_mime_filter_charset_new(charset, "UTF-8");

		if (f != NULL) {
			g_mime_stream_filter_add(GMIME_STREAM_FILTER(filtered), f);
			g_object_unref(f);
		}
	}
	g_mime_data_wrapper_write_to_stream(w, filtered);
	g_mime_stream_flush(filtered);
	ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	if (ba != NULL && ba->len > 0)
		buf_append(out, ba->data, ba->len);
	g_object_unref(filtered);
	g_object_unref(mem);
}

/* block_tag - s (at least 4 bytes) opens a tag that starts a line: br, p, tr, div. */
static bool
block_tag(const char *s)
{
	return strncasecmp(s, "<br", 3) == 0 || strncasecmp(s, "<p", 2) == 0 ||
	    strncasecmp(s, "<tr", 3) == 0 || strncasecmp(s, "<div", 4) == 0 ||
	    strncasecmp(s, "</p", 3) == 0;
}

/* strip_html - the text of an HTML part: tags dropped, a few entities decoded. */
static void
strip_html(const char *s, size_t len, struct buf *out)
{
	static const struct {
		const char *ent;
		char c;
	} ents[] = { { "&lt;", '<' }, { "&gt;", '>' }, { "&amp;", '&' },
		{ "&nbsp;", ' ' }, { "&quot;", '"' }, { "&#39;", '\'' } };
	bool tag = false;

	for (size_t i = 0; i < len; i++) {
		if (tag) {
			if (s[i] == '>')
				tag = false;
			continue;
		}
		if (s[i] == '<') {
			/* A line break for block elements keeps lines apart. */
			if (i + 3 < len && block_tag(s + i))
				buf_appendc(out, '\n');
			tag = true;
			continue;
		}
		if (s[i] == '&') {
			size_t k;

			for (k = 0; k < sizeof ents / sizeof ents[0]; k++) {
				size_t n = strlen(ents[k].ent);

				if (len - i >= n && strncasecmp(s + i, ents[k].ent, n) == 0) {
					buf_appendc(out, ents[k].c);
					i += n - 1;
					break;
				}
			}
			if (k < sizeof ents / sizeof ents[0])
				continue;
		}
		buf_appendc(out, s[i]);
	}
	buf_appendc(out, '\n');
}

/* headers_of - an object's header fields as "Name: value" lines into out. */
static void
headers_of(GMimeObject *o, struct buf *out)
{
	GMimeHeaderList *hl = g_mime_object_get_header_list(o);
	int n = hl != NULL ? g_mime_header_list_get_count(hl) : 0;

	for (int i = 0; i < n; i++) {
		GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
		const char *name = g_mime_header_get_name(h);
		const char *v = g_mime_header_get_raw_value(h);
		char *one = NULL;

		if (name == NULL)
			continue;
		bounce__set(&one, v != NULL ? v : "", v != NULL ? strlen(v) : 0);
		buf_appendf(out, "%s: %s\n", name, one);
		free(one);
	}
	buf_appendc(out, '\n');
}

static void
walk(struct bounce_scan *sc, GMimeObject *o, int depth)
{
	GMimeContentType *ct;
	const char *type, *sub;

	if (o == NULL || depth > WALK_DEPTH_MAX)
		return;
	ct = g_mime_object_get_content_type(o);
	type = ct != NULL ? g_mime_content_type_get_media_type(ct) : NULL;
	sub = ct != NULL ? g_mime_content_type_get_media_subtype(ct) : NULL;
	if (type == NULL)
		type = "text";
	if (sub == NULL)
		sub = "plain";

	if (GMIME_IS_MULTIPART(o)) {
		GMimeMultipart *mp = GMIME_MULTIPART(o);
		int n = g_mime_multipart_get_count(mp);

		if (g_ascii_strcasecmp(sub, "report") == 0) {
			const char *rt = g_mime_content_type_get_parameter(ct, "report-type");

			if (rt != NULL && g_ascii_strcasecmp(rt, "delivery-status") == 0)
				sc->report_dsn = true;
			if (rt != NULL && g_ascii_strcasecmp(rt, "feedback-report") == 0)
				sc->report_arf = true;
		}
		for (int i = 0; i < n; i++)
			walk(sc, g_mime_multipart_get_part(mp, i), depth + 1);
		return;
	}
	if (GMIME_IS_MESSAGE_PART(o)) {
		GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));

		/* The returned message: its header only, never its text. */
		if (m != NULL)
			headers_of(GMIME_OBJECT(m), &sc->orig);
		return;
	}
	if (!GMIME_IS_PART(o))
		return;
	if (g_ascii_strcasecmp(type, "message") == 0) {
		if (g_ascii_strcasecmp(sub, "delivery-status") == 0 ||
		    g_ascii_strcasecmp(sub, "global-delivery-status") == 0) {
			part_bytes(GMIME_PART(o), false, &sc->status);
			buf_appends(&sc->status, "\n\n");
		} else if (g_ascii_strcasecmp(sub, "feedback-report") == 0) {
			sc->report_arf = true;
			part_bytes(GMIME_PART(o), false, &sc->feedback);
			buf_appends(&sc->feedback, "\n\n");
		} else if (g_ascii_strcasecmp(sub, "global-headers") == 0) {
			part_bytes(GMIME_PART(o), false, &sc->orig);
			buf_appendc(&sc->orig, '\n');
		}
		return;
	}
	if (g_ascii_strcasecmp(type, "text") == 0) {
		if (g_ascii_strcasecmp(sub, "rfc822-headers") == 0) {
			part_bytes(GMIME_PART(o), false, &sc->orig);
			buf_appendc(&sc->orig, '\n');
		} else if (g_ascii_strcasecmp(sub, "html") == 0) {
			struct buf h = BUF_INIT;

			part_bytes(GMIME_PART(o), true, &h);
			strip_html(h.data != NULL ? h.data : "", h.len, &sc->html);
			buf_free(&h);
		} else {
			part_bytes(GMIME_PART(o), true, &sc->text);
			buf_appendc(&sc->text, '\n');
		}
	}
}

/* top_header - a top-level header field of m, "" when absent. */
static void
top_header(GMimeMessage *m, const char *name, char **dst)
{
	const char *v = g_mime_object_get_header(GMIME_OBJECT(m), name);

	set_str(dst, v != NULL ? v : "");
}

static void
scan_free(struct bounce_scan *sc)
{
	free(sc->subject);
	free(sc->from);
	free(sc->to);
	free(sc->auto_submitted);
	free(sc->precedence);
	free(sc->x_failed);
	buf_free(&sc->text);
	buf_free(&sc->html);
	buf_free(&sc->status);
	buf_free(&sc->feedback);
	buf_free(&sc->orig);
}

/* scan - parse msg with GMime and gather what the readers need. */
static void
scan(const char *msg, size_t len, struct bounce_scan *sc)
{
	GMimeStream *st;
	GMimeParser *p;
	GMimeMessage *m;
	const char *subj;
	bool nothing;

	/* An mbox "From " line before the header is not a header field. */
	if (len > 5 && strncmp(msg, "From ", 5) == 0) {
		const char *eol = memchr(msg, '\n', len);

		if (eol != NULL) {
			len -= (size_t)(eol + 1 - msg);
			msg = eol + 1;
		}
	}
	st = g_mime_stream_mem_new_with_buffer(msg, len);
	p = g_mime_parser_new_with_stream(st);
	m = g_mime_parser_construct_message(p, NULL);
	if (m != NULL) {
		subj = g_mime_message_get_subject(m);
		set_str(&sc->subject, subj != NULL ? subj : "");
		top_header(m, "From", &sc->from);
		top_header(m, "To", &sc->to);
		top_header(m, "Auto-Submitted", &sc->auto_submitted);
		top_header(m, "Precedence", &sc->precedence);
		top_header(m, "X-Failed-Recipients", &sc->x_failed);
		sc->x_autoreply = g_mime_object_get_header(GMIME_OBJECT(m), "X-Autoreply") != NULL ||
		    g_mime_object_get_header(GMIME_OBJECT(m), "X-Autorespond") != NULL;
		walk(sc, g_mime_message_get_mime_part(m), 0);
		g_object_unref(m);
	}
	g_object_unref(p);
	g_object_unref(st);
	if (sc->subject == NULL) {
		set_str(&sc->subject, "");
		set_str(&sc->from, "");
		set_str(&sc->to, "");
		set_str(&sc->auto_submitted, "");
		set_str(&sc->precedence, "");
		set_str(&sc->x_failed, "");
	}
	/* A message GMime could not read at all: its bytes are the text. */
	nothing = sc->text.len == 0 && sc->html.len == 0 && sc->status.len == 0 &&
	    sc->feedback.len == 0 && sc->orig.len == 0;
	if (m == NULL || nothing)
		buf_append(&sc->text, msg, len);
	if (sc->text.len == 0 && sc->html.len > 0)
		buf_append(&sc->text, sc->html.data, sc->html.len);
}

/* --- RFC 3464 delivery status ---------------------------------------------------------- */

/* after_type - "rfc822; a@b" -> "a@b"; "smtp; 550 ..." -> "550 ...". */
static const char *
after_type(const char *v)
{
	const char *semi = strchr(v, ';');

	if (semi == NULL)
		return v;
	for (const char *p = v; p < semi; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != ' ')
			return v;
	semi++;
	while (*semi == ' ')
		semi++;
	return semi;
}

/* status_block - one per-recipient block of a delivery-status part. */
static void
status_block(const char *b, size_t len, struct bounce_result *r)
{
	char *final = bounce__field(b, len, "Final-Recipient");
	char *orig = bounce__field(b, len, "Original-Recipient");
	char *action = bounce__field(b, len, "Action");
	char *status = bounce__field(b, len, "Status");
	char *rmta = bounce__field(b, len, "Remote-MTA");
	char *diag = bounce__field(b, len, "Diagnostic-Code");
	struct bounce_rcpt *rc;
	char code[16] = "", dcode[16] = "";

	if (final == NULL && orig == NULL)
		goto out;
	if (r->nrcpt >= BOUNCE_RCPT_MAX)
		goto out;
	rc = bounce__rcpt_add(r);
	addr_of(&rc->recipient, final != NULL ? after_type(final) : "");
	addr_of(&rc->original_recipient, orig != NULL ? after_type(orig) : "");
	if (rc->recipient[0] == '\0')
		set_str(&rc->recipient, rc->original_recipient);
	if (action != NULL) {
		set_str(&rc->action, action);
		str_lower(rc->action);
		/* "failed (bad destination mailbox address)": the word alone. */
		for (char *p = rc->action; *p != '\0'; p++)
			if (*p == ' ' || *p == '(' || *p == ';') {
				*p = '\0';
				break;
			}
	}
	set_str(&rc->remote_mta, rmta != NULL ? after_type(rmta) : "");
	set_str(&rc->diagnostic, diag != NULL ? after_type(diag) : "");
	if (status != NULL)
		bounce__find_status(status, strlen(status), code);
	if (diag != NULL)
		bounce__find_status(diag, strlen(diag), dcode);
	/* "5.0.0" says nothing the diagnostic's own "5.1.1" does not say better. */
	if (code[0] == '\0' || (strcmp(code + 1, ".0.0") == 0 && dcode[0] == code[0]))
		str_copy(code, dcode, sizeof code);
	if (code[0] == '\0' && diag != NULL) {
		int reply;
		const char *d = after_type(diag);

		/* "550 ...", or a reply that stands where bounce__find_reply() looks. */
		if (sscanf(d, "%3d", &reply) != 1 || !isdigit((unsigned char)d[0]) || reply < 400 ||
		    reply >= 600)
			reply = 0;
		if (reply != 0 || bounce__find_reply(d, strlen(d), &reply) >= 0)
			snprintf(code, sizeof code, "%d.0.0", reply / 100);
	}
	/*
	 * No code anywhere: what the action says.  "expired" is not an RFC
	 * 3464 action but some servers write it (4.4.7, and the recipient
	 * failed); "failed" is permanent by definition (5.0.0).
	 */
	if (code[0] == '\0' && strcmp(rc->action, "expired") == 0) {
		str_copy(code, "4.4.7", sizeof code);
		set_str(&rc->action, "failed");
	} else if (code[0] == '\0' && strcmp(rc->action, "failed") == 0) {
		str_copy(code, "5.0.0", sizeof code);
	}
	str_copy(rc->status, code, sizeof rc->status);
out:
	free(final);
	free(orig);
	free(action);
	free(status);
	free(rmta);
	free(diag);
}

/*
 * status_fields - the blocks of a delivery-status text: the first is
 * per message (Reporting-MTA), each later one per recipient.  Blocks
 * are separated by blank lines; a block with a recipient field counts
 * wherever it stands, since some servers leave the first one out.
 */
static void
status_fields(const char *s, size_t len, struct bounce_result *r)
{
	const char *p = s, *end = s + len;

	while (p < end) {
		const char *q = p, *bend;
		char *rm;

		/* A block ends at a line holding nothing but white space. */
		for (;;) {
			const char *eol = memchr(q, '\n', (size_t)(end - q));
			const char *t;

			if (eol == NULL) {
				q = end;
				break;
			}
			for (t = eol + 1; t < end && (*t == ' ' || *t == '\t' || *t == '\r'); t++)
				;
			if (t >= end || *t == '\n') {
				q = eol + 1;
				break;
			}
			q = eol + 1;
		}
		bend = q;
		if (r->reporting_mta[0] == '\0' &&
		    (rm = bounce__field(p, (size_t)(bend - p), "Reporting-MTA")) != NULL) {
			set_str(&r->reporting_mta, after_type(rm));
			free(rm);
		}
		status_block(p, (size_t)(bend - p), r);
		/* Skip the blank lines. */
		while (q < end && (*q == '\n' || *q == '\r' || *q == ' ' || *q == '\t'))
			q++;
		p = q;
	}
}

void
bounce__status_text(const char *s, size_t len, struct bounce_result *r)
{
	static const char *const starts[] = { "Reporting-MTA:", "Final-Recipient:",
		"Original-Recipient:", NULL };
	const char *first = NULL;

	for (int i = 0; starts[i] != NULL; i++) {
		const char *h = memmem(s, len, starts[i], strlen(starts[i]));

		if (h != NULL && (first == NULL || h < first))
			first = h;
	}
	if (first != NULL)
		status_fields(first, len - (size_t)(first - s), r);
}

/* --- RFC 5965 feedback reports and providers' complaint mail ---------------------------- */

static bool
complaint(const struct bounce_scan *sc, struct bounce_result *r)
{
	const char *fb = sc->feedback.data != NULL ? sc->feedback.data : "";
	const char *orig = sc->orig.data != NULL ? sc->orig.data : "";
	char *ft = NULL, *rcpt = NULL, *hm = NULL, *to = NULL;
	struct bounce_rcpt *rc;
	bool apple_unsub;

	apple_unsub = sc->text.data != NULL &&
	    strstr(sc->text.data, "sent this email to unsubscribe") != NULL;
	hm = bounce__field(orig, sc->orig.len, "X-HmXmrOriginalRecipient");
	if (!sc->report_arf && hm == NULL && !apple_unsub)
		return false;
	r->type = BOUNCE_TYPE_COMPLAINT;
	ft = bounce__field(fb, sc->feedback.len, "Feedback-Type");
	set_str(&r->feedback_type, ft != NULL ? ft : apple_unsub ? "opt-out" :
	                                                           "abuse");
	str_lower(r->feedback_type);
	rcpt = bounce__field(fb, sc->feedback.len, "Original-Rcpt-To");
	to = bounce__field(orig, sc->orig.len, "To");
	rc = bounce__rcpt_add(r);
	/* Who complained: Original-Rcpt-To, else the returned message's To. */
	if (rcpt != NULL)
		addr_of(&rc->recipient, rcpt);
	if (rc->recipient[0] == '\0' && hm != NULL)
		addr_of(&rc->recipient, hm);
	if (rc->recipient[0] == '\0' && to != NULL)
		addr_of(&rc->recipient, to);
	/* An unsubscribe sent by a mail client comes from the recipient itself. */
	if (rc->recipient[0] == '\0' && apple_unsub)
		addr_of(&rc->recipient, sc->from);
	set_str(&rc->diagnostic, sc->subject);
	free(ft);
	free(rcpt);
	free(hm);
	free(to);
	return true;
}

/* --- RFC 3834 auto-replies ---------------------------------------------------------- */

static bool
subject_auto(const char *s)
{
	static const char *const subj[] = { "out of office", "out of the office",
		"automatic reply", "auto reply", "auto-reply", "autoreply", "auto:",
		"autoresponse", "autorespons", "auto response", "auto-response",
		"away from the office", "away from my", "away until", "on vacation",
		"vacation reply", "abwesenheitsnotiz", "automatische antwort",
		"réponse automatique", "reponse automatique", "absence du bureau",
		"risposta automatica", "fuori ufficio", "respuesta automática",
		"respuesta automatica", "fuera de la oficina", "automatisch antwoord",
		"afwezigheidsbericht", "resposta automática", "autosvar",
		"automaattinen vastaus", "automatyczna odpowiedź", "автоответ",
		"自動応答", "自动回复", NULL };

	for (int i = 0; subj[i] != NULL; i++)
		if (strcasestr(s, subj[i]) != NULL)
			return true;
	return false;
}

static bool
local_part_is_daemon(const char *from)
{
	return strcasestr(from, "mailer-daemon") != NULL || strcasestr(from, "postmaster@") != NULL ||
	    strcasestr(from, "mail delivery") != NULL;
}

static bool
auto_reply(const struct bounce_scan *sc, struct bounce_result *r)
{
	struct bounce_rcpt *rc;
	bool yes;

	/* A mail system's notice is no person's reply, whatever its header says. */
	if (local_part_is_daemon(sc->from))
		return false;
	yes = strncasecmp(sc->auto_submitted, "auto-replied", 12) == 0 || sc->x_autoreply ||
	    strcasecmp(sc->precedence, "auto_reply") == 0 || subject_auto(sc->subject);
	if (!yes)
		return false;
	r->type = BOUNCE_TYPE_AUTO_REPLY;
	rc = bounce__rcpt_add(r);
	/* The reply comes from the recipient it answers for. */
	addr_of(&rc->recipient, sc->from);
	set_str(&rc->diagnostic, sc->subject);
	return true;
}

/* --- the API ---------------------------------------------------------------------------- */

int
bounce_parse(const char *msg, size_t len, struct bounce_result *out)
{
	struct bounce_scan sc;

	memset(out, 0, sizeof *out);
	memset(&sc, 0, sizeof sc);
	out->reporting_mta = xstrdup("");
	out->feedback_type = xstrdup("");
	out->orig_message_id = xstrdup("");
	out->orig_return_path = xstrdup("");
	bounce__gmime_init();
	scan(msg != NULL ? msg : "", msg != NULL ? len : 0, &sc);

	if (bounce__ses_json(&sc, out)) {
		/* Type and recipients set. */
	} else if (!complaint(&sc, out)) {
		if (sc.status.len > 0)
			status_fields(sc.status.data, sc.status.len, out);
		if (out->nrcpt == 0 && sc.report_dsn && sc.text.len > 0)
			bounce__status_text(sc.text.data, sc.text.len, out);
		if (out->nrcpt > 0) {
			out->type = BOUNCE_TYPE_DSN;
			bounce__dsn_fill(&sc, out);
		} else if (bounce__text(&sc, out))
			out->type = BOUNCE_TYPE_DSN;
		else if (!auto_reply(&sc, out))
			out->type = BOUNCE_TYPE_NONE;
	}
	bounce__orig_headers(&sc, out);
	bounce__classify(out);
	scan_free(&sc);
	return 0;
}

void
bounce_result_free(struct bounce_result *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->nrcpt; i++) {
		free(r->rcpt[i].recipient);
		free(r->rcpt[i].original_recipient);
		free(r->rcpt[i].action);
		free(r->rcpt[i].remote_mta);
		free(r->rcpt[i].diagnostic);
	}
	free(r->rcpt);
	free(r->reporting_mta);
	free(r->feedback_type);
	free(r->orig_message_id);
	free(r->orig_return_path);
	memset(r, 0, sizeof *r);
}

const char *
bounce_type_name(enum bounce_type t)
{
	switch (t) {
	case BOUNCE_TYPE_DSN:
		return "dsn";
	case BOUNCE_TYPE_COMPLAINT:
		return "complaint";
	case BOUNCE_TYPE_AUTO_REPLY:
		return "auto-reply";
	case BOUNCE_TYPE_NONE:
		break;
	}
	return "none";
}

const char *
bounce_class_name(enum bounce_class c)
{
	switch (c) {
	case BOUNCE_CLASS_HARD:
		return "hard";
	case BOUNCE_CLASS_SOFT:
		return "soft";
	case BOUNCE_CLASS_COMPLAINT:
		return "complaint";
	case BOUNCE_CLASS_AUTO_REPLY:
		return "auto-reply";
	case BOUNCE_CLASS_NONE:
		break;
	}
	return "none";
}
