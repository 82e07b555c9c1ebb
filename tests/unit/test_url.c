/*
 * Tests of url.h: a table of url_normalize cases, each run as its own
 * cmocka test named after the case, then the length limits, the policy
 * variants and the header functions.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/url.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static const char *const web_schemes[] = {"http", "https"};

static const struct url_policy web_policy = {
    .schemes = web_schemes,
    .scheme_count = 2,
    .max_length = 8192,
    .own_host = "short.example",
};

struct normalize_case {
    const char *name;
    const char *input;
    const char *code;         /* expected error code, NULL when the URL is accepted */
    const char *output;       /* expected output, NULL when it equals the input */
    const char *message_part; /* text the error message must contain, or NULL */
};

/* clang-format off */
#define ACCEPT(name, input)             {name, input, NULL, NULL, NULL}
#define REWRITE(name, input, output)    {name, input, NULL, output, NULL}
#define REJECT(name, input, code, part) {name, input, code, NULL, part}
/* clang-format on */

/* A host label of 63 and of 64 letters. */
#define LABEL_63 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define LABEL_64 LABEL_63 "a"

static struct normalize_case cases[] = {
    /* Valid URIs come back byte for byte. */
    ACCEPT("http host without path", "http://example.com"),
    ACCEPT("https host with root path", "https://example.com/"),
    ACCEPT("path query and fragment", "https://example.com/a/b?c=d&e=f#g"),
    ACCEPT("uppercase scheme and host kept", "HTTPS://Example.COM/Path"),
    ACCEPT("mixed case scheme kept", "hTTp://example.com/"),
    ACCEPT("port kept", "http://example.com:8080/"),
    ACCEPT("empty port kept", "http://example.com:/"),
    ACCEPT("port 65535 accepted", "http://example.com:65535/x"),
    ACCEPT("port 0 accepted", "http://example.com:0/"),
    ACCEPT("port with leading zeros accepted", "http://example.com:0080/"),
    ACCEPT("ipv4 host", "http://127.0.0.1/"),
    ACCEPT("ipv4 host with port", "http://255.255.255.255:80/x"),
    ACCEPT("ipv4 host with trailing dot", "http://192.0.2.1./"),
    ACCEPT("ipv6 loopback", "http://[::1]/"),
    ACCEPT("ipv6 uppercase with port", "http://[2001:DB8::1]:8443/a"),
    ACCEPT("ipv6 with embedded ipv4", "http://[::ffff:192.0.2.1]/"),
    ACCEPT("percent-encoded path kept", "https://example.com/%7Euser/%E2%82%AC"),
    ACCEPT("lowercase percent-encoding kept", "https://example.com/%e2%82%ac"),
    ACCEPT("percent-encoded query kept", "https://example.com/?q=a%20b&r=%2F"),
    ACCEPT("query without path", "https://example.com?q"),
    ACCEPT("fragment without path", "https://example.com#frag"),
    ACCEPT("fragment with slash and question mark", "https://example.com/#a/b?c"),
    ACCEPT("sub-delims colon and at sign in path", "https://example.com/a:b@c!$&'()*+,;="),
    ACCEPT("encoded crlf kept", "http://a/%0d%0aSet-Cookie:x"),
    ACCEPT("label ending in hyphen", "https://volans-.github.io/gjson-py/"),
    ACCEPT("underscore in label", "http://_dmarc.example.com/"),
    ACCEPT("trailing dot in host", "http://example.com./"),
    ACCEPT("single label host", "http://localhost:8080/"),
    ACCEPT("a-label host kept", "https://xn--bcher-kva.example/"),
    ACCEPT("host named http with empty port", "http://http://code.google.com/p/ucpp/"),
    ACCEPT("percent-encoded ascii host kept", "http://%65xample.com/"),
    ACCEPT("percent-encoded dot in host kept", "http://a%2Eb/"),
    ACCEPT("label of 63 bytes", "http://" LABEL_63 ".example/"),
    ACCEPT("tilde and hyphen in path", "https://example.com/~a-b_c.d"),
    ACCEPT("subdomain of own host accepted", "http://short.example.com/"),
    ACCEPT("host ending like own host accepted", "http://notshort.example/"),
    ACCEPT("own host as path accepted", "http://example.com/short.example"),

