"""Run claims: two sweeps over one grid and one store split the work and record each run once.

Before training a run a sweep claims it in the store's `claims` table, inside one BEGIN IMMEDIATE transaction
(SQLite's write lock, so two claimers never both win). A claim names its owner (host, pid, the process's start
time, a token per sweep) and carries a lease that a heartbeat thread renews while the owner lives. A claim can be
taken over when its owner process is gone (same host: the pid is not running, or is another process now) or
its lease ran out (another host, or a hung owner). A sweep that meets a claim held by a live owner skips the
run, trains what it can, then waits for it: when the run's record lands it is reported as trained by another
sweep; when the claim is released without a record (that sweep was interrupted) or its owner dies, it is taken
over and trained here. A claim is released once its run's record is written.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import psutil

LEASE_SECONDS = 60.0  # a claim whose owner stops renewing it (hung, or on another host and dead) frees after this
RENEW_SECONDS = 15.0  # the heartbeat renews every claim of its owner this often (a quarter of the lease)
TABLE = ("CREATE TABLE IF NOT EXISTS claims (run_id TEXT PRIMARY KEY, owner TEXT NOT NULL, host TEXT NOT NULL, "
         "pid INTEGER NOT NULL, process_started REAL, claimed_at REAL NOT NULL, lease_until REAL NOT NULL)")


def _process_started(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return None


def owner_alive(host: str, pid: int, process_started: float | None, lease_until: float, now: float) -> bool:
    """Whether a claim's owner may still be training it."""
    if lease_until < now:
        return False
    if host != socket.gethostname():
        return True  # another machine: only its lease can tell
    started = _process_started(pid)
    if started is None:
        return False  # no such process
    return process_started is None or abs(started - process_started) < 1.0  # else the pid was reused


@dataclass
class ClaimOutcome:
    mine: list[str] = field(default_factory=list)  # claimed now: train them
    held: list[str] = field(default_factory=list)  # a live owner trains them: wait for them
    landed: list[str] = field(default_factory=list)  # already recorded ok by another sweep


class Claims:
    """This sweep's claims on one store (its own connection; `heartbeat()` keeps the leases alive)."""

    def __init__(self, store_path: str | os.PathLike, *, lease_seconds: float = LEASE_SECONDS):
        self.path = Path(store_path)
        self.lease_seconds = lease_seconds
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.process_started = _process_started(self.pid)
        self.owner = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:8]}"
        self._db = self._connect()
        self._db.execute(TABLE)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)  # autocommit: transactions are explicit

    # --- claiming ----------------------------------------------------------------------------------------
    def claim(self, run_ids: Iterable[str]) -> ClaimOutcome:
        """Claim every run of `run_ids` that no live owner holds and that is not recorded ok yet."""
        wanted = list(run_ids)
        outcome = ClaimOutcome()
        if not wanted:
            return outcome
        marks = ", ".join("?" for _ in wanted)
        now = time.time()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            done = {row[0] for row in self._db.execute(
                f"SELECT run_id FROM runs WHERE status = 'ok' AND run_id IN ({marks})", wanted)}
            held = {row[0]: row[1:] for row in self._db.execute(
                f"SELECT run_id, owner, host, pid, process_started, lease_until FROM claims WHERE run_id IN ({marks})",
                wanted)}
            for run_id in wanted:
                if run_id in done:
                    outcome.landed.append(run_id)
                    continue
                if run_id in held and held[run_id][0] != self.owner and owner_alive(*held[run_id][1:], now):
                    outcome.held.append(run_id)
                    continue
                self._db.execute("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 (run_id, self.owner, self.host, self.pid, self.process_started, now,
                                  now + self.lease_seconds))
                outcome.mine.append(run_id)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return outcome

    def held_elsewhere(self, run_ids: Iterable[str]) -> set[str]:
        """Which of these runs a live owner other than this sweep holds now."""
        wanted = list(run_ids)
        if not wanted:
            return set()
        now = time.time()
        rows = self._db.execute(
            f"SELECT run_id, owner, host, pid, process_started, lease_until FROM claims WHERE run_id IN "
            f"({', '.join('?' for _ in wanted)})", wanted).fetchall()
        return {row[0] for row in rows if row[1] != self.owner and owner_alive(*row[2:], now)}

    def release(self, run_ids: Iterable[str]) -> None:
        ids = list(run_ids)
        if ids:
            try:
                self._db.execute(f"DELETE FROM claims WHERE owner = ? AND run_id IN ({', '.join('?' for _ in ids)})",
                                 [self.owner, *ids])
            except sqlite3.Error:
                pass  # a claim left behind frees itself: its owner will be gone

    # --- the lease ---------------------------------------------------------------------------------------
    def heartbeat(self, every: float = RENEW_SECONDS) -> None:
        """Renew this owner's leases from a daemon thread (its own connection) until close()."""
        def renew() -> None:
            db = self._connect()
            try:
                while not self._stop.wait(every):
                    try:
                        db.execute("UPDATE claims SET lease_until = ? WHERE owner = ?",
                                   (time.time() + self.lease_seconds, self.owner))
                    except sqlite3.Error:
                        pass  # busy or full: the next beat tries again, and the lease outlasts a few misses
            finally:
                db.close()

        self._thread = threading.Thread(target=renew, name="claims-heartbeat", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop renewing and release every claim this sweep still holds (its unfinished runs)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self._db.execute("DELETE FROM claims WHERE owner = ?", (self.owner,))
        except sqlite3.Error:
            pass
        self._db.close()

    def __enter__(self) -> "Claims":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
