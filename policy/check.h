/*
 * check - the policy decisions that need no shared state: message size and
 * recipient count, the header section of a submitted message, and which
 * sender and recipient domains a user may use.  Pure functions over the
 * config and the message; the listener only enforces what they return.
 */
#ifndef KURIER_POLICY_CHECK_H
#define KURIER_POLICY_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "policy/policy.h"

/*
 * policy_check_size - a declared (MAIL SIZE=) or received size against
 * [relay] max_message_size: REJECT "552 5.3.4 Message size exceeds fixed
 * maximum message size (N bytes)" (rule "limit.size").
 */
bool policy_check_size(const struct config *cfg, uint64_t size,
    struct policy_result *res);
/*
 * policy_check_rcpt_count - one more recipient after nrcpt: TEMPFAIL
 * "452 4.5.3 Too many recipients (at most N per message)" (RFC 5321
 * 4.5.3.1.10; rule "limit.recipients").
 */
bool policy_check_rcpt_count(const struct config *cfg, size_t nrcpt,
    struct policy_result *res);
/*
 * policy_check_sender - may a user with domains ("a.example b.example")
 * send as domain (MAIL FROM or header From)?  REJECT "550 5.7.1 Sender
 * address not allowed for this user" (rule "sender.envelope" or
 * "sender.header" as header says); the allowed list is not named.
 */
bool policy_check_sender(const char *domains, const char *domain, bool header,
    struct policy_result *res);
/*
 * policy_check_rcpt_domain - the user's allowed recipient domains
 * ("" = any): REJECT "550 5.7.1 Recipient domain not allowed for this
 * user" (rule "recipient.domain").
 */
bool policy_check_rcpt_domain(const char *rcpt_domains, const char *domain,
    struct policy_result *res);
/*
 * policy_check_headers - the header section of msg[0..len) (up to the
 * empty line): exactly one From field holding exactly one mailbox, else
 * REJECT "550 5.6.0 Message has no From header" / "... several From
 * headers" / "... From header with several addresses" / "... unparsable
 * From header" (rule "header.from"); then the From domain must be one of
 * domains (policy_check_sender with header = true).  from_domain[256]
 * gets the From domain when there is one.
 */
bool policy_check_headers(const char *domains, const char *msg, size_t len,
    char *from_domain, size_t fdsize, struct policy_result *res);

#endif