    /* Bytes a URI cannot contain are percent-encoded, as browsers do. */
    REWRITE("non-ascii path encoded", "https://example.com/\xc3\xbc", "https://example.com/%C3%BC"),
    REWRITE("cjk path encoded", "https://example.com/\xe6\x97\xa5\xe6\x9c\xac",
            "https://example.com/%E6%97%A5%E6%9C%AC"),
    REWRITE("non-ascii query and fragment encoded", "https://example.com/?q=\xc3\xa9#\xc3\xbc",
            "https://example.com/?q=%C3%A9#%C3%BC"),
    REWRITE("non-ascii after percent-encoding", "http://a/%41\xc3\xbc", "http://a/%41%C3%BC"),
    REWRITE("quote pipe and brace in query encoded", "https://example.com/?q=\"x\"|{y}",
            "https://example.com/?q=%22x%22%7C%7By%7D"),
    REWRITE("angle brackets encoded", "http://a/<b>", "http://a/%3Cb%3E"),
    REWRITE("backslash in path encoded", "http://a/b\\c", "http://a/b%5Cc"),
    REWRITE("caret and backtick encoded", "http://a/^`", "http://a/%5E%60"),
    ACCEPT("square brackets in path kept", "https://example.com/[x]"),
    ACCEPT("square brackets in query kept", "https://example.com/?a[]=1"),
    ACCEPT("second hash kept", "https://example.com/a#b#c"),
    ACCEPT("matrix room alias hash kept", "https://matrix.to/#/#room:example.org"),
    REWRITE("encoding with ipv6 host", "http://[::1]:80/|", "http://[::1]:80/%7C"),

    /* Internationalised hosts become their ASCII form. */
    REWRITE("idn host converted", "http://b\u00fccher.example/", "http://xn--bcher-kva.example/"),
    REWRITE("percent-encoded utf-8 host converted", "https://%CF%80.example.com/foo",
            "https://xn--1xa.example.com/foo"),
    REWRITE("sharp s kept by nontransitional processing", "http://stra\u00dfe.de/",
            "http://xn--strae-oqa.de/"),
    REWRITE("uppercase non-ascii label mapped", "http://B\u00dcCHER.example/",
            "http://xn--bcher-kva.example/"),
    REWRITE("ascii labels keep case beside idn label", "http://B\u00fccher.Example/",
            "http://xn--bcher-kva.Example/"),
    REWRITE("capital sharp s mapped to ss", "http://\xe1\xba\x9e.de/", "http://ss.de/"),
    REWRITE("japanese host converted",
            "http://\xe4\xbe\x8b\xe3\x81\x88.\xe3\x83\x86\xe3\x82\xb9\xe3\x83\x88/",
            "http://xn--r8jz45g.xn--zckzah/"),
    REWRITE("fullwidth dot separates labels", "http://b\u00fccher\uff0eexample/",
            "http://xn--bcher-kva.example/"),
    REWRITE("ideographic full stop separates labels", "http://b\u00fc\u3002de/",
            "http://xn--b-eha.de/"),
    REWRITE("zero width space in host ignored", "http://b\u00fc\u200bcher.example/",
            "http://xn--bcher-kva.example/"),
    REWRITE("fullwidth digits become ipv4", "http://\xef\xbc\x91.\xef\xbc\x92.\xef\xbc\x93.4/",
            "http://1.2.3.4/"),
    REWRITE("idn host with port and query", "http://b\u00fccher.example:81/?\u00fc",
            "http://xn--bcher-kva.example:81/?%C3%BC"),
    REWRITE("idn host with trailing dot", "http://b\u00fccher.example./",
            "http://xn--bcher-kva.example./"),
    REJECT("disallowed code point in host", "http://\xe2\x98\x83.net/", "invalid_host",
           "disallowed"),
    REJECT("emoji host rejected", "http://\xf0\x9f\x92\xa9.la/", "invalid_host", "libidn2"),
    REJECT("idn label ending in hyphen", "http://\xc3\xbc-.de/", "invalid_host", "hyphen"),
    REJECT("zero width non-joiner in host", "http://\xc3\xbc\xe2\x80\x8c.de/", "invalid_host",
           "libidn2"),
    REJECT("idn host ending in number", "http://\xc3\xbc.1.2.3/", "invalid_host", "IPv4"),
    REJECT("percent-encoded host not utf-8", "http://a%FFb/", "invalid_host", "not valid UTF-8"),

