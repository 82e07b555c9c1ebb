/* Client addresses and trusted proxies, see client.h. */
#include "app/client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool is_v4(const struct client_address *address)
{
    return memcmp(address->bytes, v4_mapped, sizeof(v4_mapped)) == 0;
}

/* Parses one address of text[0..len). Returns 0 or -EINVAL. */
static int parse_address(const char *text, size_t len, struct client_address *address)
{
    char buffer[INET6_ADDRSTRLEN];
    struct in_addr v4;

    if (len == 0 || len >= sizeof(buffer))
        return -EINVAL;
    memcpy(buffer, text, len);
    buffer[len] = '\0';

    if (inet_pton(AF_INET, buffer, &v4) == 1) {
        memcpy(address->bytes, v4_mapped, sizeof(v4_mapped));
        memcpy(address->bytes + 12, &v4, 4);
        return 0;
    }
    if (inet_pton(AF_INET6, buffer, address->bytes) == 1)
        return 0;
    return -EINVAL;
}

int client_parse_ranges(const char *text, struct client_ranges *ranges, FILE *err)
{
    const char *item = text, *end, *slash;
    struct client_range *range;
    size_t len;
    char *tail;
    long prefix;

    ranges->count = 0;
    while (*item != '\0') {
        end = strchr(item, ',');
        len = end != NULL ? (size_t)(end - item) : strlen(item);
        while (len > 0 && *item == ' ') {
            item++;
            len--;
        }
        while (len > 0 && item[len - 1] == ' ')
            len--;

        if (len > 0) {
            if (ranges->count == CLIENT_RANGES_MAX) {
                fprintf(err, "shortd: --trusted-proxy: at most %d ranges are allowed\n",
                        CLIENT_RANGES_MAX);
                return -EINVAL;
            }
            range = &ranges->ranges[ranges->count];
            slash = memchr(item, '/', len);
            if (parse_address(item, slash != NULL ? (size_t)(slash - item) : len, &range->base) <
                0)
                goto invalid;

            range->prefix = is_v4(&range->base) ? 32 : 128;
            if (slash != NULL) {
                prefix = strtol(slash + 1, &tail, 10);
                if (tail != item + len || slash + 1 == tail || prefix < 0 ||
                    prefix > (long)range->prefix)
                    goto invalid;
                range->prefix = (unsigned)prefix;
            }
            /* An IPv4 prefix counts from the start of the mapped form. */
            if (is_v4(&range->base))
                range->prefix += 96;
            ranges->count++;
        }

        if (end == NULL)
            break;
        item = end + 1;
    }
    return 0;

invalid:
    fprintf(err,
            "shortd: --trusted-proxy: invalid range \"%.*s\"; use addresses or CIDR ranges such "
            "as 10.0.0.0/8 or fd00::/8\n",
            (int)len, item);
    return -EINVAL;
}

static bool in_range(const struct client_range *range, const struct client_address *address)
{
    unsigned full = range->prefix / 8, rest = range->prefix % 8;
    uint8_t mask;

    if (memcmp(range->base.bytes, address->bytes, full) != 0)
        return false;
    if (rest == 0)
        return true;
    mask = (uint8_t)(0xff << (8 - rest));
    return (range->base.bytes[full] & mask) == (address->bytes[full] & mask);
}

bool client_in_ranges(const struct client_ranges *ranges, const struct client_address *address)
{
    size_t i;

    for (i = 0; i < ranges->count; i++) {
        if (in_range(&ranges->ranges[i], address))
            return true;
    }
    return false;
}

int client_from_sockaddr(const struct sockaddr *sa, struct client_address *address)
{
    if (sa->sa_family == AF_INET) {
        memcpy(address->bytes, v4_mapped, sizeof(v4_mapped));
        memcpy(address->bytes + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(address->bytes, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
        return 0;
    }
    return -EAFNOSUPPORT;
}

/* Walks the values of every X-Forwarded-For field from the last entry back. */
void client_resolve(const struct client_ranges *trusted, const struct client_address *peer,
                    const struct http_request *req, struct client_address *client)
{
    struct client_address candidate;
    const char *value, *start, *end;
    int h;

    *client = *peer;
    if (trusted->count == 0 || !client_in_ranges(trusted, peer))
        return;

    for (h = (int)req->header_count - 1; h >= 0; h--) {
        const struct http_header *header = &req->headers[h];

        if (header->name_len != 15 || strncasecmp(header->name, "X-Forwarded-For", 15) != 0)
            continue;

        value = header->value;
        end = value + header->value_len;
        while (end > value) {
            start = end;
            while (start > value && start[-1] != ',')
                start--;
            const char *item = start, *item_end = end;

            while (item < item_end && (*item == ' ' || *item == '\t'))
                item++;
            while (item_end > item && (item_end[-1] == ' ' || item_end[-1] == '\t'))
                item_end--;

            if (parse_address(item, (size_t)(item_end - item), &candidate) < 0)
                return; /* malformed: keep the last trusted hop */
            *client = candidate;
            if (!client_in_ranges(trusted, &candidate))
                return;

            end = start > value ? start - 1 : value;
        }
    }
}

size_t client_limit_key(const struct client_address *address, uint8_t key[16])
{
    if (is_v4(address)) {
        memcpy(key, address->bytes + 12, 4);
        return 4;
    }
    memcpy(key, address->bytes, 8);
    return 8;
}
