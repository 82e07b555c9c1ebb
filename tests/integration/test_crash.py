"""Durability: every link acknowledged with 201 survives SIGKILL."""

import signal
import threading
import time

from shortd import Client


def test_acknowledged_links_survive_sigkill(make_server):
    server = make_server(["--threads", "2"]).start()
    acknowledged = []
    lock = threading.Lock()
    stop = threading.Event()

    def creator(worker):
        try:
            with Client(server.port, timeout=10) as client:
                n = 0
                while not stop.is_set():
                    url = "https://example.org/crash/%d/%d" % (worker, n)
                    n += 1
                    response = client.request("POST", "/api/v1/links", {"url": url})
                    if response.status == 201:
                        with lock:
                            acknowledged.append((response.json()["code"], url))
        except (ConnectionError, OSError):
            pass  # the server was killed mid-request

    threads = [threading.Thread(target=creator, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    server.stop(signal.SIGKILL)
    stop.set()
    for thread in threads:
        thread.join()

    assert len(acknowledged) > 100, "too few creates before the kill to test anything"

    server.start()
    lost = []
    with server.connect() as client:
        for code, url in acknowledged:
            response = client.request("GET", "/" + code)
            if response.status != 301 or response.header("location") != url:
                lost.append((code, url, response.status))
    assert not lost, "%d acknowledged links lost, first: %r" % (len(lost), lost[:5])