    /* Length, emptiness and scheme. */
    REJECT("empty url", "", "invalid_url", "empty"),
    REJECT("missing scheme", "example.com/path", "invalid_url", "no scheme"),
    REJECT("scheme-relative url", "//example.com/", "invalid_url", "no scheme"),
    REJECT("scheme starting with digit", "1http://x/", "invalid_url", "no scheme"),
    REJECT("ftp scheme", "ftp://example.com/", "unsupported_scheme", "\"ftp\""),
    REJECT("javascript scheme", "javascript:alert(1)", "unsupported_scheme",
           "only http and https URLs"),
    REJECT("mailto scheme", "mailto:a@example.com", "unsupported_scheme", "\"mailto\""),
    REJECT("host name taken as scheme", "example.com:8080/x", "unsupported_scheme",
           "\"example.com\""),
    REJECT("no slashes after scheme", "http:example.com", "invalid_url", "no host"),
    REJECT("one slash after scheme", "http:/example.com", "invalid_url", "no host"),
    REJECT("scheme only", "http://", "invalid_url", "no host"),
    REJECT("empty host with path", "http:///path", "invalid_url", "no host"),
    REJECT("empty host with port", "http://:80/", "invalid_url", "no host"),

    /* Bytes rejected anywhere, with their offset. */
    REJECT("space in host", "http://a b/", "invalid_url", "space at byte offset 8"),
    REJECT("space in path", "http://a/b c", "invalid_url", "space at byte offset 10"),
    REJECT("tab in path", "http://a/\tb", "invalid_url", "\\x09 at byte offset 9"),
    REJECT("raw crlf injection", "http://a/\r\nSet-Cookie:x", "invalid_url",
           "\\x0D at byte offset 9"),
    REJECT("delete character", "http://a/\x7f", "invalid_url", "\\x7F"),
    REJECT("escape character", "http://a/\x1b[31m", "invalid_url", "\\x1B"),
    REJECT("no-break space", "http://a/\xc2\xa0", "invalid_url", "U+00A0 at byte offset 9"),
    REJECT("next line character", "http://a/\xc2\x85", "invalid_url",
           "whitespace character U+0085"),
    REJECT("ogham space mark", "http://a/\xe1\x9a\x80", "invalid_url", "U+1680"),
    REJECT("en quad", "http://a/\xe2\x80\x80", "invalid_url", "U+2000"),
    REJECT("hair space", "http://a/\xe2\x80\x8a", "invalid_url", "U+200A"),
    REJECT("line separator", "http://a/\xe2\x80\xa8", "invalid_url", "U+2028"),
    REJECT("paragraph separator", "http://a/\xe2\x80\xa9", "invalid_url", "U+2029"),
    REJECT("narrow no-break space", "http://a/\xe2\x80\xaf", "invalid_url", "U+202F"),
    REJECT("medium mathematical space", "http://a/\xe2\x81\x9f", "invalid_url", "U+205F"),
    REJECT("ideographic space", "http://a/\xe3\x80\x80", "invalid_url", "U+3000"),
    REJECT("byte order mark", "http://a/\xef\xbb\xbf", "invalid_url", "U+FEFF"),
    REJECT("raw no-break space in host", "http://a\xc2\xa0.b/", "invalid_url", "U+00A0"),
    REJECT("c1 control character", "http://a/\xc2\x80", "invalid_url", "control character U+0080"),
    REJECT("overlong slash", "http://a/\xc0\xaf", "invalid_url", "invalid UTF-8 at byte offset 9"),
    REJECT("overlong three-byte form", "http://a/\xe0\x80\xaf", "invalid_url", "invalid UTF-8"),
    REJECT("utf-16 surrogate", "http://a/\xed\xa0\x80", "invalid_url", "invalid UTF-8"),
    REJECT("truncated sequence", "http://a/\xe2\x82", "invalid_url", "invalid UTF-8"),
    REJECT("truncated sequence before ascii", "http://a/\xe2\x82/b", "invalid_url",
           "invalid UTF-8"),
    REJECT("stray continuation byte", "http://a/\x80", "invalid_url", "(byte \\x80)"),
    REJECT("byte ff", "http://a/\xff", "invalid_url", "(byte \\xFF)"),
    REJECT("code point above u+10ffff", "http://a/\xf4\x90\x80\x80", "invalid_url",
           "invalid UTF-8"),
    REJECT("template placeholder percent s", "https://pypi.org/project/%s/", "invalid_url",
           "'%' at byte offset 25"),
    REJECT("percent at end", "http://a/%", "invalid_url", "byte offset 9"),
    REJECT("percent with one hex digit", "http://a/%4", "invalid_url", "byte offset 9"),
    REJECT("percent with non-hex digit", "http://a/%4g", "invalid_url", "byte offset 9"),
    REJECT("percent in host not encoded", "http://a%zz/", "invalid_url", "byte offset 8"),

