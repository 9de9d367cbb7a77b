"""The Label Studio connection: settings, both token kinds, retries, and secrets kept secret."""

import threading
import time

import pytest

from helpers import run_cli
from preannot import ConfigError
from preannot.engine.config import LabelStudioSettings, parse_config
from preannot.labelstudio.client import Client, Connection, LabelStudioError, Unreachable
from preannot.labelstudio.server import free_port

SECRET = "s3cr3t-token-value-0123456789"


def test_settings_come_from_env_or_config_but_never_hold_the_token_itself(tmp_path):
    env = {"LABEL_STUDIO_URL": "http://ls:8080/", "LABEL_STUDIO_API_KEY": SECRET}
    def settings(**table):
        return parse_config({"labelstudio": table}, tmp_path, "preannot.toml").labelstudio

    conn = Connection.resolve(LabelStudioSettings(), env=env)
    assert (conn.url, conn.api_key) == ("http://ls:8080", SECRET)
    assert SECRET not in repr(conn)
    assert Connection.resolve(settings(url="http://x", api_key_env="MY_KEY"),
                              env={"MY_KEY": SECRET}).api_key == SECRET
    (tmp_path / "key").write_text(SECRET + "\n")
    assert Connection.resolve(settings(url="http://x", api_key_file="key"),
                              env={}).api_key == SECRET
    with pytest.raises(ConfigError, match="api_key is not allowed") as refused:
        settings(url="http://x", api_key=SECRET)
    assert SECRET not in str(refused.value)
    with pytest.raises(LabelStudioError, match="set MY_KEY"):
        Connection.resolve(settings(url="http://x", api_key_env="MY_KEY"), env={})
    with pytest.raises(LabelStudioError, match="ls up"):
        Connection.resolve(None, env={})


def test_legacy_and_personal_access_tokens_both_work(labelstudio):
    legacy = labelstudio.client()
    me = legacy.check()
    for old in legacy.sdk.tokens.list():  # one personal token per user: make room for ours
        legacy.sdk.tokens.blacklist(refresh=old.token)
    personal = legacy.sdk.tokens.create().token
    assert personal.count(".") == 2  # a JWT refresh token, exchanged for a Bearer access token
    client = Client(Connection(labelstudio.url, personal))
    assert client.check()["id"] == me["id"]
    assert personal not in repr(client)


@pytest.mark.parametrize("case", ["bad token", "server down"])
def test_cli_errors_are_clear_and_never_show_the_token(labelstudio, tmp_path, case):
    url = labelstudio.url if case == "bad token" else f"http://127.0.0.1:{free_port()}"
    (tmp_path / "pred.json").write_text("[]")
    result = run_cli(["ls", "push", "pred.json"], cwd=tmp_path,
                     env={"LABEL_STUDIO_URL": url, "LABEL_STUDIO_API_KEY": SECRET,
                          "PREANNOT_PLUGINS": ""})
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert SECRET not in output
    assert "Traceback" not in output
    expected = ("rejected the API key (401): check LABEL_STUDIO_API_KEY" if case == "bad token"
                else "is not reachable (checking the API key: ConnectError): start it or set "
                     "LABEL_STUDIO_URL")
    assert f"Label Studio at {url} {expected}" in output


def test_a_wrong_project_id_is_a_clear_error(labelstudio):
    with pytest.raises(LabelStudioError, match="project 987654: not found"):
        labelstudio.client().project(987654)


def test_requests_retry_with_backoff_across_a_server_restart(labelstudio):
    if labelstudio.server is None:
        pytest.skip("needs a server this session started (PREANNOT_TEST_LS_URL reuses another)")
    server = labelstudio.server
    server.stop()
    restarted = threading.Thread(target=lambda: (time.sleep(1), server.start()))
    restarted.start()
    try:
        patient = labelstudio.client(retries=8, backoff=0.5)
        assert patient.request("GET", "api/current-user/whoami")["email"] == server.username
    finally:
        restarted.join()
    server.stop()
    try:
        with pytest.raises(Unreachable, match="not reachable"):
            labelstudio.client(retries=2, backoff=0.1).check()
    finally:
        server.start()


def test_a_token_read_with_its_newline_works_and_a_broken_one_is_named(labelstudio):
    url = labelstudio.url
    client = Client(Connection.resolve(None, env={"LABEL_STUDIO_URL": url + "\n",
                                                  "LABEL_STUDIO_API_KEY": labelstudio.api_key + "\n"}))
    assert client.check()["id"] > 0  # $(cat token) leaves a newline: stripped
    broken = labelstudio.api_key[:8] + "\n" + labelstudio.api_key[8:]
    client = Client(Connection(url, broken), retries=0)
    with pytest.raises(LabelStudioError) as info:
        client.check()
    message = str(info.value)
    assert "holds a character HTTP does not allow" in message and "not reachable" not in message
    assert labelstudio.api_key[8:] not in message and labelstudio.api_key[:8] not in message


def test_a_post_whose_answer_is_lost_is_never_sent_again():
    """Fault injection (a real loopback HTTP server, as no real Label Studio can be made to
    lose an answer on purpose): every request gets a 502, and each one is counted."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[str] = []

    class LosesAnswers(BaseHTTPRequestHandler):
        def _fail(self) -> None:
            seen.append(self.command)
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(502)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = _fail

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), LosesAnswers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = Client(Connection(f"http://127.0.0.1:{server.server_port}", SECRET),
                        retries=3, backoff=0.01)
        with pytest.raises(Unreachable):
            client.request("POST", "api/projects/1/exports", body={"title": "x"})
        assert seen == ["POST"]
        with pytest.raises(Unreachable):
            client.request("GET", "api/projects/1")
        assert seen == ["POST"] + ["GET"] * 4  # a read is retried: three times after the first
    finally:
        server.shutdown()
