/*
 * schedule - retry intervals with jitter, and expiry.  See schedule.h.
 */
#include "queue/schedule.h"

bool
schedule_expired(const struct schedule *s, uint64_t arrival_ms, uint64_t now_ms)
{
	return now_ms >= arrival_ms + s->lifetime_ms;
}

bool
schedule_next(const struct schedule *s, uint64_t arrival_ms, uint64_t now_ms,
    uint32_t attempts, uint32_t rnd, uint64_t *next_ms)
{
	uint64_t deadline = arrival_ms + s->lifetime_ms;
	uint64_t delay, span, next;
	unsigned i;

	if (now_ms >= deadline)
		return false;
	i = attempts == 0 ? 0 : attempts - 1;
	if (i >= s->nretry)
		i = s->nretry - 1;
	delay = s->retry_ms[i];
	/* Uniform in [delay - 10%, delay + 10%]. */
	span = delay * SCHEDULE_JITTER_PCT / 100;
	if (span > 0)
		delay = delay - span + (uint64_t)rnd % (2 * span + 1);
	next = now_ms + delay;
	*next_ms = next < deadline ? next : deadline;
	return true;
}