    /* Authority. */
    REJECT("user information", "http://user@example.com/", "invalid_url", "user information"),
    REJECT("user and password", "http://user:pass@example.com/", "invalid_url", "user information"),
    REJECT("phishing user information", "https://bank.example@evil.example/", "invalid_url",
           "user information"),
    REJECT("empty user information", "http://@example.com/", "invalid_url", "user information"),
    REJECT("backslash before at sign", "http://evil.example\\@good.example/", "invalid_url",
           "user information"),
    REJECT("named port", "http://host:port/json/list", "invalid_url", "\"port\""),
    REJECT("port above 65535", "http://a:65536/", "invalid_url", "\"65536\""),
    REJECT("negative port", "http://a:-1/", "invalid_url", "\"-1\""),
    REJECT("port with twenty digits", "http://a:99999999999999999999/", "invalid_url",
           "from 0 to 65535"),
    REJECT("template port", "http://127.0.0.1:$", "invalid_url", "\"$\""),

    /* Host names. */
    REJECT("template host", "http://$URL", "invalid_host", "'$'"),
    REJECT("regular expression host", "http://.+", "invalid_host", "'+'"),
    REJECT("wildcard host", "https://*.example.com.proxy", "invalid_host", "'*'"),
    REJECT("comma-joined urls", "http://www.zlib.org,http://www.zlib.org", "invalid_host", "','"),
    REJECT("backslash in host", "http://a\\b/", "invalid_host", "'\\\\'"),
    REJECT("bracket inside host", "http://a[b]/", "invalid_host", "'['"),
    REJECT("empty label", "http://a..b/", "invalid_host", "empty label"),
    REJECT("leading dot", "http://.a/", "invalid_host", "empty label"),
    REJECT("host of one dot", "http://./", "invalid_host", "empty label"),
    REJECT("two trailing dots", "http://a../", "invalid_host", "empty label"),
    REJECT("label of 64 bytes", "http://" LABEL_64 ".example/", "invalid_host", "64 bytes"),
    REJECT("encoded nul in host", "http://a%00b/", "invalid_host", "'\\x00'"),
    REJECT("encoded slash in host", "http://a%2Fb/", "invalid_host", "'/'"),
    REJECT("encoded at sign in host", "http://ex%40mple.com/", "invalid_host", "'@'"),
    REJECT("encoded space in host", "http://a%20b/", "invalid_host", "' '"),

    /* IPv4 and names that end in a number. */
    REJECT("ipv4 part above 255", "http://999.1.1.1/", "invalid_host", "not a valid IPv4"),
    REJECT("ipv4 with three parts", "http://1.2.3/", "invalid_host", "not a valid IPv4"),
    REJECT("ipv4 with five parts", "http://1.2.3.4.5/", "invalid_host", "not a valid IPv4"),
    REJECT("ipv4 as one number", "http://2130706433/", "invalid_host", "not a valid IPv4"),
    REJECT("ipv4 with leading zero", "http://010.1.1.1/", "invalid_host", "leading zero"),
    REJECT("ipv4 with hex part", "http://0x7f.0.0.1/", "invalid_host", "not a valid IPv4"),
    REJECT("name ending in hex number", "http://example.0x1f/", "invalid_host", "not a valid IPv4"),
    REJECT("name ending in digits", "https://translationproject.or.35/", "invalid_host",
           "ends in a number"),

    /* IPv6 literals. */
    REJECT("ipv6 zone identifier", "http://[fe80::1%25eth0]/", "invalid_host", "zone identifier"),
    REJECT("ipv6 zone identifier unencoded", "http://[fe80::1%eth0]/", "invalid_url",
           "byte offset 15"),
    REJECT("ipvfuture literal", "http://[v1.x]/", "invalid_host", "IPvFuture"),
    REJECT("ipv6 with two double colons", "http://[1::2::3]/", "invalid_host", "not a valid IPv6"),
    REJECT("ipv6 with nine groups", "http://[1:2:3:4:5:6:7:8:9]/", "invalid_host",
           "not a valid IPv6"),
    REJECT("empty ipv6 literal", "http://[]/", "invalid_host", "not a valid IPv6"),
    REJECT("ipv6 without closing bracket", "http://[::1/", "invalid_host", "no closing ']'"),
    REJECT("text after ipv6 literal", "http://[::1]x/", "invalid_host", "\"x\""),
    REJECT("ipv4 in brackets", "http://[127.0.0.1]/", "invalid_host", "not a valid IPv6"),

