/*
 * qid - time-sortable unique queue ids.  See qid.h.
 */
#include "queue/qid.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static atomic_uint_fast32_t counter;
static pthread_once_t seeded = PTHREAD_ONCE_INIT;

static void
seed(void)
{
	uint32_t r = 0;

	if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		r = (uint32_t)ts.tv_nsec ^ (uint32_t)ts.tv_sec;
	}
	atomic_store(&counter, r);
}

void
qid_new(char out[QID_SIZE], uint64_t now_ms)
{
	uint32_t n;

	pthread_once(&seeded, seed);
	n = (uint32_t)atomic_fetch_add(&counter, 1) & ((1u << 30) - 1);
	for (int i = 9; i >= 0; i--) {
		out[i] = alphabet[now_ms & 31];
		now_ms >>= 5;
	}
	for (int i = 15; i >= 10; i--) {
		out[i] = alphabet[n & 31];
		n >>= 5;
	}
	out[QID_LEN] = '\0';
}

static int
digit(char c)
{
	const char *p = c ? strchr(alphabet, c) : NULL;

	return p ? (int)(p - alphabet) : -1;
}

bool
qid_valid(const char *s)
{
	for (int i = 0; i < QID_LEN; i++)
		if (s[i] == '\0' || digit(s[i]) < 0)
			return false;
	return s[QID_LEN] == '\0';
}

uint64_t
qid_time(const char *id)
{
	uint64_t t = 0;

	for (int i = 0; i < 10; i++)
		t = (t << 5) | (uint64_t)digit(id[i]);
	return t;
}
