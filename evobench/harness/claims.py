"""Cooperating runners: a cell is claimed before it runs, so several ``evobench run`` processes
(on one machine, or on several sharing the run folder) split a grid and never compute a cell
twice.

A claim is ``RUN/claims/<cell_key>.lock``, created atomically (a temporary file hard-linked to
its name, which fails if it exists), holding the owner (host, PID, a random token) and the
expiry of its lease. The owner renews its leases from a heartbeat thread while its cells run
and removes each claim when the cell is stored. A claim is taken over when its lease has expired
(the owner died on any machine, or lost the folder) or at once when its owner was on this host
and its PID is gone. Taking over renames the stale file away first, so of two runners that
both found it stale only one wins.

``EVOBENCH_CLAIM_LEASE_S`` sets the lease (default 120 s; renewed every quarter lease). Every
lease is bounded: a claim whose expiry lies further ahead than its own lease (a clock ahead on
the owner's host, a stale lock copied from another host; at most a day, plus a few seconds for
clocks that differ slightly) is stale, and taking it over says so in one line, so no claim can
hold a cell forever. ``evobench run --dry-run`` shows the cells other runners hold.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from evobench.files import OutsideFolderError, within

LEASE_ENV = "EVOBENCH_CLAIM_LEASE_S"
DEFAULT_LEASE_S = 120.0
MAX_LEASE_S = 86400.0  # no claim holds a cell longer than a day without renewing it
CLOCK_SLACK_S = 5.0  # clocks of hosts sharing a folder may differ this much


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _span(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


class Claims:
    """The claims of one runner in one run folder."""

    def __init__(self, root: Path, lease_s: float | None = None, note=None):
        self.dir = Path(root) / "claims"
        if lease_s is None:
            try:
                lease_s = float(os.environ.get(LEASE_ENV, DEFAULT_LEASE_S))
            except ValueError:
                lease_s = DEFAULT_LEASE_S
        self.lease_s = min(lease_s, MAX_LEASE_S) if lease_s > 0 and lease_s < float("inf") \
            else DEFAULT_LEASE_S
        self.note = note or (lambda text: None)  # one line for the user (a stale claim broken)
        self.host = socket.gethostname()
        self.token = f"{self.host}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- files -------------------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        return within(self.dir.parent, self.dir.name, f"{key}.lock")

    def _content(self) -> bytes:
        return json.dumps({"owner": self.token, "host": self.host, "pid": os.getpid(),
                           "lease_s": self.lease_s,
                           "expires": time.time() + self.lease_s}).encode()

    def _write_tmp(self) -> Path:
        within(self.dir.parent, self.dir.name)
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = within(self.dir.parent, self.dir.name, f".{self.token}.{uuid.uuid4().hex[:8]}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(self._content())
            fh.flush()
            os.fsync(fh.fileno())
        return tmp

    @staticmethod
    def read(path: Path) -> dict | None:
        try:
            info = json.loads(path.read_text())
            return info if isinstance(info, dict) else None
        except (OSError, ValueError):
            return None

    def stale(self, info: dict | None, path: Path) -> bool:
        """A claim whose lease expired, whose expiry lies beyond its lease, or whose owner on
        this host is gone. An unreadable claim counts as stale once it is older than a lease."""
        return self.why_stale(info, path) is not None

    def _lease_of(self, info: dict) -> float:
        """The lease the claim's owner runs with (its own EVOBENCH_CLAIM_LEASE_S), at most a
        day."""
        try:
            theirs = float(info.get("lease_s", self.lease_s))
        except (TypeError, ValueError):
            theirs = self.lease_s
        if not 0 < theirs < float("inf"):
            theirs = self.lease_s
        return min(theirs, MAX_LEASE_S)

    def why_stale(self, info: dict | None, path: Path) -> str | None:
        """Why the claim ``info`` (read from ``path``) is stale, or None while it holds."""
        now = time.time()
        if info is None:
            try:
                age = now - path.stat().st_mtime
            except OSError:
                return "it is gone"
            return "it is unreadable and older than a lease" if age > self.lease_s else None
        try:
            expires = float(info.get("expires", 0))
            if not expires < float("inf"):
                raise ValueError
            if expires < now:
                return "its lease expired"
            lease = self._lease_of(info)
            if expires - now > lease + CLOCK_SLACK_S:
                return (f"its expiry lies {_span(expires - now)} ahead, more than its "
                        f"{lease:g} s lease (a clock ahead on {info.get('host', '?')}, or a "
                        "stale claim from another host)")
            if info.get("host") == self.host and not _pid_alive(int(info.get("pid", 0))):
                return f"its owner (PID {info.get('pid')} on this host) is gone"
        except (TypeError, ValueError, OverflowError):
            return "it is malformed"
        return None

    def holder(self, key: str) -> str | None:
        """Who holds ``key`` and until when, in words; None if nobody holds it (no claim, or a
        stale one, which the next run takes over)."""
        path = self._path(key)
        if not path.exists():
            return None
        info = self.read(path)
        if self.why_stale(info, path) is not None:
            return None
        if info is None:
            return "claimed (the claim is being written)"
        try:
            left = f"; its lease ends in {_span(float(info['expires']) - time.time())}"
        except (KeyError, TypeError, ValueError):
            left = ""
        return f"claimed by {info.get('host', '?')} PID {info.get('pid', '?')}{left}"

    def stale_note(self, key: str) -> str | None:
        """For ``--dry-run``: why an existing claim on ``key`` will be taken over, or None."""
        path = self._path(key)
        if not path.exists():
            return None
        info = self.read(path)
        why = self.why_stale(info, path)
        return None if why is None else f"stale claim, taken over: {why}"

    # -- claiming ----------------------------------------------------------------------------
    def try_claim(self, key: str) -> bool:
        """Claim ``key``: True if this runner holds it now (it may run the cell)."""
        from evobench.harness.store import StoreWriteError

        try:
            return self._try_claim(key)
        except OutsideFolderError as exc:
            raise StoreWriteError(str(exc)) from None
        except OSError as exc:
            raise StoreWriteError(f"cannot write a claim in {self.dir}: "
                                  f"{exc.strerror or type(exc).__name__}; the cells stored so "
                                  "far are kept") from None

    def _create(self, path: Path) -> bool:
        """Create ``path`` with our claim, atomically; False if it exists."""
        tmp = self._write_tmp()
        try:
            os.link(tmp, path)  # atomic, and the claim is complete the moment it appears
            return True
        except FileExistsError:
            return False
        except OSError:  # no hard links here (some network file systems): exclusive create
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as fh:
                fh.write(self._content())
            return True
        finally:
            tmp.unlink(missing_ok=True)

    def _try_claim(self, key: str) -> bool:
        path = self._path(key)
        for _ in range(3):
            if self._create(path):
                with self._lock:
                    self.held.add(key)
                return True
            info = self.read(path)
            if info is not None and info.get("owner") == self.token:
                return True
            why = self.why_stale(info, path)
            if why is None or not self._break(path, info):
                return False
            if "ahead" in why:  # not the usual dead runner: worth a line
                self.note(f"taking over the claim on cell {key[:12]} by "
                          f"{(info or {}).get('host', '?')} PID {(info or {}).get('pid', '?')}: "
                          f"{why}")
        return False

    def _break(self, path: Path, seen: dict | None) -> bool:
        """Remove the stale claim ``seen``; False if another runner replaced it meanwhile."""
        aside = path.with_name(f"{path.name}.stale-{self.token}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return True  # someone else removed it: try to create it again
        except OSError:
            return False
        moved = self.read(aside)
        if seen is not None and moved != seen:  # a fresh claim came in between: put it back
            try:
                os.link(aside, path)
            except OSError:
                pass
            aside.unlink(missing_ok=True)
            return False
        aside.unlink(missing_ok=True)
        return True

    def release(self, key: str) -> None:
        with self._lock:
            self.held.discard(key)
        path = self._path(key)
        info = self.read(path)
        if info is not None and info.get("owner") == self.token:
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass  # a leftover claim expires with its lease

    def renew(self) -> None:
        """Extend the lease of every claim this runner holds."""
        with self._lock:
            keys = list(self.held)
        for key in keys:
            try:
                path = self._path(key)
            except OutsideFolderError:
                continue  # the claims folder became a link out of the run: write nothing
            info = self.read(path)
            if info is None or info.get("owner") != self.token:
                continue  # taken over (this runner stalled past its lease): not ours any more
            try:
                tmp = self._write_tmp()
                os.replace(tmp, path)
            except (OSError, OutsideFolderError):
                continue

    # -- heartbeat ---------------------------------------------------------------------------
    def __enter__(self) -> Claims:
        def beat():
            while not self._stop.wait(self.lease_s / 4):
                self.renew()

        self._thread = threading.Thread(target=beat, name="evobench-claims", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            keys = list(self.held)
        for key in keys:
            self.release(key)