    /* The service's own host. */
    REJECT("own host", "http://short.example/x", "redirect_loop", "\"short.example\""),
    REJECT("own host in other case", "https://SHORT.Example/", "redirect_loop", NULL),
    REJECT("own host with trailing dot", "http://short.example./", "redirect_loop", NULL),
    REJECT("own host with port", "http://short.example:8080/", "redirect_loop", NULL),
    REJECT("own host percent-encoded", "http://%73hort.example/", "redirect_loop", NULL),
    REJECT("own host encoded dot", "http://short%2Eexample/", "redirect_loop", NULL),
    REJECT("own host in fullwidth letters",
           "http://\xef\xbd\x93\xef\xbd\x88\xef\xbd\x8f\xef\xbd\x92\xef\xbd\x94.example/",
           "redirect_loop", NULL),
};

static bool has_control_byte(const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7F)
            return true;
    }
    return false;
}

static void run_normalize_case(void **state)
{
    const struct normalize_case *c = *state;
    const char *expected = c->output != NULL ? c->output : c->input;
    struct url_error err = {0};
    char *out = NULL;
    size_t out_len = 0;
    int rc;

    rc = url_normalize(c->input, strlen(c->input), &web_policy, &out, &out_len, &err);

    if (c->code == NULL) {
        char *again = NULL;
        size_t again_len = 0;

        if (rc != 0)
            print_error("rejected as %s: %s\n", err.code, err.message);
        assert_int_equal(rc, 0);
        assert_string_equal(out, expected);
        assert_int_equal(out_len, strlen(expected));
        assert_true(url_is_header_safe(out, out_len));

        rc = url_normalize(out, out_len, &web_policy, &again, &again_len, &err);
        assert_int_equal(rc, 0);
        assert_string_equal(again, out);
        free(again);
        free(out);
        return;
    }

    if (rc == 0) {
        print_error("accepted as %s\n", out);
        free(out);
    }
    assert_int_equal(rc, -EINVAL);
    assert_non_null(err.code);
    assert_string_equal(err.code, c->code);
    assert_true(strlen(err.message) > 0);
    assert_false(has_control_byte(err.message));
    if (c->message_part != NULL && strstr(err.message, c->message_part) == NULL)
        print_error("message \"%s\" lacks \"%s\"\n", err.message, c->message_part);
    if (c->message_part != NULL)
        assert_non_null(strstr(err.message, c->message_part));
}

/* Returns a malloc'd "https://example.com/aaa..." of exactly len bytes. */
static char *make_url(size_t len)
{
    static const char prefix[] = "https://example.com/";
    char *url = malloc(len + 1);

    assert_non_null(url);
    memset(url, 'a', len);
    memcpy(url, prefix, sizeof(prefix) - 1);
    url[len] = '\0';
    return url;
}

static void test_length_at_max_accepted(void **state)
{
    char *url = make_url(web_policy.max_length);
    struct url_error err = {0};
    char *out = NULL;
    size_t out_len = 0;

    assert_int_equal(url_normalize(url, web_policy.max_length, &web_policy, &out, &out_len, &err),
                     0);
    assert_int_equal(out_len, web_policy.max_length);
    assert_memory_equal(out, url, out_len);
    free(out);
    free(url);
}

static void test_length_above_max_rejected(void **state)
{
    size_t len = web_policy.max_length + 1;
    char *url = make_url(len);
    struct url_error err = {0};
    char *out = NULL;
    size_t out_len = 0;

    assert_int_equal(url_normalize(url, len, &web_policy, &out, &out_len, &err), -EINVAL);
    assert_string_equal(err.code, "url_too_long");
    assert_non_null(strstr(err.message, "8193 bytes"));
    assert_non_null(strstr(err.message, "8192 bytes"));
    free(url);
}

/* The length check runs first, so an overlong URL full of spaces is too long, not invalid. */
static void test_length_checked_before_bytes(void **state)
{
    size_t len = web_policy.max_length + 1;
    char *url = make_url(len);
    struct url_error err = {0};
    char *out = NULL;
    size_t out_len = 0;

    memset(url, ' ', len);
    assert_int_equal(url_normalize(url, len, &web_policy, &out, &out_len, &err), -EINVAL);
    assert_string_equal(err.code, "url_too_long");
    free(url);
}

