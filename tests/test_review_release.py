"""Release of reviewed records exactly once: the outbox against a real loopback HTTP sink that
deduplicates by ``Idempotency-Key`` (down, answering 503, losing its answer, refusing,
redirecting), and against a JSONL sink across a real SIGKILL of the delivering process."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from preannot.annotator import ConfigError
from preannot.engine.config import parse_config
from preannot.production import outbox as outbox_module
from preannot.production.outbox import Delivery, Outbox
from preannot.production.sinks import HttpSink, JsonlSink, SinkDown, SinkError, make_sink

TOKEN = f"tok-{uuid.uuid4().hex}"


class SinkServer:
    """A loopback HTTP sink: commits (key, body) of a POST once per ``Idempotency-Key``.

    Told to, it answers 503 to the next ``unavailable`` requests, commits the next ``drop``
    records and closes the connection without answering, answers ``refuse[key]`` for a key
    (echoing the Authorization header it got, as a careless server might), or redirects.
    """

    def __init__(self) -> None:
        self.committed: list[tuple[str, dict]] = []
        self.requests: list[tuple[str | None, str | None]] = []
        """(Idempotency-Key, Authorization) of every POST received."""
        self.unavailable = 0
        self.drop = 0
        self.refuse: dict[str, int] = {}
        self.redirect: str | None = None
        self.duplicate = 200
        """The answer to a key already committed."""
        self.port = 0
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Listen (again: on the same port as before)."""
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        self._server.sink = self  # type: ignore[attr-defined]
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.02,),
                         daemon=True).start()

    def stop(self) -> None:
        """Close the port: connections are refused."""
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def keys(self) -> list[str]:
        return [key for key, _ in self.committed]

    def answer(self, key: str, auth: str | None, body: dict) -> int | None:
        """The status to answer, or None for a lost answer."""
        with self.lock:
            self.requests.append((key, auth))
            if self.unavailable:
                self.unavailable -= 1
                return 503
            if self.redirect or key in self.refuse:
                return 302 if self.redirect else self.refuse[key]
            if key in self.keys():
                return self.duplicate
            self.committed.append((key, body))
            if self.drop:
                self.drop -= 1
                return None
            return 201


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        sink: SinkServer = self.server.sink  # type: ignore[attr-defined]
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status = sink.answer(self.headers.get("Idempotency-Key"),
                             self.headers.get("Authorization"), body)
        if status is None:  # committed, then the connection drops before any answer
            self.close_connection = True
            return
        text = f"refused: you sent Authorization: {self.headers.get('Authorization')}".encode()
        self.send_response(status)
        if status == 302:
            self.send_header("Location", sink.redirect)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    server = SinkServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def outbox(tmp_path, monkeypatch):
    monkeypatch.setattr(outbox_module, "PAGE", 2)  # a few records make several pages
    outbox = Outbox(tmp_path / ".preannot" / "ledger.sqlite")
    yield outbox
    outbox.close()


def record(key: str) -> dict:
    return {"text": f"text of {key}", "labels": ["ORG"]}


def fill(outbox: Outbox, keys: list[str], decision: str = "auto") -> None:
    for key in keys:
        assert outbox.add(key, record(key), decision)


def released(key: str) -> tuple[str, dict]:
    return key, {"key": key, **record(key)}


def sink(server: SinkServer, token: str | None = None, retries: int = 5) -> HttpSink:
    return HttpSink(server.url, token, retries=retries, backoff=0.01, timeout=5)


def test_a_sink_that_is_down_keeps_records_pending_and_the_next_delivery_sends_each_once(
        server, outbox):
    keys = ["t3", "t1", "t2"]  # delivered in the order added, not by key
    fill(outbox, keys)
    server.stop()
    down = f"{server.url} did not take record 't3': ConnectError, after 2 retries"
    assert outbox.deliver(sink(server, retries=2)) == Delivery(0, 3, [], down)
    assert outbox.counts() == {"pending": 3, "delivered": 0, "errors": 1,
                               "decisions": {"auto": {"pending": 3, "delivered": 0}}}
    assert (outbox.get("t3")["attempts"], outbox.get("t3")["error"]) == (1, down)
    assert [outbox.get(key)["attempts"] for key in ("t1", "t2")] == [0, 0]

    server.start()  # the same port
    progress: list[int] = []
    assert outbox.deliver(sink(server), progress=progress.append) == Delivery(3, 0, [])
    assert progress == [1, 1, 1]
    assert server.committed == [released(key) for key in keys]
    assert [key for key, _ in server.requests] == keys
    assert outbox.get("t3")["error"] is None and outbox.get("t3")["delivered"]
    assert outbox.deliver(sink(server)) == Delivery(0, 0, [])
    assert len(server.requests) == 3


