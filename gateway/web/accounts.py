"""Desk accounts, sessions and login throttling, in one local SQLite file (``[desk] accounts``).

Leads stay in InfluxDB; only who may use the desk lives here. Passwords are
kept as Argon2id hashes (argon2-cffi, the maintained binding of the reference
implementation), never in plain text. A session is a random token: the
browser holds it in a cookie, this file holds only its SHA-256, with the
user, the CSRF token of the session and when it was last used; a session
unused for ``session_idle_h`` ends. A login is refused after
``login_max_failures`` failures in ``login_window_min`` for the same account
from the same address, whatever password follows, until the window moves on.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from common.files import private_file
from gateway.desk.casework import ROLES, Actor

NAME_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
MIN_PASSWORD = 10
SCHEMA = """
CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, role TEXT NOT NULL, team TEXT, hash TEXT NOT NULL,
                                  created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (token_sha TEXT PRIMARY KEY, name TEXT NOT NULL, csrf TEXT NOT NULL,
                                     created REAL NOT NULL, last_used REAL NOT NULL);
CREATE TABLE IF NOT EXISTS login_failures (name TEXT NOT NULL, address TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS login_failures_key ON login_failures (name, address, at);
"""


class AccountError(Exception):
    """A bad account, password or login; the message can be shown to the user."""


class TooManyAttempts(AccountError):
    pass


@dataclass(frozen=True)
class Session:
    token: str
    user: Actor
    csrf: str


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    def __init__(self, path: Path, *, session_idle_s: float = 8 * 3600, max_failures: int = 5,
                 window_s: float = 900, clock=time.time) -> None:
        private_file(path)   # password hashes and sessions: the owner's alone
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self.session_idle_s = session_idle_s
        self.max_failures = max_failures
        self.window_s = window_s
        self.clock = clock
        self._hasher = PasswordHasher()

    def close(self) -> None:
        self._db.close()

    def shared(self) -> tuple[sqlite3.Connection, threading.Lock]:
        """The desk's SQLite connection and its lock, for the other tables of the desk's file (notifications)."""
        return self._db, self._lock

    # ----------------------------------------------------------------- users

    def add_user(self, name: str, role: str, team: str | None, password: str) -> None:
        if not NAME_RE.fullmatch(name):
            raise AccountError(f"user name {name!r}: lower-case letters, digits, '.', '_' or '-', starting with a "
                               "letter, at most 64")
        if role not in ROLES:
            raise AccountError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if role == "officer" and not team:
            raise AccountError("an officer needs a team (--team)")
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"the password needs at least {MIN_PASSWORD} characters")
        with self._lock:
            if self._db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise AccountError(f"user {name} exists already")
            self._db.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?)",
                             (name, role, team or None, self._hasher.hash(password), self.clock()))

    def user(self, name: str) -> Actor | None:
        with self._lock:
            row = self._db.execute("SELECT name, role, team FROM users WHERE name = ?", (name,)).fetchone()
        return Actor(*row) if row else None

    def users(self) -> list[Actor]:
        with self._lock:
            return [Actor(*row) for row in self._db.execute("SELECT name, role, team FROM users ORDER BY name")]

    # ----------------------------------------------------------------- logging in and out

    def login(self, name: str, password: str, address: str) -> Session:
        """A new session; AccountError (the same words for an unknown user and a wrong password)."""
        now = self.clock()
        with self._lock:
            self._db.execute("DELETE FROM login_failures WHERE at < ?", (now - self.window_s,))
            failures = self._db.execute("SELECT count(*) FROM login_failures WHERE name = ? AND address = ?",
                                        (name, address)).fetchone()[0]
            if failures >= self.max_failures:
                raise TooManyAttempts(f"too many failed logins for {name}; try again in "
                                      f"{self.window_s / 60:g} minutes")
            row = self._db.execute("SELECT hash FROM users WHERE name = ?", (name,)).fetchone()
        if not self._verify(row[0] if row else None, password):
            with self._lock:
                self._db.execute("INSERT INTO login_failures VALUES (?, ?, ?)", (name, address, now))
            raise AccountError("wrong user name or password")
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self._lock:
            self._db.execute("DELETE FROM login_failures WHERE name = ? AND address = ?", (name, address))
            self._db.execute("DELETE FROM sessions WHERE last_used < ?", (now - self.session_idle_s,))
            self._db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?)", (_sha(token), name, csrf, now, now))
        return Session(token, self.user(name), csrf)

    def _verify(self, stored: str | None, password: str) -> bool:
        if stored is None:
            # As slow as a real check, so the answer's time does not tell which names exist.
            try:
                self._hasher.verify(self._hasher.hash("not-a-user-password"), password + "x")
            except VerificationError:
                pass
            return False
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def session(self, token: str | None) -> Session | None:
        """The live session of this token, touched; None if unknown or idle too long."""
        if not token:
            return None
        now = self.clock()
        key = _sha(token)
        with self._lock:
            row = self._db.execute("SELECT s.name, s.csrf, s.last_used, u.role, u.team FROM sessions s JOIN users u "
                                   "ON u.name = s.name WHERE s.token_sha = ?", (key,)).fetchone()
            if row is None:
                return None
            name, csrf, last_used, role, team = row
            if now - last_used > self.session_idle_s:
                self._db.execute("DELETE FROM sessions WHERE token_sha = ?", (key,))
                return None
            if now - last_used > 30:
                self._db.execute("UPDATE sessions SET last_used = ? WHERE token_sha = ?", (now, key))
        return Session(token, Actor(name, role, team), csrf)

    def logout(self, token: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM sessions WHERE token_sha = ?", (_sha(token),))

    @staticmethod
    def csrf_ok(session: Session, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(session.csrf, given)