static void test_length_after_encoding_checked(void **state)
{
    size_t len = web_policy.max_length - 2;
    char *url = make_url(len);
    struct url_error err = {0};
    char *out = NULL;
    size_t out_len = 0;

    /* One '|' grows by 2 bytes to exactly the maximum. */
    url[len - 1] = '|';
    assert_int_equal(url_normalize(url, len, &web_policy, &out, &out_len, &err), 0);
    assert_int_equal(out_len, web_policy.max_length);
    free(out);

    /* Two grow by 4 bytes, past it. */
    url[len - 2] = '|';
    assert_int_equal(url_normalize(url, len, &web_policy, &out, &out_len, &err), -EINVAL);
    assert_string_equal(err.code, "url_too_long");
    assert_non_null(strstr(err.message, "after percent-encoding"));
    free(url);
}

static void test_host_of_253_bytes_accepted(void **state)
{
    /* Four labels of 63 bytes and a dot between each is 255 bytes, so shorten the last by 2. */
    char url[512];
    struct url_error err = {0};
    char *out = NULL;
    size_t out_len = 0;
    int length = snprintf(url, sizeof(url), "http://%s.%s.%s.%.61s/", LABEL_63, LABEL_63, LABEL_63,
                          LABEL_63);

    assert_int_equal(length, 7 + 253 + 1);
    assert_int_equal(url_normalize(url, (size_t)length, &web_policy, &out, &out_len, &err), 0);
    free(out);

    /* A trailing dot does not count. */
    length = snprintf(url, sizeof(url), "http://%s.%s.%s.%.61s./", LABEL_63, LABEL_63, LABEL_63,
                      LABEL_63);
    assert_int_equal(url_normalize(url, (size_t)length, &web_policy, &out, &out_len, &err), 0);
    free(out);
}

static void test_host_of_254_bytes_rejected(void **state)
{
    char url[512];
    struct url_error err = {0};
    char *out = NULL;
    size_t out_len = 0;
    int length = snprintf(url, sizeof(url), "http://%s.%s.%s.%.62s/", LABEL_63, LABEL_63, LABEL_63,
                          LABEL_63);

    assert_int_equal(url_normalize(url, (size_t)length, &web_policy, &out, &out_len, &err),
                     -EINVAL);
    assert_string_equal(err.code, "invalid_host");
    assert_non_null(strstr(err.message, "254 bytes"));
}

static void test_nul_byte_rejected(void **state)
{
    static const char url[] = "http://a/\0b";
    struct url_error err = {0};
    char *out = NULL;
    size_t out_len = 0;

    assert_int_equal(url_normalize(url, sizeof(url) - 1, &web_policy, &out, &out_len, &err),
                     -EINVAL);
    assert_string_equal(err.code, "invalid_url");
    assert_non_null(strstr(err.message, "\\x00 at byte offset 9"));
}

static void test_null_error_allowed(void **state)
{
    char *out = NULL;
    size_t out_len = 0;

    assert_int_equal(url_normalize("ftp://a/", 8, &web_policy, &out, &out_len, NULL), -EINVAL);
}

static void test_long_value_cut_in_message(void **state)
{
    char url[400];
    struct url_error err = {0};
    char *out = NULL;
    size_t out_len = 0;

    /* A 300-byte host of '$' that the message quotes. */
    memcpy(url, "http://", 7);
    memset(url + 7, '$', 300);
    url[307] = '\0';
    assert_int_equal(url_normalize(url, 307, &web_policy, &out, &out_len, &err), -EINVAL);
    assert_string_equal(err.code, "invalid_host");
    assert_non_null(strstr(err.message, "...\""));
    assert_true(strlen(err.message) < sizeof(err.message));
}

static void test_idn_label_cut_at_character(void **state)
{
    /* 40 snowmen: the quoted label must be cut between characters, never inside one. */
    char url[256] = "http://";
    struct url_error err = {0};
    char *out = NULL;
    size_t out_len = 0;
    const char *quoted;

    for (int i = 0; i < 40; i++)
        strcat(url, "\xe2\x98\x83");
    strcat(url, ".net/");
    assert_int_equal(url_normalize(url, strlen(url), &web_policy, &out, &out_len, &err), -EINVAL);
    assert_string_equal(err.code, "invalid_host");
    quoted = strstr(err.message, "...\"");
    assert_non_null(quoted);
    assert_int_equal((unsigned char)quoted[-1], 0x83);
    assert_int_equal((unsigned char)quoted[-3], 0xe2);
}

