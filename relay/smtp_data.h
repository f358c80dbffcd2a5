/*
 * smtp_data - the DATA reader: finds the end of the mail data, undoes
 * dot-stuffing (RFC 5321 4.5.2) and flags what the session must refuse,
 * fed incrementally with whatever bytes arrived.
 *
 * Only CR LF "." CR LF ends the data, where the first CR LF may be the
 * start of the data (a first line of "." is an empty message).  Every
 * other line-end spelling - "<LF>.<LF>", "<CR>.<CR>", "<LF>.<CR><LF>",
 * "<CR><LF>.<LF>", "<CR><LF>.<CR>" followed by anything but LF - is
 * message data (the SMTP smuggling class, CVE-2023-51764/51765/51766):
 * the data goes on, and bare_lf or bare_cr is set.  A line starts only
 * after CR LF, so a "." after a bare LF is neither a terminator nor
 * unstuffed.  The session answers a flagged message only after the real
 * terminator (550 5.6.0 for bare CR, bare LF or NUL; 552 5.3.4 for
 * too_big; line_too_long as its policy says), so a smuggled "end" never
 * makes it read the rest of the data as commands.
 *
 * The output is the message as the client meant it: unstuffed, with its
 * last CR LF, without the terminating ".\r\n".  Other bytes are copied
 * as they are, bare CR, bare LF and NUL included.
 *
 * struct smtp_data is public so the session can embed it; its fields
 * are private to this module.  It borrows out, which the session owns;
 * nothing here allocates except by appending to out.  Work is O(n) in
 * the bytes fed, whatever their split.
 */
#ifndef KURIER_RELAY_SMTP_DATA_H
#define KURIER_RELAY_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define SMTP_DATA_LINE_MAX 998  /* RFC 5321 4.5.3.1.6, without CR LF */

enum smtp_data_status {
	SMTP_DATA_MORE = 0,     /* all input consumed, no terminator yet */
	SMTP_DATA_END = 1,      /* terminator consumed; the rest is not ours */
};

struct smtp_data_result {
	bool bare_lf;           /* an LF not after CR */
	bool bare_cr;           /* a CR not before LF */
	bool nul;               /* a NUL byte */
	bool too_big;           /* unstuffed size exceeded max_size */
	bool line_too_long;     /* a line over 998 octets before its CR LF */
	uint64_t size;          /* unstuffed size, stored or not */
	uint64_t consumed;      /* bytes consumed in all, terminator included */
};

struct smtp_data {
	struct buf *out;
	uint64_t max_size;
	int state;
	size_t linelen;         /* octets since the last CR LF, capped */
	struct smtp_data_result r;
};

/*
 * smtp_data_init - start reading one message's data into out (appended
 * to; not reset).  At most max_size unstuffed bytes are stored: past
 * that too_big is set, out keeps the first max_size bytes and the
 * reader only scans for the end.  Use UINT64_MAX for no limit.
 */
void smtp_data_init(struct smtp_data *d, struct buf *out, uint64_t max_size);

/*
 * smtp_data_feed - consume in[0..len).  Returns SMTP_DATA_MORE with
 * *consumed == len, or SMTP_DATA_END with *consumed the bytes up to and
 * including the terminator's final LF: in[*consumed..len) is the next
 * pipelined command, untouched.  After SMTP_DATA_END further calls
 * consume nothing and return SMTP_DATA_END.
 */
int smtp_data_feed(struct smtp_data *d, const char *in, size_t len,
    size_t *consumed);

/* smtp_data_result - the flags and counts so far; valid until the next init. */
const struct smtp_data_result *smtp_data_result(const struct smtp_data *d);

#endif
