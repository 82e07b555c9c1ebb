/*
 * The client address of a request, for rate limits.
 *
 * The client is the connection's peer, unless the peer is a trusted proxy
 * (--trusted-proxy, a list of CIDR ranges). Then X-Forwarded-For is read
 * from right to left, skipping addresses that are themselves trusted, and
 * the first untrusted one is the client: everything to its left was written
 * by parties nobody vouches for, so it is ignored. A malformed entry ends
 * the walk and the last trusted hop counts as the client.
 *
 * Rate-limit keys group IPv6 clients by /64, the block one subscriber
 * usually gets, so rotating addresses within it buys nothing.
 */
#ifndef SHORTD_APP_CLIENT_H
#define SHORTD_APP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "net/http_parser.h"

#define CLIENT_RANGES_MAX 32

/* An address, IPv4 stored as IPv4-mapped IPv6. */
struct client_address {
    uint8_t bytes[16];
};

struct client_range {
    struct client_address base;
    unsigned prefix; /* bits, 0 to 128 */
};

struct client_ranges {
    struct client_range ranges[CLIENT_RANGES_MAX];
    size_t count;
};

/*
 * Parses a comma-separated list of CIDR ranges or plain addresses (IPv4 or
 * IPv6). Returns 0, or -EINVAL after writing the reason to err.
 */
int client_parse_ranges(const char *text, struct client_ranges *ranges, FILE *err);

/* Returns whether address is in one of ranges. */
bool client_in_ranges(const struct client_ranges *ranges, const struct client_address *address);

/* Converts a socket address. Returns 0, or -EAFNOSUPPORT. */
int client_from_sockaddr(const struct sockaddr *sa, struct client_address *address);

/*
 * Finds the client address of req, which arrived from peer, as the file
 * comment describes.
 */
void client_resolve(const struct client_ranges *trusted, const struct client_address *peer,
                    const struct http_request *req, struct client_address *client);

/*
 * Writes the rate-limit key of address into key (16 bytes) and returns its
 * length: 4 bytes for IPv4, the first 8 bytes (/64) for IPv6.
 */
size_t client_limit_key(const struct client_address *address, uint8_t key[16]);

#endif