def test_b_503s_are_retried_with_the_same_key_and_each_record_is_committed_once(server, outbox):
    fill(outbox, ["a", "b"])
    server.unavailable = 3
    assert outbox.deliver(sink(server)) == Delivery(2, 0, [])
    assert [key for key, _ in server.requests] == ["a", "a", "a", "a", "b"]
    assert server.committed == [released("a"), released("b")]
    assert [outbox.get(key)["attempts"] for key in ("a", "b")] == [1, 1]

    fill(outbox, ["c", "d"])
    server.unavailable = 10
    assert outbox.deliver(sink(server, retries=2)) == Delivery(
        0, 2, [], f"{server.url} did not take record 'c': answer 503, after 2 retries")
    assert [outbox.get(key)["attempts"] for key in ("c", "d")] == [1, 0]
    assert [key for key, _ in server.requests[5:]] == ["c", "c", "c"]


@pytest.mark.parametrize("duplicate", [200, 409])
def test_c_a_lost_answer_is_retried_with_the_same_key_and_committed_once(
        server, outbox, duplicate):
    fill(outbox, ["a", "b"])
    server.drop = 1  # "a" is committed, its answer never comes
    server.duplicate = duplicate
    assert outbox.deliver(sink(server)) == Delivery(2, 0, [])
    assert [key for key, _ in server.requests] == ["a", "a", "b"]
    assert server.committed == [released("a"), released("b")]
    assert outbox.get("a")["delivered"] and outbox.get("a")["attempts"] == 1


def test_a_refused_record_keeps_its_error_and_the_others_go_on(server, outbox):
    fill(outbox, ["a", "b"])
    fill(outbox, ["c"], "human")
    server.refuse = {"b": 422}
    message = f"{server.url} refused record 'b' (422: refused: you sent Authorization: None)"
    assert outbox.deliver(sink(server)) == Delivery(2, 1, [("b", message)])
    assert outbox.counts() == {"pending": 1, "delivered": 2, "errors": 1, "decisions": {
        "auto": {"pending": 1, "delivered": 1}, "human": {"pending": 0, "delivered": 1}}}
    assert (outbox.get("b")["attempts"], outbox.get("b")["error"]) == (1, message)

    server.refuse = {}  # fixed on the sink's side: the next delivery sends it
    assert outbox.deliver(sink(server)) == Delivery(1, 0, [])
    assert server.keys() == ["a", "c", "b"]
    assert (outbox.get("b")["attempts"], outbox.get("b")["error"]) == (2, None)


CRASHING = """
import sys, time
from pathlib import Path
from preannot.production.outbox import Outbox
from preannot.production.sinks import JsonlSink

class WaitsToBeKilled(JsonlSink):
    '''Once the record is written and fsynced, says so and waits: the SIGKILL lands before
    the outbox marks it delivered.'''
    def send(self, key, record):
        super().send(key, record)
        if key == sys.argv[3]:
            print("written", flush=True)
            time.sleep(600)

Outbox(Path(sys.argv[1])).deliver(WaitsToBeKilled(Path(sys.argv[2])))
"""
RESUMING = """
import sys
from pathlib import Path
from preannot.production.outbox import Outbox
from preannot.production.sinks import JsonlSink

print(Outbox(Path(sys.argv[1])).deliver(JsonlSink(Path(sys.argv[2]))))
"""