static void test_own_host_with_trailing_dot(void **state)
{
    struct url_policy policy = web_policy;
    struct url_error err = {0};
    char *out = NULL;
    size_t out_len = 0;

    policy.own_host = "Short.Example.";
    assert_int_equal(url_normalize("http://short.example/", 21, &policy, &out, &out_len, &err),
                     -EINVAL);
    assert_string_equal(err.code, "redirect_loop");
}

static void test_own_host_idn(void **state)
{
    static const char url[] = "http://b\u00fccher.example/";
    struct url_policy policy = web_policy;
    struct url_error err = {0};
    char *out = NULL;
    size_t out_len = 0;

    policy.own_host = "xn--bcher-kva.example";
    assert_int_equal(url_normalize(url, sizeof(url) - 1, &policy, &out, &out_len, &err), -EINVAL);
    assert_string_equal(err.code, "redirect_loop");
}

static void test_own_host_ipv6(void **state)
{
    static const char *const own_hosts[] = {"::1", "[::1]", "0:0:0:0:0:0:0:1"};
    struct url_policy policy = web_policy;
    struct url_error err = {0};
    char *out = NULL;
    size_t out_len = 0;

    for (size_t i = 0; i < ARRAY_SIZE(own_hosts); i++) {
        policy.own_host = own_hosts[i];
        assert_int_equal(url_normalize("http://[0::1]:80/", 17, &policy, &out, &out_len, &err),
                         -EINVAL);
        assert_string_equal(err.code, "redirect_loop");
        assert_int_equal(url_normalize("http://[::2]/", 13, &policy, &out, &out_len, &err), 0);
        free(out);
    }
}

static void test_own_host_ipv4_mapped(void **state)
{
    struct url_policy policy = web_policy;
    struct url_error err = {0};
    char *out = NULL;
    size_t out_len = 0;

    policy.own_host = "192.0.2.7";
    assert_int_equal(url_normalize("http://192.0.2.7./", 18, &policy, &out, &out_len, &err),
                     -EINVAL);
    assert_string_equal(err.code, "redirect_loop");
    assert_int_equal(url_normalize("http://[::ffff:192.0.2.7]/", 26, &policy, &out, &out_len, &err),
                     -EINVAL);
    assert_string_equal(err.code, "redirect_loop");
    assert_int_equal(url_normalize("http://[::FFFF:C000:207]/", 25, &policy, &out, &out_len, &err),
                     -EINVAL);
    assert_string_equal(err.code, "redirect_loop");
    assert_int_equal(url_normalize("http://[::192.0.2.7]/", 21, &policy, &out, &out_len, &err), 0);
    free(out);
}

static void test_own_host_null_skips_check(void **state)
{
    struct url_policy policy = web_policy;
    struct url_error err = {0};
    char *out = NULL;
    size_t out_len = 0;

    policy.own_host = NULL;
    assert_int_equal(url_normalize("http://short.example/", 21, &policy, &out, &out_len, &err), 0);
    assert_string_equal(out, "http://short.example/");
    free(out);
}

static void test_scheme_list_in_message(void **state)
{
    static const char *const one[] = {"https"};
    static const char *const three[] = {"http", "https", "ftp"};
    struct url_policy policy = web_policy;
    struct url_error err = {0};
    char *out = NULL;
    size_t out_len = 0;

    policy.schemes = one;
    policy.scheme_count = 1;
    assert_int_equal(url_normalize("http://a/", 9, &policy, &out, &out_len, &err), -EINVAL);
    assert_string_equal(err.code, "unsupported_scheme");
    assert_non_null(strstr(err.message, "\"http\" is not allowed because only https URLs"));

    policy.schemes = three;
    policy.scheme_count = 3;
    assert_int_equal(url_normalize("gopher://a/", 11, &policy, &out, &out_len, &err), -EINVAL);
    assert_non_null(strstr(err.message, "only http, https and ftp URLs"));
    assert_int_equal(url_normalize("FTP://a/", 8, &policy, &out, &out_len, &err), 0);
    assert_string_equal(out, "FTP://a/");
    free(out);

    policy.scheme_count = 0;
    assert_int_equal(url_normalize("http://a/", 9, &policy, &out, &out_len, &err), -EINVAL);
    assert_string_equal(err.code, "unsupported_scheme");
}

