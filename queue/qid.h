/*
 * qid - queue ids: 16 characters of Crockford base32 that are unique
 * across nodes and sort by time.  The first 10 characters are the
 * creation time in milliseconds since the epoch; the last 6 are a
 * per-process random start plus a counter.  Enqueue refuses a duplicate,
 * so the caller retries in the rare case two nodes collide.
 */
#ifndef KURIER_QUEUE_QID_H
#define KURIER_QUEUE_QID_H

#include <stdbool.h>
#include <stdint.h>

#define QID_LEN 16
#define QID_SIZE (QID_LEN + 1)

/* qid_new - a fresh id for time now_ms into out. Thread-safe. */
void qid_new(char out[QID_SIZE], uint64_t now_ms);
/* qid_valid - 16 characters of the id alphabet. */
bool qid_valid(const char *s);
/* qid_time - the creation time encoded in a valid id (ms). */
uint64_t qid_time(const char *id);

#endif
