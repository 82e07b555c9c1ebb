/*
 * libFuzzer target for datetime_parse_rfc3339 and datetime_parse_date.
 *
 * Invariants checked on every input:
 *   - an accepted input names a date that exists: month 1 to 12, a day
 *     within that month, February 29 only in a leap year, checked here with
 *     an independent calendar table;
 *   - an accepted input of exactly the form YYYY-MM-DDTHH:MM:SSZ (second
 *     precision, uppercase T and Z, no leap second) formats back to the same
 *     text with datetime_format_timestamp;
 *   - any accepted timestamp within years 0000 to 9999 formats to a text
 *     that parses back to the same instant truncated to the second;
 *   - an accepted date formats back to the same text with
 *     datetime_format_date, and is the day of its own midnight timestamp.
 * A broken invariant aborts, which libFuzzer reports as a crash.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/datetime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MS_PER_DAY (INT64_C(86400) * 1000)
/* 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z in Unix ms. */
#define FIRST_MS (INT64_C(-62167219200) * 1000)
#define END_MS   (INT64_C(253402300800) * 1000)

static void fail(const char *invariant, const char *text, size_t len)
{
    fprintf(stderr, "fuzz_rfc3339: %s: \"%.*s\"\n", invariant, (int)len, text);
    abort();
}

static int number(const char *text, size_t len)
{
    int value = 0;

    for (size_t i = 0; i < len; i++)
        value = value * 10 + (text[i] - '0');
    return value;
}

/* Checks that text[0..10) is YYYY-MM-DD naming a day that exists. */
static void check_date_exists(const char *text, size_t len)
{
    static const int month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int year, month, day, last;
    bool leap;

    if (len < 10)
        fail("accepted input is shorter than a date", text, len);
    for (size_t i = 0; i < 10; i++) {
        bool dash = i == 4 || i == 7;

        if (dash ? text[i] != '-' : (text[i] < '0' || text[i] > '9'))
            fail("accepted input does not start with YYYY-MM-DD", text, len);
    }
    year = number(text, 4);
    month = number(text + 5, 2);
    day = number(text + 8, 2);
    if (month < 1 || month > 12)
        fail("accepted input has an impossible month", text, len);
    leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    last = month == 2 && leap ? 29 : month_days[month - 1];
    if (day < 1 || day > last)
        fail("accepted input has an impossible day of the month", text, len);
}

static bool is_plain_utc(const char *text, size_t len)
{
    return len == 20 && text[10] == 'T' && text[19] == 'Z' && !(text[17] == '6' && text[18] == '0');
}

static int64_t floor_to_second(int64_t ms)
{
    int64_t rest = ms % 1000;

    return rest < 0 ? ms - rest - 1000 : ms - rest;
}

static void check_timestamp(const char *text, size_t len)
{
    char formatted[DATETIME_TIMESTAMP_SIZE];
    int64_t ms, again;

    if (datetime_parse_rfc3339(text, len, &ms) != 0)
        return;

    check_date_exists(text, len);
    if (ms < FIRST_MS - MS_PER_DAY || ms >= END_MS + MS_PER_DAY)
        fail("accepted timestamp is more than a day outside years 0000 to 9999", text, len);

    if (is_plain_utc(text, len)) {
        datetime_format_timestamp(ms, formatted);
        if (memcmp(formatted, text, len) != 0)
            fail("a second-precision UTC timestamp does not format back to itself", text, len);
    }

    if (ms >= FIRST_MS && ms < END_MS) {
        datetime_format_timestamp(ms, formatted);
        if (datetime_parse_rfc3339(formatted, strlen(formatted), &again) != 0)
            fail("a formatted timestamp is rejected", formatted, strlen(formatted));
        if (again != floor_to_second(ms))
            fail("a formatted timestamp parses to another instant", text, len);
        if (datetime_day_of(ms) != datetime_day_of(again))
            fail("truncation to the second changed the day", text, len);
    }
}

static void check_date(const char *text, size_t len)
{
    char formatted[DATETIME_DATE_SIZE];
    char midnight[DATETIME_TIMESTAMP_SIZE];
    int32_t day;
    int64_t ms;

    if (datetime_parse_date(text, len, &day) != 0)
        return;

    check_date_exists(text, len);
    if (len != 10)
        fail("an accepted date is not 10 bytes", text, len);
    datetime_format_date(day, formatted);
    if (memcmp(formatted, text, 10) != 0)
        fail("a date does not format back to itself", text, len);

    memcpy(midnight, text, 10);
    memcpy(midnight + 10, "T00:00:00Z", 11);
    if (datetime_parse_rfc3339(midnight, 20, &ms) != 0)
        fail("the midnight of an accepted date is rejected", midnight, 20);
    if (datetime_day_of(ms) != day || ms != (int64_t)day * MS_PER_DAY)
        fail("the midnight of a date is not on that day", midnight, 20);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so that AddressSanitizer sees a read past the end. */
    char *text = malloc(size > 0 ? size : 1);

    if (text == NULL)
        abort();
    if (size > 0)
        memcpy(text, data, size);
    check_timestamp(text, size);
    check_date(text, size);
    free(text);
    return 0;
}