static bool in_uri_set(unsigned byte)
{
    static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                              "-._~:/?#[]@!$&'()*+,;=%";

    return byte != 0 && strchr(set, (int)byte) != NULL;
}

static void test_encode_for_header_every_byte(void **state)
{
    for (unsigned byte = 0; byte < 256; byte++) {
        char in = (char)byte;
        char out[4] = {0};
        char expected[4];
        size_t written = url_encode_for_header(&in, 1, out);

        if (in_uri_set(byte)) {
            assert_int_equal(written, 1);
            assert_int_equal((unsigned char)out[0], byte);
            assert_true(url_is_header_safe(&in, 1));
        } else {
            (void)snprintf(expected, sizeof(expected), "%%%02X", byte);
            assert_int_equal(written, 3);
            assert_memory_equal(out, expected, 3);
            assert_false(url_is_header_safe(&in, 1));
        }
    }
}

static void test_encode_for_header_mixed(void **state)
{
    static const char url[] = "http://a/b c\r\nX:\xc3\xbc\"%";
    char out[3 * sizeof(url)];
    size_t written = url_encode_for_header(url, sizeof(url) - 1, out);

    out[written] = '\0';
    assert_string_equal(out, "http://a/b%20c%0D%0AX:%C3%BC%22%");
    assert_true(url_is_header_safe(out, written));
}

static void test_encode_for_header_keeps_normalised(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char *out = NULL;
        size_t out_len = 0;
        struct url_error err = {0};
        char *encoded;

        if (cases[i].code != NULL)
            continue;
        assert_int_equal(url_normalize(cases[i].input, strlen(cases[i].input), &web_policy, &out,
                                       &out_len, &err),
                         0);
        encoded = malloc(3 * out_len + 1);
        assert_non_null(encoded);
        assert_int_equal(url_encode_for_header(out, out_len, encoded), out_len);
        assert_memory_equal(encoded, out, out_len);
        free(encoded);
        free(out);
    }
}

/* The check reads eight bytes per step, so put the bad byte at every offset of a 37-byte URL. */
static void test_header_safe_finds_byte_anywhere(void **state)
{
    char url[] = "http://example.com/abcdefghijklmnopqr";

    assert_true(url_is_header_safe(url, sizeof(url) - 1));
    for (size_t i = 0; i < sizeof(url) - 1; i++) {
        char saved = url[i];

        url[i] = '\n';
        assert_false(url_is_header_safe(url, sizeof(url) - 1));
        url[i] = saved;
    }
    assert_true(url_is_header_safe(url, 0));
}

int main(void)
{
    struct CMUnitTest case_tests[ARRAY_SIZE(cases)];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_length_at_max_accepted),
        cmocka_unit_test(test_length_above_max_rejected),
        cmocka_unit_test(test_length_checked_before_bytes),
        cmocka_unit_test(test_length_after_encoding_checked),
        cmocka_unit_test(test_host_of_253_bytes_accepted),
        cmocka_unit_test(test_host_of_254_bytes_rejected),
        cmocka_unit_test(test_nul_byte_rejected),
        cmocka_unit_test(test_null_error_allowed),
        cmocka_unit_test(test_long_value_cut_in_message),
        cmocka_unit_test(test_idn_label_cut_at_character),
        cmocka_unit_test(test_own_host_with_trailing_dot),
        cmocka_unit_test(test_own_host_idn),
        cmocka_unit_test(test_own_host_ipv6),
        cmocka_unit_test(test_own_host_ipv4_mapped),
        cmocka_unit_test(test_own_host_null_skips_check),
        cmocka_unit_test(test_scheme_list_in_message),
        cmocka_unit_test(test_encode_for_header_every_byte),
        cmocka_unit_test(test_encode_for_header_mixed),
        cmocka_unit_test(test_encode_for_header_keeps_normalised),
        cmocka_unit_test(test_header_safe_finds_byte_anywhere),
    };
    int failed;

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        case_tests[i] = (struct CMUnitTest){
            .name = cases[i].name,
            .test_func = run_normalize_case,
            .initial_state = &cases[i],
        };
    }

    failed = cmocka_run_group_tests_name("url_normalize cases", case_tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("url", tests, NULL, NULL);
    return failed == 0 ? 0 : 1;
}
