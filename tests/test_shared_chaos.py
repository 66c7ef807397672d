"""The random-SIGKILL proof of ABI.md §17 (issue 24), with real processes:
two enqueuers (submit-only sharing clients, ``tests/chaos_enqueuer.py``) and
one deliverer (``smtpbridge service run``) on one data_dir; at random points
one of the three is SIGKILLed and started again, for ``SMTPBRIDGE_CHAOS_ROUNDS``
rounds (default 200, bounded by ``SMTPBRIDGE_CHAOS_SECONDS``, default 170).
Then the deliverer drains the outbox and is stopped with SIGTERM.

Checked on what the recording server received:
- no acknowledged message is lost: every message whose ``enqueue`` returned
  (its line in the enqueuer's ack file) arrived;
- a message that arrived twice arrived with the same Message-ID both times,
  its status says ``possible_duplicate``, and the deliverer was killed
  between the two arrivals: the first came on a connection the server took
  before the kill, the second on one after it (so no two live deliverers
  sent it).

The seed is printed; ``SMTPBRIDGE_CHAOS_SEED`` repeats a run.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Tuple

import smtpbridge
from conftest import ROOT, TESTS, configure
from servers import RecordingServer

CLI = Path(os.environ.get("SMTPBRIDGE_TEST_CLI") or ROOT / "target" / "release" / "smtpbridge")
ROUNDS = int(os.environ.get("SMTPBRIDGE_CHAOS_ROUNDS", "200"))
BUDGET_S = float(os.environ.get("SMTPBRIDGE_CHAOS_SECONDS", "170"))
#: The longest a drained outbox may take once the kills stop.
DRAIN_S = 60.0


class Roles:
    """The three processes; each is started again after it is killed."""

    def __init__(self, data_dir: Path, work: Path) -> None:
        self.data_dir, self.work = data_dir, work
        self.generation = 0
        self.procs: Dict[str, subprocess.Popen] = {}
        self.ack_files: List[Path] = []

    def start(self, role: str) -> None:
        self.generation += 1
        if role == "deliverer":
            command = [str(CLI), "--data-dir", str(self.data_dir), "service", "run",
                       "--log", str(self.work / "service.log")]
        else:
            acks = self.work / f"acks-{role}-{self.generation}.txt"
            self.ack_files.append(acks)
            command = [sys.executable, str(TESTS / "chaos_enqueuer.py"), str(self.data_dir),
                       f"{role}.{self.generation}", str(acks), "0"]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "bindings" / "python"),
                                                           os.environ.get("PYTHONPATH", "")]))
        with open(self.work / f"{role}.stderr", "a") as errors:
            self.procs[role] = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                stderr=errors, env=env)

    def kill(self, role: str) -> None:
        proc = self.procs[role]
        proc.kill()
        proc.wait(timeout=30)

    def acknowledged(self) -> Dict[str, str]:
        """token -> message id of every acknowledged enqueue."""
        acked = {}
        for path in self.ack_files:
            if path.exists():
                for line in path.read_text(encoding="ascii").splitlines():
                    token, id = line.split()
                    acked[token] = id
        return acked


def test_random_sigkill_of_two_enqueuers_and_the_deliverer_loses_no_acknowledged_mail(tmp_path: Path) -> None:
    seed = int(os.environ.get("SMTPBRIDGE_CHAOS_SEED") or time.time_ns() % 1_000_000)
    print(f"chaos seed {seed}, {ROUNDS} rounds")
    rng = random.Random(seed)
    data_dir = tmp_path / "data"
    with RecordingServer() as server:
        with smtpbridge.Client(data_dir, paused=True) as client:
            configure(client, server, SMTPRetryInitialMs=200, SMTPRetryMaxMs=1000)
        roles = Roles(data_dir, tmp_path)
        for role in ("E1", "E2", "deliverer"):
            roles.start(role)
        # The server's connection count at each kill of the deliverer: its
        # connections are numbered up to it, its successor's beyond it.
        deliverer_kills: List[int] = []
        started = time.monotonic()
        rounds = 0
        while rounds < ROUNDS and time.monotonic() - started < BUDGET_S:
            # A Python enqueuer takes ~0.2 s to start: kills land in its
            # start, its enqueues and its idle time alike.
            time.sleep(rng.uniform(0.02, 0.5))
            role = rng.choice(("E1", "E2", "deliverer"))
            roles.kill(role)
            if role == "deliverer":
                deliverer_kills.append(server.connections)
            roles.start(role)
            rounds += 1
        for role in ("E1", "E2"):
            roles.kill(role)
        acked = roles.acknowledged()
        deadline = time.monotonic() + DRAIN_S
        while True:
            arrived = {m.parsed["Subject"] for m in server.messages}
            missing = set(acked) - arrived
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        deliverer = roles.procs["deliverer"]
        # SIGTERM once it is running (has blocked the signal), not while it starts.
        log = tmp_path / "service.log"
        while f"service, pid {deliverer.pid}," not in log.read_text(encoding="utf-8"):
            assert deliverer.poll() is None and time.monotonic() < deadline + 10, "the last deliverer never started"
            time.sleep(0.02)
        deliverer.send_signal(signal.SIGTERM)
        assert deliverer.wait(timeout=60) == 0
        print(f"{rounds} rounds in {time.monotonic() - started:.0f} s, {len(deliverer_kills)} deliverer kills, "
              f"{len(acked)} acknowledged, {len(server.messages)} received")
        assert rounds >= ROUNDS, f"only {rounds} of {ROUNDS} rounds within {BUDGET_S} s"
        # The run did what it is for: mail queued and sent throughout, the deliverer killed often.
        assert len(acked) >= ROUNDS and len(deliverer_kills) >= ROUNDS // 5, (len(acked), len(deliverer_kills))
        for role in ("E1", "E2", "deliverer"):
            errors = (tmp_path / f"{role}.stderr").read_text()
            assert "Error" not in errors and "error:" not in errors, errors
        assert not missing, f"{len(missing)} acknowledged messages never arrived (seed {seed}): {sorted(missing)[:10]}"

        arrivals: Dict[str, List[Tuple[int, str]]] = defaultdict(list)
        for received in server.messages:
            arrivals[received.parsed["Subject"]].append((received.connection, received.parsed["Message-ID"]))
        duplicates = {token: seen for token, seen in arrivals.items() if len(seen) > 1}
        with smtpbridge.Client(data_dir, shared=True, submit_only=True) as reader:
            for token, seen in duplicates.items():
                assert len({message_id for _, message_id in seen}) == 1, (token, seen)
                for (first, _), (second, _) in zip(seen, seen[1:]):
                    assert any(first <= kill < second for kill in deliverer_kills), (
                        f"{token} arrived twice (connections {first}, {second}) with no deliverer killed in between")
                if token in acked:
                    assert reader.status(acked[token])["possible_duplicate"] is True, token
        print(f"{len(duplicates)} possible duplicates, each after a deliverer was killed past the final dot")
