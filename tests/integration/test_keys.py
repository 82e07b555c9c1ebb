"""API keys and link ownership against the real binary: creating, listing
and revoking keys, what each key may read, delete and list, and paging."""

import re

import pytest

from shortd import ADMIN_KEY, build_request
from support import ADMIN, bearer, create_key, expect_error, list_all_codes
from support import no_sanitizer_report  # noqa: F401 (an autouse fixture)

URL = "https://example.org/keys"


def test_create_key_returns_secret_once(server):
    response = server.request("POST", "/api/v1/keys", {"name": "mailer", "rate": 2.5,
                                                       "burst": 7}, ADMIN)
    assert response.status == 201, response
    key = response.json()
    assert set(key) == {"id", "name", "created_at", "revoked_at", "rate", "burst", "key"}, key
    assert key["name"] == "mailer", key
    assert key["rate"] == 2.5, key
    assert key["burst"] == 7, key
    assert key["revoked_at"] is None, key
    assert isinstance(key["id"], int) and key["id"] > 0, key
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", key["created_at"]), key
    assert len(key["key"]) >= 32, key
    assert response.header("cache-control") == "no-store", response

    listing = server.request("GET", "/api/v1/keys", None, ADMIN)
    assert listing.status == 200, listing
    assert key["key"] not in listing.body.decode(), listing
    listed = listing.json()["keys"]
    expected = dict(key)
    del expected["key"]
    assert listed == [expected], listed


def test_key_defaults_are_null(server):
    key = create_key(server, "plain")
    assert key["rate"] is None, key
    assert key["burst"] is None, key
    unnamed = server.request("POST", "/api/v1/keys", {}, ADMIN)
    assert unnamed.status == 201, unnamed


def test_keys_get_distinct_ids_and_secrets(server):
    keys = [create_key(server, "k%d" % i) for i in range(5)]
    assert len({key["id"] for key in keys}) == 5, keys
    assert len({key["key"] for key in keys}) == 5, keys
    listed = server.request("GET", "/api/v1/keys", None, ADMIN).json()["keys"]
    assert sorted(key["id"] for key in listed) == sorted(key["id"] for key in keys), listed


@pytest.mark.parametrize("body, code", [
    ({"name": "x" * 129}, "invalid_name"),
    ({"name": 5}, "invalid_name"),
    ({"name": "a", "rate": 0}, "invalid_rate"),
    ({"name": "a", "rate": -1}, "invalid_rate"),
    ({"name": "a", "rate": 0.0001}, "invalid_rate"),
    ({"name": "a", "rate": 1000001}, "invalid_rate"),
    ({"name": "a", "rate": "5"}, "invalid_rate"),
    ({"name": "a", "burst": 0}, "invalid_burst"),
    ({"name": "a", "burst": 1.5}, "invalid_burst"),
    ({"name": "a", "burst": 1000001}, "invalid_burst"),
    ({"name": "a", "burst": True}, "invalid_burst"),
    ({"name": "a", "owner": "me"}, "unknown_field"),
    ([], "invalid_json"),
])
def test_invalid_key_request_rejected(server, body, code):
    response = server.request("POST", "/api/v1/keys", body, ADMIN)
    expect_error(response, 400, code)
    assert server.request("GET", "/api/v1/keys", None, ADMIN).json()["keys"] == []


def test_key_name_of_128_bytes_accepted(server):
    key = create_key(server, "\u00e9" * 64)
    assert key["name"] == "\u00e9" * 64, key


def test_keys_endpoints_need_admin(server):
    key = create_key(server, "normal")["key"]
    for method, path, body in (("GET", "/api/v1/keys", None),
                               ("POST", "/api/v1/keys", {"name": "x"}),
                               ("DELETE", "/api/v1/keys/1", None)):
        anonymous = server.request(method, path, body)
        expect_error(anonymous, 401, "missing_key")
        assert anonymous.header("www-authenticate") == "Bearer", anonymous
        expect_error(server.request(method, path, body, bearer(key)), 403, "admin_only")
        expect_error(server.request(method, path, body, bearer("sk_not-a-real-key-at-all")),
                     403, "invalid_key")
    # None of the rejected requests created or revoked a key.
    listed = server.request("GET", "/api/v1/keys", None, ADMIN).json()["keys"]
    assert [(k["name"], k["revoked_at"]) for k in listed] == [("normal", None)], listed


def test_keys_methods_not_allowed(server):
    response = server.request("PUT", "/api/v1/keys", {"name": "x"}, ADMIN)
    expect_error(response, 405, "method_not_allowed")
    response = server.request("GET", "/api/v1/keys/1", None, ADMIN)
    expect_error(response, 405, "method_not_allowed")
    assert response.header("allow") == "DELETE", response
    expect_error(server.request("DELETE", "/api/v1/keys/abc", None, ADMIN), 404, "not_found")


