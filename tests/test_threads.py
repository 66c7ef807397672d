"""One client, many threads (ABI §1 Threads)."""

from __future__ import annotations

import threading

from conftest import configure, message
from servers import RecordingServer

THREADS, EACH = 4, 20


def test_four_threads_sending_twenty_each_all_arrive(client):
    statuses, errors = [], []
    lock = threading.Lock()

    def worker(number: int) -> None:
        for i in range(EACH):
            try:
                status = client.send(message(subject=f"t{number}-m{i}"))
            except Exception as error:  # collected, reported below
                with lock:
                    errors.append(repr(error))
            else:
                with lock:
                    statuses.append(status)

    with RecordingServer() as server:
        configure(client, server)
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads), "a sending thread is stuck"
        assert errors == []
        received = server.wait_for(THREADS * EACH, timeout=10)

    assert len(received) == THREADS * EACH
    ids = [m.parsed["Message-ID"] for m in received]
    assert len(set(ids)) == THREADS * EACH
    assert sorted(ids) == sorted(s["message_id"] for s in statuses)
    subjects = sorted(m.parsed["Subject"] for m in received)
    assert subjects == sorted(f"t{n}-m{i}" for n in range(THREADS) for i in range(EACH))
    assert len({s["id"] for s in statuses}) == THREADS * EACH
    assert all(s["state"] == "sent" for s in statuses)


def test_concurrent_config_set_on_different_profiles_loses_no_update(dir_client):
    lost = []

    def worker(number: int) -> None:
        for i in range(30):
            dir_client.config_set(f"P{number}.SMTPServerPort", 1000 + i)
            value = dir_client.config_get(f"P{number}.SMTPServerPort")
            if value != str(1000 + i):
                lost.append((f"P{number}", 1000 + i, value))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert lost == [], f"{len(lost)} updates lost, e.g. {lost[:3]}"
    assert [dir_client.config_get(f"P{n}.SMTPServerPort") for n in range(8)] == ["1029"] * 8
