/*
 * Dates and times in the API: RFC 3339 timestamps and calendar days.
 *
 * All times are Unix time in milliseconds, UTC. Days are counted from
 * 1970-01-01 (day 0) in the proleptic Gregorian calendar. The functions are
 * pure and thread-safe.
 */
#ifndef SHORTD_APP_DATETIME_H
#define SHORTD_APP_DATETIME_H

#include <stddef.h>
#include <stdint.h>

/* Bytes needed to format a timestamp or a date, with the NUL. */
#define DATETIME_TIMESTAMP_SIZE 21 /* "2026-12-04T20:22:23Z" */
#define DATETIME_DATE_SIZE      11 /* "2026-12-04" */

/*
 * Parses an RFC 3339 date-time such as 2026-12-04T20:22:23Z,
 * 2026-12-04t21:22:23.5+01:00 or 2026-12-04T20:22:23.123456-00:30: a full
 * date, 'T' or 't', a full time with optional fractional seconds, and 'Z',
 * 'z' or a numeric offset. The date must exist (February 29 only in leap
 * years); a leap second (:60) is read as the first second of the next
 * minute. Fractions finer than a millisecond are truncated. Returns 0 and
 * sets *ms, or -EINVAL when text[0..len) is not such a date-time.
 */
int datetime_parse_rfc3339(const char *text, size_t len, int64_t *ms);

/* Parses a full date, YYYY-MM-DD. Returns 0 and sets *day, or -EINVAL. */
int datetime_parse_date(const char *text, size_t len, int32_t *day);

/* Writes ms as YYYY-MM-DDTHH:MM:SSZ (second precision) into out. */
void datetime_format_timestamp(int64_t ms, char out[DATETIME_TIMESTAMP_SIZE]);

/* Writes day as YYYY-MM-DD into out. */
void datetime_format_date(int32_t day, char out[DATETIME_DATE_SIZE]);

/* Returns the day that contains the instant ms (rounding toward the past). */
int32_t datetime_day_of(int64_t ms);

#endif