def test_revoke_key(server):
    key = create_key(server, "leaving")
    code = server.create(URL, key=key["key"]).json()["code"]

    response = server.request("DELETE", "/api/v1/keys/%d" % key["id"], None, ADMIN)
    assert response.status == 204, response
    again = server.request("DELETE", "/api/v1/keys/%d" % key["id"], None, ADMIN)
    expect_error(again, 410, "key_revoked")
    expect_error(server.request("DELETE", "/api/v1/keys/999999", None, ADMIN), 404, "not_found")

    listed = server.request("GET", "/api/v1/keys", None, ADMIN).json()["keys"]
    assert listed[0]["revoked_at"] is not None, listed

    secret = bearer(key["key"])
    expect_error(server.create(URL + "/after", key=key["key"]), 403, "key_revoked")
    expect_error(server.request("GET", "/api/v1/links/" + code, None, secret), 403,
                 "key_revoked")
    expect_error(server.request("GET", "/api/v1/links", None, secret), 403, "key_revoked")
    expect_error(server.request("DELETE", "/api/v1/links/" + code, None, secret), 403,
                 "key_revoked")
    # The key's links still redirect, and the admin key still reads them.
    assert server.request("GET", "/" + code).status == 301
    assert server.request("GET", "/api/v1/links/" + code, None, ADMIN).status == 200


def test_keys_and_revocation_survive_restart(server):
    active = create_key(server, "active")
    revoked = create_key(server, "revoked")
    assert server.request("DELETE", "/api/v1/keys/%d" % revoked["id"], None, ADMIN).status == 204
    code = server.create(URL, key=active["key"]).json()["code"]
    assert server.stop() == 0

    server.start()
    response = server.request("GET", "/api/v1/links/" + code, None, bearer(active["key"]))
    assert response.status == 200, response
    expect_error(server.create(URL, key=revoked["key"]), 403, "key_revoked")
    listed = server.request("GET", "/api/v1/keys", None, ADMIN).json()["keys"]
    assert {k["name"]: k["revoked_at"] is None for k in listed} == {"active": True,
                                                                     "revoked": False}, listed


def test_owner_reads_and_deletes_own_link(server):
    owner = create_key(server, "owner")["key"]
    other = create_key(server, "other")["key"]
    code = server.create(URL, key=owner).json()["code"]

    assert server.request("GET", "/api/v1/links/" + code, None, bearer(owner)).status == 200
    expect_error(server.request("GET", "/api/v1/links/" + code, None, bearer(other)), 403,
                 "not_owner")
    expect_error(server.request("DELETE", "/api/v1/links/" + code, None, bearer(other)), 403,
                 "not_owner")
    expect_error(server.request("DELETE", "/api/v1/links/" + code), 401, "missing_key")
    # The rejected deletes changed nothing.
    assert server.request("GET", "/" + code).status == 301

    assert server.request("DELETE", "/api/v1/links/" + code, None, bearer(owner)).status == 204
    assert server.request("GET", "/" + code).status == 410
    expect_error(server.request("DELETE", "/api/v1/links/" + code, None, bearer(owner)), 410,
                 "link_gone")


def test_admin_manages_every_link(server):
    owner = create_key(server, "owner")["key"]
    owned = server.create(URL + "/owned", key=owner).json()["code"]
    anonymous = server.create(URL + "/anonymous").json()["code"]
    for code in (owned, anonymous):
        assert server.request("GET", "/api/v1/links/" + code, None, ADMIN).status == 200
        assert server.request("DELETE", "/api/v1/links/" + code, None, ADMIN).status == 204
        assert server.request("GET", "/" + code).status == 410


def test_anonymous_link_deletable_only_by_admin(server):
    key = create_key(server, "someone")["key"]
    code = server.create(URL).json()["code"]
    for headers in (None, bearer(key), ADMIN):
        response = server.request("GET", "/api/v1/links/" + code, None, headers)
        assert response.status == 200, (headers, response)
    expect_error(server.request("DELETE", "/api/v1/links/" + code, None, bearer(key)), 403,
                 "not_owner")
    assert server.request("GET", "/" + code).status == 301
    assert server.request("DELETE", "/api/v1/links/" + code, None, ADMIN).status == 204


def test_key_link_hidden_from_anonymous_reader(server):
    owner = create_key(server, "owner")["key"]
    code = server.create(URL, key=owner).json()["code"]
    response = server.request("GET", "/api/v1/links/" + code)
    assert response.status in (401, 403), response
    assert response.json()["error"]["code"] in ("missing_key", "not_owner"), response


def test_dedupe_is_per_owner(server):
    first_key = create_key(server, "first")["key"]
    second_key = create_key(server, "second")["key"]
    anonymous = server.create(URL)
    mine = server.create(URL, key=first_key)
    mine_again = server.create(URL, key=first_key)
    theirs = server.create(URL, key=second_key)

    assert anonymous.status == 201, anonymous
    assert mine.status == 201, mine
    assert mine_again.status == 200, mine_again
    assert mine_again.json()["code"] == mine.json()["code"], mine_again
    assert theirs.status == 201, theirs
    codes = {anonymous.json()["code"], mine.json()["code"], theirs.json()["code"]}
    assert len(codes) == 3, codes


