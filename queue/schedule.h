/*
 * schedule - when a deferred recipient is tried again, and when it
 * expires.
 *
 * After the Nth failed attempt the next one is retry[N-1] later (the last
 * interval repeats), with +-10% jitter so that mail deferred together
 * does not come back together.  A recipient whose next attempt would
 * fall after arrival + lifetime gets one last attempt at that moment;
 * a failure at or after it expires the recipient.
 */
#ifndef KURIER_QUEUE_SCHEDULE_H
#define KURIER_QUEUE_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>

#define SCHEDULE_JITTER_PCT 10

struct schedule {
	const uint64_t *retry_ms;
	unsigned nretry;
	uint64_t lifetime_ms;
};

/*
 * schedule_next - after attempt number `attempts` (1 = the first) failed
 * at now_ms: false when the recipient has expired; else true with
 * *next_ms set.  rnd is any 32-bit random value (it picks the jitter).
 */
bool schedule_next(const struct schedule *s, uint64_t arrival_ms,
    uint64_t now_ms, uint32_t attempts, uint32_t rnd, uint64_t *next_ms);
/* schedule_expired - whether a recipient that arrived then is past lifetime. */
bool schedule_expired(const struct schedule *s, uint64_t arrival_ms,
    uint64_t now_ms);

#endif
