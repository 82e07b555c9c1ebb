/*
 * RFC 3339 parsing and date arithmetic, see datetime.h.
 *
 * Day numbers are computed without the C library's time zone machinery:
 * days_from_civil counts days in 400-year eras (146097 days each), which
 * makes the Gregorian leap rules a matter of integer division, and
 * civil_from_days inverts it. Both treat March as the first month of the
 * year, so that the leap day is the last day of a year and month lengths
 * follow a fixed pattern.
 */
#include "app/datetime.h"

#include <errno.h>
#include <stdbool.h>

#define MS_PER_DAY (INT64_C(86400) * 1000)

static bool is_leap(int64_t year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static int days_in_month(int64_t year, int month)
{
    static const int lengths[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    if (month == 2 && is_leap(year))
        return 29;
    return lengths[month - 1];
}

/* Days from 1970-01-01 to year-month-day (month 1 to 12). */
static int64_t days_from_civil(int64_t year, int month, int day)
{
    int64_t era, year_of_era, day_of_year, day_of_era;
    int shifted_month;

    /* Years start in March: January and February belong to the year before. */
    if (month <= 2)
        year--;
    era = (year >= 0 ? year : year - 399) / 400;
    year_of_era = year - era * 400;
    shifted_month = month > 2 ? month - 3 : month + 9;
    /* Month lengths from March repeat 31, 30, 31, 30, 31: 153 days per 5 months. */
    day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + day_of_era - 719468; /* 719468: days from 0000-03-01 to 1970-01-01 */
}

static void civil_from_days(int64_t days, int64_t *year, int *month, int *day)
{
    int64_t era, day_of_era, year_of_era, day_of_year, shifted_month;

    days += 719468;
    era = (days >= 0 ? days : days - 146096) / 146097;
    day_of_era = days - era * 146097;
    year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
    day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    shifted_month = (5 * day_of_year + 2) / 153;
    *day = (int)(day_of_year - (153 * shifted_month + 2) / 5 + 1);
    *month = (int)(shifted_month < 10 ? shifted_month + 3 : shifted_month - 9);
    *year = year_of_era + era * 400 + (*month <= 2);
}

/* Reads exactly count digits at text[*pos]. Returns -1 when they are not. */
static int64_t digits(const char *text, size_t len, size_t *pos, int count)
{
    int64_t value = 0;
    int i;

    if (len - *pos < (size_t)count)
        return -1;
    for (i = 0; i < count; i++) {
        char c = text[*pos + (size_t)i];

        if (c < '0' || c > '9')
            return -1;
        value = value * 10 + (c - '0');
    }
    *pos += (size_t)count;
    return value;
}

static bool expect(const char *text, size_t len, size_t *pos, char c)
{
    if (*pos >= len || text[*pos] != c)
        return false;
    (*pos)++;
    return true;
}

/* Parses YYYY-MM-DD at text[*pos]. */
static int parse_full_date(const char *text, size_t len, size_t *pos, int64_t *days)
{
    int64_t year, month, day;

    year = digits(text, len, pos, 4);
    if (year < 0 || !expect(text, len, pos, '-'))
        return -EINVAL;
    month = digits(text, len, pos, 2);
    if (month < 1 || month > 12 || !expect(text, len, pos, '-'))
        return -EINVAL;
    day = digits(text, len, pos, 2);
    if (day < 1 || day > days_in_month(year, (int)month))
        return -EINVAL;

    *days = days_from_civil(year, (int)month, (int)day);
    return 0;
}

int datetime_parse_date(const char *text, size_t len, int32_t *day)
{
    size_t pos = 0;
    int64_t days;

    if (parse_full_date(text, len, &pos, &days) < 0 || pos != len)
        return -EINVAL;
    *day = (int32_t)days;
    return 0;
}

int datetime_parse_rfc3339(const char *text, size_t len, int64_t *ms)
{
    int64_t days, hour, minute, second, millis = 0, offset_hour, offset_minute, offset = 0;
    size_t pos = 0;
    int scale = 100;
    int sign;

    if (parse_full_date(text, len, &pos, &days) < 0)
        return -EINVAL;
    if (pos >= len || (text[pos] != 'T' && text[pos] != 't'))
        return -EINVAL;
    pos++;

    hour = digits(text, len, &pos, 2);
    if (hour < 0 || hour > 23 || !expect(text, len, &pos, ':'))
        return -EINVAL;
    minute = digits(text, len, &pos, 2);
    if (minute < 0 || minute > 59 || !expect(text, len, &pos, ':'))
        return -EINVAL;
    second = digits(text, len, &pos, 2);
    if (second < 0 || second > 60)
        return -EINVAL;

    if (pos < len && text[pos] == '.') {
        pos++;
        if (pos >= len || text[pos] < '0' || text[pos] > '9')
            return -EINVAL;
        while (pos < len && text[pos] >= '0' && text[pos] <= '9') {
            millis += (text[pos] - '0') * scale;
            scale /= 10;
            pos++;
        }
    }

    if (pos >= len)
        return -EINVAL;
    if (text[pos] == 'Z' || text[pos] == 'z') {
        pos++;
    } else if (text[pos] == '+' || text[pos] == '-') {
        sign = text[pos] == '-' ? -1 : 1;
        pos++;
        offset_hour = digits(text, len, &pos, 2);
        if (offset_hour < 0 || offset_hour > 23 || !expect(text, len, &pos, ':'))
            return -EINVAL;
        offset_minute = digits(text, len, &pos, 2);
        if (offset_minute < 0 || offset_minute > 59)
            return -EINVAL;
        offset = sign * (offset_hour * 60 + offset_minute) * 60 * 1000;
    } else {
        return -EINVAL;
    }
    if (pos != len)
        return -EINVAL;

    /* Local time minus the offset is UTC: +01:00 is one hour ahead of UTC. */
    *ms = days * MS_PER_DAY + ((hour * 60 + minute) * 60 + second) * 1000 + millis - offset;
    return 0;
}

int32_t datetime_day_of(int64_t ms)
{
    int64_t days = ms / MS_PER_DAY;

    if (ms % MS_PER_DAY < 0)
        days--;
    return (int32_t)days;
}

/* Writes value as exactly width decimal digits (value must fit). */
static void put_digits(char *out, int64_t value, int width)
{
    int i;

    for (i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + value % 10);
        value /= 10;
    }
}

void datetime_format_date(int32_t day, char out[DATETIME_DATE_SIZE])
{
    int64_t year;
    int month, mday;

    civil_from_days(day, &year, &month, &mday);
    /* Days of the API are within years 0 to 9999; others wrap, never overflow. */
    put_digits(out, ((year % 10000) + 10000) % 10000, 4);
    out[4] = '-';
    put_digits(out + 5, month, 2);
    out[7] = '-';
    put_digits(out + 8, mday, 2);
    out[10] = '\0';
}

void datetime_format_timestamp(int64_t ms, char out[DATETIME_TIMESTAMP_SIZE])
{
    int32_t day = datetime_day_of(ms);
    int64_t seconds = (ms - (int64_t)day * MS_PER_DAY) / 1000;

    datetime_format_date(day, out);
    out[10] = 'T';
    put_digits(out + 11, seconds / 3600, 2);
    out[13] = ':';
    put_digits(out + 14, seconds / 60 % 60, 2);
    out[16] = ':';
    put_digits(out + 17, seconds % 60, 2);
    out[19] = 'Z';
    out[20] = '\0';
}