def test_list_own_links_newest_first_with_paging(server):
    owner = create_key(server, "owner")["key"]
    other = create_key(server, "other")["key"]
    mine = [server.create(URL + "/%d" % i, key=owner).json()["code"] for i in range(7)]
    server.create(URL + "/other", key=other)
    server.create(URL + "/anonymous")
    deleted = server.create(URL + "/deleted", key=owner).json()["code"]
    assert server.request("DELETE", "/api/v1/links/" + deleted, None, ADMIN).status == 204

    pages = []
    cursor = None
    for _ in range(10):
        path = "/api/v1/links?limit=3" + ("&cursor=" + cursor if cursor else "")
        response = server.request("GET", path, None, bearer(owner))
        assert response.status == 200, response
        page = response.json()
        assert set(page) == {"links", "next_cursor"}, page
        pages.append([link["code"] for link in page["links"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str), page
    assert pages == [mine[6:3:-1], mine[3:0:-1], mine[0:1]], pages


def test_list_order_kept_across_restart(server):
    owner = create_key(server, "owner")["key"]
    before = [server.create(URL + "/before/%d" % i, key=owner).json()["code"] for i in range(2)]
    assert server.stop() == 0
    server.start()
    after = [server.create(URL + "/after/%d" % i, key=owner).json()["code"] for i in range(2)]
    assert list_all_codes(server, bearer(owner)) == (before + after)[::-1]


def test_list_full_last_page_ends_paging(server):
    owner = create_key(server, "owner")["key"]
    for i in range(4):
        server.create(URL + "/%d" % i, key=owner)
    first = server.request("GET", "/api/v1/links?limit=2", None, bearer(owner)).json()
    assert len(first["links"]) == 2, first
    assert first["next_cursor"] is not None, first
    second = server.request("GET", "/api/v1/links?limit=2&cursor=" + first["next_cursor"], None,
                            bearer(owner)).json()
    assert len(second["links"]) == 2, second
    assert second["next_cursor"] is None, second


def test_admin_lists_every_link(server):
    owner = create_key(server, "owner")["key"]
    codes = [server.create(URL + "/anon").json()["code"],
             server.create(URL + "/owned", key=owner).json()["code"],
             server.create(URL + "/admin", key=ADMIN_KEY).json()["code"]]
    assert list_all_codes(server) == codes[::-1]


def test_list_default_limit_is_50(server):
    # The default key burst (50) would stop the 51st request.
    owner = create_key(server, "owner", burst=1000)["key"]
    for i in range(55):
        assert server.create(URL + "/%d" % i, key=owner).status == 201
    response = server.request("GET", "/api/v1/links", None, bearer(owner))
    assert response.status == 200, response
    page = response.json()
    assert len(page["links"]) == 50, len(page["links"])
    assert page["next_cursor"] is not None, page


def test_list_needs_a_key(server):
    server.create(URL)
    expect_error(server.request("GET", "/api/v1/links"), 401, "missing_key")


@pytest.mark.parametrize("query, code", [
    ("?limit=0", "invalid_limit"),
    ("?limit=1001", "invalid_limit"),
    ("?limit=-1", "invalid_limit"),
    ("?limit=ten", "invalid_limit"),
    ("?limit=", "invalid_limit"),
    ("?cursor=abc", "invalid_cursor"),
    ("?cursor=0", "invalid_cursor"),
    ("?cursor=-5", "invalid_cursor"),
    ("?cursor=99999999999999999999", "invalid_cursor"),
])
def test_invalid_list_query_rejected(server, query, code):
    expect_error(server.request("GET", "/api/v1/links" + query, None, ADMIN), 400, code)


def test_two_authorization_headers_rejected(server):
    key = create_key(server, "k")["key"]
    raw = ("POST /api/v1/keys HTTP/1.1\r\nHost: short.test\r\n"
           "Authorization: Bearer %s\r\nAuthorization: Bearer %s\r\n"
           "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
           % (key, ADMIN_KEY)).encode()
    with server.connect() as client:
        client.send(raw)
        expect_error(client.read_response(), 400, "duplicate_authorization")
    raw_list = build_request("GET", "/api/v1/links", None, None).replace(
        b"\r\n\r\n", ("\r\nAuthorization: Bearer %s\r\nAuthorization: Bearer %s\r\n\r\n"
                      % (ADMIN_KEY, ADMIN_KEY)).encode())
    with server.connect() as client:
        client.send(raw_list)
        expect_error(client.read_response(), 400, "duplicate_authorization")
    assert len(server.request("GET", "/api/v1/keys", None, ADMIN).json()["keys"]) == 1


def test_malformed_authorization_rejected(server):
    for value in ("Basic dXNlcjpwYXNz", "Bearer", "sk_abc"):
        response = server.request("GET", "/api/v1/keys", None, {"Authorization": value})
        assert response.status in (401, 403), (value, response)
        assert response.json()["error"]["code"] in ("invalid_authorization", "invalid_key"), \
            (value, response)