def test_d_a_process_killed_mid_delivery_and_a_second_one_release_each_record_once(
        tmp_path, outbox):
    keys = [f"task-{i}" for i in range(6)]
    fill(outbox, keys)
    path = tmp_path / "review" / "released.jsonl"
    args = [str(outbox.path), str(path)]
    crashing = subprocess.Popen([sys.executable, "-c", CRASHING, *args, "task-2"], text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert crashing.stdout.readline() == "written\n", crashing.communicate()[1]
    finally:
        crashing.send_signal(signal.SIGKILL)
        crashing.communicate()
    assert crashing.returncode == -signal.SIGKILL
    # killed between the append and the outbox's mark: task-2 is in the file and still pending
    assert [json.loads(line)["key"] for line in path.read_text().splitlines()] == keys[:3]
    assert [bool(outbox.get(key)["delivered"]) for key in keys] == [True, True] + [False] * 4
    # what a kill in the middle of write() leaves (injected: one write of a line can't be
    # interrupted at a chosen byte)
    with open(path, "ab") as file:
        file.write(b'{"key": "task-3", "text": "tex')

    resuming = subprocess.run([sys.executable, "-c", RESUMING, *args], capture_output=True,
                              text=True, timeout=120, check=False)
    assert resuming.returncode == 0, resuming.stderr
    assert resuming.stdout == "Delivery(delivered=4, pending=0, failed=[], down=None)\n"
    assert path.read_text(encoding="utf-8").splitlines() == [
        json.dumps({"key": key, **record(key)}, ensure_ascii=False) for key in keys]


def test_e_a_key_added_again_is_refused_and_never_released_twice(server, outbox):
    assert outbox.add("a", {"text": "first"}, "auto") is True
    assert outbox.add("a", {"text": "second"}, "human") is False
    assert (outbox.get("a")["record"], outbox.get("a")["decision"]) == ({"text": "first"}, "auto")
    assert outbox.deliver(sink(server)) == Delivery(1, 0, [])

    again = Outbox(outbox.path)  # a later run or sync
    assert again.add("a", {"text": "third"}, "human") is False
    assert again.deliver(sink(server)) == Delivery(0, 0, [])
    again.close()
    assert server.requests == [("a", None)]
    assert server.committed == [("a", {"key": "a", "text": "first"})]
    assert outbox.counts() == {"pending": 0, "delivered": 1, "errors": 0,
                               "decisions": {"auto": {"pending": 0, "delivered": 1}}}
    assert outbox.get("b") is None


def test_f_the_token_goes_to_the_sinks_host_only_and_into_no_message(server, caplog):
    caplog.set_level(logging.DEBUG)
    other = SinkServer()
    other.start()
    try:
        token_sink = sink(server, TOKEN, retries=1)
        token_sink.send("a", {})
        assert server.requests == [("a", f"Bearer {TOKEN}")]

        server.redirect = other.url
        with pytest.raises(SinkError) as redirected:
            token_sink.send("b", {})
        assert not isinstance(redirected.value, SinkDown)
        assert str(redirected.value) == (
            f"{server.url} refused record 'b' (302: a redirect to '{other.url}', not followed: "
            "set sink_url to the final URL)")
        assert other.requests == []
    finally:
        other.stop()

    server.redirect = None
    server.refuse = {"c": 401}
    with pytest.raises(SinkError) as refused:
        token_sink.send("c", {})
    assert str(refused.value) == (f"{server.url} refused record 'c' (401: refused: you sent "
                                  "Authorization: Bearer ***)")
    server.stop()
    with pytest.raises(SinkDown) as down:
        token_sink.send("d", {})
    assert str(down.value) == f"{server.url} did not take record 'd': ConnectError, after 1 retries"
    shown = [repr(token_sink), str(token_sink), caplog.text] + [
        "".join(traceback.format_exception(exc)) + repr(exc)
        for exc in (redirected.value, refused.value, down.value)]
    assert "send_request_headers" in caplog.text  # httpx's and httpcore's debug logs were on
    assert [TOKEN in text for text in shown] == [False] * len(shown)
    assert [key for key, _ in server.requests] == ["a", "b", "c"]


def test_make_sink_from_the_review_table(tmp_path, server, monkeypatch):
    jsonl = make_sink(parse_config({}, tmp_path, "preannot.toml").review)
    assert isinstance(jsonl, JsonlSink) and jsonl.path == tmp_path / "review" / "released.jsonl"

    table = {"sink": "http", "sink_url": f"http://127.0.0.1:{server.port}/in?q=1",
             "sink_token_env": "PREANNOT_TEST_SINK_TOKEN"}
    settings = parse_config({"review": table}, tmp_path, "preannot.toml").review
    unset = ("[review] sink_token_env: the variable PREANNOT_TEST_SINK_TOKEN is not set (or "
             "empty): set it to the sink's token")
    monkeypatch.delenv("PREANNOT_TEST_SINK_TOKEN", raising=False)
    with pytest.raises(ConfigError) as missing:
        make_sink(settings)
    assert str(missing.value) == unset
    monkeypatch.setenv("PREANNOT_TEST_SINK_TOKEN", " \n")
    with pytest.raises(ConfigError) as empty:
        make_sink(settings)
    assert str(empty.value) == unset

    monkeypatch.setenv("PREANNOT_TEST_SINK_TOKEN", f"{TOKEN}\n")  # as $(cat file) leaves it
    http = make_sink(settings)
    assert isinstance(http, HttpSink) and http.name == f"http://127.0.0.1:{server.port}/in"
    http.send("a", {})
    http.send("café 1%", {})  # a header holds ASCII only: the key is %-encoded
    table["sink_url"] = f"http://me:pw@127.0.0.1:{server.port}/in"
    with pytest.raises(ConfigError) as userinfo:
        make_sink(parse_config({"review": table}, tmp_path, "preannot.toml").review)
    assert str(userinfo.value) == (
        f"[review] sink_url 'http://127.0.0.1:{server.port}/in' holds a user or password: put "
        "the token in the variable sink_token_env names")
    del table["sink_token_env"]
    table["sink_url"] = server.url
    make_sink(parse_config({"review": table}, tmp_path, "preannot.toml").review).send("b", {})
    assert server.requests == [("a", f"Bearer {TOKEN}"), ("caf%C3%A9%201%25", f"Bearer {TOKEN}"),
                               ("b", None)]


def test_jsonl_sink_writes_utf8_lines_once_per_key_whoever_wrote_them(tmp_path):
    path = tmp_path / "out" / "released.jsonl"
    first, second = JsonlSink(path), JsonlSink(path)  # e.g. two processes
    first.send("a", {"text": "café"})
    first.send("a", {"text": "again"})
    second.send("a", {"text": "again"})
    second.send("b", {"key": "b"})
    first.send("b", {})
    assert path.read_bytes() == '{"key": "a", "text": "café"}\n{"key": "b"}\n'.encode()
    with pytest.raises(SinkError, match="record 'c' for .* has a different 'key' field"):
        first.send("c", {"key": "d"})

    with open(path, "ab") as file:
        file.write(b"not json\n")
    with pytest.raises(SinkDown, match=r"released.jsonl, line 3, is not a released record"):
        JsonlSink(path).send("e", {})
