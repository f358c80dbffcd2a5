/*
 * imap_mime_int - what the files of imap_mime share, used only inside
 * mailbox/: imap_mime.c parses (the part tree and its byte extents),
 * writes BODYSTRUCTURE and resolves sections; imap_mime_env.c writes
 * ENVELOPE and the IMAP strings; imap_mime_text.c the search text.
 */
#ifndef KURIER_MAILBOX_IMAP_MIME_INT_H
#define KURIER_MAILBOX_IMAP_MIME_INT_H

#include <gmime/gmime.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "mailbox/imap_mime.h"

enum imap_node_kind {
	IMAP_NODE_LEAF,    /* any one-part body */
	IMAP_NODE_MULTI,   /* multipart: parts[] are its parts */
	IMAP_NODE_MESSAGE, /* message/rfc822: parts[0] is the embedded message */
};

/*
 * One MIME entity: its header is raw[hs..bs) (the empty line included,
 * when there is one) and its body raw[bs..end).  The top message and an
 * embedded message are entities whose header is a message header
 * (msg_root); their GMime object is the message's MIME part.
 */
struct imap_node {
	GMimeObject *obj; /* borrowed from the message's tree; NULL: none (text/plain) */
	enum imap_node_kind kind;
	bool msg_root;
	size_t hs, bs, end;
	struct imap_node *parts;
	size_t nparts;
};

struct imap_msg {
	GMimeStream *stream; /* owns the bytes */
	GMimeMessage *msg;   /* NULL when GMime read nothing */
	const char *raw;
	size_t len;
	struct imap_node root;
	size_t nnodes;
};

/* --- imap_mime_env.c ------------------------------------------------------------ */

/* imap_mime__nstring - append s[0..len) as a quoted string or a literal. */
void imap_mime__string(struct buf *out, const char *s, size_t len);
/* imap_mime__nstring - as imap_mime__string, NIL for NULL. */
void imap_mime__nstring(struct buf *out, const char *s, size_t len);
/*
 * imap_mime__field - the value of the first field name in the header
 * block h[0..hlen): *v and *vlen, unfolded copy in tmp (reset first),
 * white space trimmed; false when absent.
 */
bool imap_mime__field(const char *h, size_t hlen, const char *name, struct buf *tmp,
    const char **v, size_t *vlen);
/* imap_mime__envelope - ENVELOPE of the header block h[0..hlen). */
void imap_mime__envelope(const char *h, size_t hlen, struct buf *out);

#endif
