"""Where released records go: a JSONL file, or POSTed to an HTTP endpoint (e.g. a CRM's intake).

Both take a record with its key and are idempotent by key, so the outbox can resend whatever it
has not yet marked delivered (a crash, a lost answer) and the reader still sees each record once:
the JSONL sink skips keys already in its file, the HTTP sink sends the key as
``Idempotency-Key`` for the endpoint to deduplicate. A sink's token never shows up in output,
logs, exception messages or reprs.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import httpx
from filelock import FileLock, Timeout

from ..annotator import ConfigError
from ..engine.config import ReviewSettings
from ..engine.lock import lock_path

HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")
"""Characters an ``Idempotency-Key`` keeps as they are; others are %-encoded (injective)."""


class SinkError(Exception):
    """The sink refused this record (e.g. a 4xx answer): resending it as it is will not help."""


class SinkDown(SinkError):
    """The sink cannot take records now (down, timing out, 5xx, its file unusable), even after
    retries: nothing is lost, the next delivery resumes."""


class Sink(Protocol):
    @property
    def name(self) -> str:
        """Where records go, for messages (never with a secret)."""

    def send(self, key: str, record: dict[str, Any]) -> None:
        """Deliver once: return when the record is durably taken (or was already)."""

    def close(self) -> None: ...


def _payload(key: str, record: dict[str, Any], where: str) -> dict[str, Any]:
    """The released object: the key first, then the record."""
    if record.get("key", key) != key:
        raise SinkError(f"record {key!r} for {where} has a different 'key' field of its own")
    return {"key": key, **record}


class JsonlSink:
    """Appends one JSON line per record, each fsynced; a key already in the file is skipped.

    The file is read (the part not read yet, under a lock beside it) before each append, so a
    record written just before a crash is not written again, other processes' appends count too,
    and a line cut off by a crash mid-write is removed before the next one is appended.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._keys: set[str] = set()
        self._inode = self._size = self._lines = 0
        """The file (inode) whose first ``_size`` bytes (``_lines`` lines) are in ``_keys``."""

    @property
    def name(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"JsonlSink({self.name!r})"

    def send(self, key: str, record: dict[str, Any]) -> None:
        line = (json.dumps(_payload(key, record, self.name), ensure_ascii=False) + "\n").encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            with FileLock(lock_path(self.path), timeout=60), open(self.path, "a+b") as file:
                self._catch_up(file)
                if key in self._keys:
                    return
                file.write(line)
                file.flush()
                os.fsync(file.fileno())
                self._keys.add(key)
                self._size += len(line)
                self._lines += 1
            if created:  # the file's name must survive a power loss as well as its lines
                directory = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(directory)
                finally:
                    os.close(directory)
        except Timeout:
            raise SinkDown(f"{self.name} is locked by another process for over a minute "
                           f"({lock_path(self.path).name}): record {key!r} not written") from None
        except OSError as exc:
            raise SinkDown(f"cannot write record {key!r} to {self.name}: "
                           f"{exc.strerror or exc}") from None

    def _catch_up(self, file: Any) -> None:
        """Read the keys appended since the last read; cut off a torn last line."""
        stat = os.fstat(file.fileno())
        if stat.st_ino != self._inode or stat.st_size < self._size:  # a new or replaced file
            self._keys, self._inode, self._size, self._lines = set(), stat.st_ino, 0, 0
        file.seek(self._size)
        for raw in file:
            if not raw.endswith(b"\n"):  # a crash mid-write: that record is still pending
                file.truncate(self._size)
                os.fsync(file.fileno())
                return
            if raw.strip():
                try:
                    self._keys.add(str(json.loads(raw)["key"]))
                except (ValueError, TypeError, KeyError):
                    raise SinkDown(f"{self.name}, line {self._lines + 1}, is not a released "
                                   "record (JSON with a \"key\"): fix or move the file") from None
            self._size += len(raw)
            self._lines += 1

    def close(self) -> None:
        """Nothing stays open between records."""


class HttpSink:
    """POSTs each record as JSON with its key as ``Idempotency-Key``, retrying transient
    failures with the same key: the endpoint must deduplicate by it, which is what makes
    resending a POST whose answer was lost safe.

    2xx is delivered, and so is 409 (the key was already taken); redirects are not followed, so
    the token goes to this URL's host only.
    """

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 10.0,
                 retries: int = 5, backoff: float = 0.5) -> None:
        self.url = httpx.URL(url)
        self.name = str(self.url.copy_with(userinfo=b"", query=None, fragment=None))
        """The URL for messages: without user, password or query, which may hold secrets."""
        if self.url.scheme not in ("http", "https") or not self.url.host:
            raise ConfigError(f"[review] sink_url {self.name!r}: use an http:// or https:// URL")
        if self.url.userinfo:  # it would be sent instead of the token, and it is a secret
            raise ConfigError(f"[review] sink_url {self.name!r} holds a user or password: put "
                              "the token in the variable sink_token_env names")
        headers = {"Content-Type": "application/json"}
        self._token = token
        if token is not None:
            if not token or any(not 0x21 <= ord(c) < 0x7F for c in token):
                raise ConfigError(f"the token for the sink at {self.name} is empty or holds a "
                                  "character HTTP headers do not allow (a space or newline?)")
            headers["Authorization"] = f"Bearer {token}"
        self.retries = retries
        self.backoff = backoff
        self._client = httpx.Client(headers=headers, timeout=timeout, follow_redirects=False)

    def __repr__(self) -> str:
        return f"HttpSink({self.name!r})"

    def send(self, key: str, record: dict[str, Any]) -> None:
        body = json.dumps(_payload(key, record, self.name), ensure_ascii=False).encode()
        headers = {"Idempotency-Key": quote(key, safe=HEADER_SAFE)}
        attempt = 0
        while True:
            try:
                response = self._client.post(self.url, content=body, headers=headers)
            except httpx.TransportError as exc:  # its text is not shown: it may quote headers
                problem = type(exc).__name__
            else:
                status = response.status_code
                if 200 <= status < 300 or status == 409:
                    return
                if status < 500 and status not in (408, 429):
                    raise SinkError(f"{self.name} refused record {key!r} ({status}"
                                    f"{self._detail(response)})")
                problem = f"answer {status}"
            if attempt >= self.retries:
                raise SinkDown(f"{self.name} did not take record {key!r}: {problem}, after "
                               f"{attempt} retries")
            attempt += 1
            time.sleep(self.backoff * 2 ** (attempt - 1) * (0.75 + random.random() / 2))

    def _detail(self, response: httpx.Response) -> str:
        """The start of the answer (why it refused), with our token cut out if it echoes it."""
        if 300 <= response.status_code < 400:
            return (f": a redirect to {response.headers.get('location', '?')!r}, not followed: "
                    "set sink_url to the final URL")
        text = response.text
        if self._token:  # before cutting it short, which could cut the token in two
            text = text.replace(self._token, "***")
        text = " ".join(text.split())[:300]
        return f": {text}" if text else ""

    def close(self) -> None:
        self._client.close()


def make_sink(settings: ReviewSettings) -> JsonlSink | HttpSink:
    """The sink ``[review]`` names; the HTTP sink's token is read from ``sink_token_env``."""
    if settings.sink == "jsonl":
        return JsonlSink(settings.sink_path or settings.output_dir / "released.jsonl")
    if settings.sink != "http" or not settings.sink_url:
        raise ConfigError(f"[review] sink = {settings.sink!r}: use \"jsonl\", or \"http\" with "
                          "sink_url")
    token = None
    if settings.sink_token_env:
        # tokens pasted or read with $(cat file) often carry a newline: never part of a token
        token = os.environ.get(settings.sink_token_env, "").strip()
        if not token:
            raise ConfigError(f"[review] sink_token_env: the variable {settings.sink_token_env} "
                              "is not set (or empty): set it to the sink's token")
    return HttpSink(settings.sink_url, token)
