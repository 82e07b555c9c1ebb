/*
 * Validation and normalisation of the URLs that links redirect to.
 *
 * url_normalize accepts a URL as a client sent it and returns the form that
 * shortd stores and sends in Location:
 *
 *   - Syntax is RFC 3986 (parsed by liburiparser). The scheme must be in the
 *     allowed list (compared case-insensitively, and kept as sent) and a host
 *     is required.
 *   - Hosts are IPv4 addresses, IPv6 literals in brackets, or DNS names whose
 *     labels are letters, digits, '-' and '_'. An internationalised name,
 *     sent as UTF-8 or percent-encoded UTF-8, is converted to its ASCII form
 *     (IDNA2008 with UTS #46 non-transitional mapping, by libidn2). Each
 *     non-ASCII label is converted on its own, so ASCII labels keep their
 *     case. IPvFuture literals, IPv6 zone identifiers (RFC 6874) and IPv4
 *     addresses with leading zeros are rejected, and a name whose last label
 *     is a number must be a valid dotted-quad IPv4 address.
 *   - Control characters (C0, DEL and C1), whitespace (ASCII and Unicode),
 *     invalid UTF-8, user information (user:password@), malformed
 *     percent-encoding and overlong URLs are rejected.
 *   - Bytes outside the URI character set that browsers send anyway
 *     (non-ASCII UTF-8 in the path, query and fragment, and the ASCII
 *     characters " < > \ ^ ` { | }) are percent-encoded, as browsers do.
 *     '[' and ']' outside the host and a second '#' are kept as sent: RFC
 *     3986 does not allow them there, but they are safe in a header and
 *     browsers keep them. The syntax check runs on a copy in which they are
 *     percent-encoded.
 *     Every byte of the input that is in the URI character set comes back
 *     unchanged, apart from an internationalised host.
 *   - A URL whose host is the service's own host is rejected, because the
 *     link would redirect to itself. The comparison uses the percent-decoded
 *     ASCII form of the host, so encoding cannot hide the own host.
 *
 * The functions are pure and thread-safe.
 */
#ifndef SHORTD_APP_URL_H
#define SHORTD_APP_URL_H

#include <stdbool.h>
#include <stddef.h>

struct url_policy {
    const char *const *schemes; /* allowed schemes, lowercase */
    size_t scheme_count;
    size_t max_length;    /* bytes, checked on the input and on the result */
    const char *own_host; /* host of the service in ASCII form, without a
                             port (an IPv6 address with or without brackets),
                             NULL to skip the check */
};

/* Why a URL was rejected. */
struct url_error {
    const char *code;  /* "invalid_url", "unsupported_scheme", "url_too_long",
                          "invalid_host" or "redirect_loop" */
    char message[256]; /* one sentence naming the problem and where it is,
                          with offsets in bytes of the input from 0 */
};

/*
 * Validates input[0..len) under policy. On success returns 0 and stores in
 * *out a malloc'd, NUL-terminated normalised URL (the caller frees it) and
 * its length in *out_len. On rejection returns -EINVAL and fills err (if err
 * is not NULL); on allocation failure returns -ENOMEM and leaves err as it
 * was.
 */
int url_normalize(const char *input, size_t len, const struct url_policy *policy, char **out,
                  size_t *out_len, struct url_error *err);

/*
 * Writes url[0..len) to out with every byte outside the URI character set
 * (unreserved, reserved and '%') percent-encoded, so the result is safe in a
 * header. out must have room for 3 * len bytes. Returns the bytes written.
 * For a URL returned by url_normalize the output equals the input.
 */
size_t url_encode_for_header(const char *url, size_t len, char *out);

/*
 * Copies the host of a URL returned by url_normalize (scheme://host[:port]
 * and the rest; no user information) into out, without IPv6 brackets. out
 * is "" when url has no authority; a longer host is cut to out_len - 1.
 */
void url_copy_host(const char *url, char *out, size_t out_len);

/* Returns whether every byte of url[0..len) is in the URI character set. */
bool url_is_header_safe(const char *url, size_t len);

#endif
