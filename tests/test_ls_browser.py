"""A real browser opens the labeling page of a pushed task and shows the pre-annotated region.

Headless Chromium (Debian's ``chromium``; ``CHROMIUM`` names the executable, else PATH) is driven
over the DevTools protocol through ``--remote-debugging-pipe`` (JSON messages separated by NUL
bytes on file descriptors 3 and 4), so no websocket client or browser-automation package is needed.
It logs in through Label Studio's own login form, opens the Data Manager's labeling view of each
task, and takes a screenshot. Label Studio paints a text span with its label's colour at 30%
opacity over the page; the test counts those pixels. A control task holds the same span predicted
with another label (another colour), so the colour on screen is shown to follow the prediction.
"""

from __future__ import annotations

import base64
import io
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops

from preannot.labelstudio.push import push_tasks
from preannot.lsjson import task_to_ls
from preannot.model import Prediction, Span, Task

COLOURS = {"PRODUCT": (255, 0, 0), "PERSON": (0, 0, 255)}
CONFIG = f"""<View>
  <Labels name="label" toName="text">
    <Label value="PRODUCT" background="#{'%02x%02x%02x' % COLOURS['PRODUCT']}"/>
    <Label value="PERSON" background="#{'%02x%02x%02x' % COLOURS['PERSON']}"/>
  </Labels>
  <Text name="text" value="$text"/>
</View>"""
TEXT = "Please ship two Widgetmaster 3000 units to the Lyon office."
SPAN = "Widgetmaster 3000"
MODEL_VERSION = "browser-check-1"
HIGHLIGHT_OPACITY = 0.3
"""Measured: Label Studio 1.23 fills a span with rgba(label colour, 0.3)."""
TOLERANCE = 16
"""Per channel, for anti-aliasing and colour management."""
VIEWPORT = (1280, 800)

# The child gets the pipe ends as descriptors 3 (commands in) and 4 (replies out), where
# --remote-debugging-pipe expects them; a tiny Python step places them (no preexec_fn in pytest).
_TRAMPOLINE = ("import os, sys; r, w = map(int, sys.argv[1:3]); os.dup2(r, 3); os.dup2(w, 4); "
               "os.close(r); os.close(w); os.execv(sys.argv[3], sys.argv[3:])")


def chromium_binary() -> str | None:
    """``CHROMIUM`` as given (a wrong one fails the test), else Chromium on PATH, else None."""
    return (os.environ.get("CHROMIUM") or shutil.which("chromium")
            or shutil.which("chromium-browser"))


# Decided before any fixture, so that a machine without Chromium does not start Label Studio for it.
pytestmark = [pytest.mark.labelstudio, pytest.mark.slow, pytest.mark.skipif(
    chromium_binary() is None,
    reason="needs Chromium: apt-get install chromium, or set CHROMIUM to its binary")]


class Chromium:
    """Headless Chromium and a minimal synchronous DevTools-protocol client over its pipe."""

    def __init__(self, binary: str, workdir: Path) -> None:
        profile = workdir / "profile"
        profile.mkdir(parents=True)
        self.log = workdir / "chromium.log"
        child_in, self._out = os.pipe()
        self._in, child_out = os.pipe()
        args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--hide-scrollbars", "--mute-audio", "--force-color-profile=srgb",
                f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _TRAMPOLINE, str(child_in), str(child_out), *args],
                pass_fds=(child_in, child_out), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        os.close(child_in)
        os.close(child_out)
        self._buffer = b""
        self._next_id = 0
        self.session: str | None = None

    def _message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer")
            if select.select([self._in], [], [], left)[0]:
                chunk = os.read(self._in, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium exited; its log:\n{self.log_tail()}")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict[str, Any] | None = None, *,
             browser: bool = False, timeout: float = 30) -> dict[str, Any]:
        """Send one command (to the page's session unless ``browser``) and return its result;
        events arriving meanwhile are dropped."""
        self._next_id += 1
        command: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if self.session and not browser:
            command["sessionId"] = self.session
        os.write(self._out, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while (reply := self._message(deadline)).get("id") != self._next_id:
            pass
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def open_page(self, width: int, height: int) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"}, browser=True)
        attached = self.send("Target.attachToTarget",
                             {"targetId": target["targetId"], "flatten": True}, browser=True)
        self.session = attached["sessionId"]
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                         "deviceScaleFactor": 1, "mobile": False})

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", {"url": url})

    def evaluate(self, expression: str) -> Any:
        reply = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                               "awaitPromise": True})
        if "exceptionDetails" in reply:
            raise RuntimeError(f"in the page: {reply['exceptionDetails'].get('text')}")
        return reply["result"].get("value")

    def wait_for(self, expression: str, what: str, timeout: float = 30) -> Any:
        """Poll a page expression until it is truthy (a navigation in flight counts as not yet)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if value := self.evaluate(expression):
                    return value
            except RuntimeError:  # the context went away mid-navigation
                pass
            if time.monotonic() > deadline:
                url = self.evaluate("location.href")
                raise AssertionError(
                    f"timed out after {timeout:.0f} s waiting for {what} (at {url})")
            time.sleep(0.25)

    def screenshot(self) -> Image.Image:
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def close(self) -> None:
        try:
            self.send("Browser.close", browser=True, timeout=5)
            self.process.wait(10)
        except Exception:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        finally:
            os.close(self._in)
            os.close(self._out)


@pytest.fixture
def browser(tmp_path):
    binary = shutil.which(chromium_binary() or "")
    if binary is None:
        pytest.fail(f"CHROMIUM={os.environ.get('CHROMIUM')} is not an executable")
    chromium = Chromium(binary, tmp_path / "chromium")
    try:
        chromium.open_page(*VIEWPORT)
        yield chromium
    finally:
        chromium.close()


def highlight_colour(label: str, page: tuple[int, int, int]) -> tuple[int, ...]:
    return tuple(round((1 - HIGHLIGHT_OPACITY) * p + HIGHLIGHT_OPACITY * c)
                 for p, c in zip(page, COLOURS[label]))


def count_colour(image: Image.Image, colour: tuple[int, ...], box=None) -> int:
    """Pixels within TOLERANCE of ``colour`` per channel (in ``box`` if given)."""
    if box:
        image = image.crop(box)
    masks = [band.point(lambda v, c=c: 255 if abs(v - c) <= TOLERANCE else 0)
             for band, c in zip(image.split(), colour)]
    both = ImageChops.multiply(ImageChops.multiply(masks[0], masks[1]), masks[2])
    return both.histogram()[255]


def page_colour(image: Image.Image) -> tuple[int, int, int]:
    """The commonest colour: the editor's background."""
    return max(image.getcolors(image.width * image.height))[1]


def log_in(browser: Chromium, url: str, username: str, password: str) -> None:
    browser.navigate(f"{url}/user/login/")
    browser.wait_for("document.readyState === 'complete' && "
                     "!!document.querySelector('#login-form')", "the login form")
    browser.evaluate(f"""(() => {{
        const form = document.querySelector('#login-form');
        form.querySelector('[name=email]').value = {json.dumps(username)};
        form.querySelector('[name=password]').value = {json.dumps(password)};
        form.submit();
        return true;
    }})()""")
    browser.wait_for("document.readyState === 'complete' && "
                     "!location.pathname.startsWith('/user/')", "the login to go through")


# Text of the span highlights in the editor, with their boxes in CSS pixels (= screenshot pixels).
HIGHLIGHTS = """Array.from(document.querySelectorAll('.htx-highlight')).map(e => {
    const r = e.getBoundingClientRect();
    return {text: e.textContent, box: [r.left, r.top, r.right, r.bottom]};
})"""


def labeling_page(browser: Chromium, url: str, project: int, task: int, label: str,
                  out: Path) -> tuple[Image.Image, list[dict[str, Any]]]:
    """Open the task in the Data Manager's labeling view; wait until its span is painted in the
    label's colour (bounded); return the screenshot (also saved to ``out``) and the highlights."""
    browser.navigate(f"{url}/projects/{project}/data?task={task}")
    highlights = browser.wait_for(
        f"document.readyState === 'complete' && document.fonts.status === 'loaded' && "
        f"(h => h.length && h.every(x => x.box[2] > x.box[0]) && h)({HIGHLIGHTS})",
        f"the predicted span of task {task} in the editor", timeout=40)
    deadline = time.monotonic() + 10
    while True:  # the highlight node exists before it is painted: wait for its colour
        time.sleep(0.3)
        image = browser.screenshot()
        colour = highlight_colour(label, page_colour(image))
        box = [round(v) for v in highlights[0]["box"]]
        area = (box[2] - box[0]) * (box[3] - box[1])
        if count_colour(image, colour, box) >= 0.4 * area or time.monotonic() > deadline:
            break
        highlights = browser.evaluate(HIGHLIGHTS)
    image.save(out)
    return image, highlights


def test_labeling_page_shows_the_pushed_prediction(browser, labelstudio, tmp_path):
    if labelstudio.server is None:
        pytest.skip("needs a server this session started: its login is known "
                    "(PREANNOT_TEST_LS_URL reuses another)")
    # Two tasks, same text: the span predicted PRODUCT (red), and as a control PERSON (blue).
    labels = {"product": "PRODUCT", "control": "PERSON"}
    client = labelstudio.client()
    project = labelstudio.project(CONFIG, title="browser test")
    start = TEXT.index(SPAN)
    tasks = [task_to_ls(Task(key, {"text": TEXT}), [Prediction(
                 key, "browser", MODEL_VERSION,
                 [Span(label=label, start=start, end=start + len(SPAN), text=SPAN, score=0.8)])])
             for key, label in labels.items()]
    summary = push_tasks(client, project, [(f"task {t['meta']['preannot_id']}", t) for t in tasks])
    assert (summary.created, summary.failures) == (2, [])
    ids = {t["meta"]["preannot_id"]: t["id"] for t in client.tasks(project)}

    server = labelstudio.server
    log_in(browser, server.url, server.username, server.password)
    shots = {}
    for key, label in labels.items():
        image, highlights = labeling_page(browser, server.url, project, ids[key], label,
                                          tmp_path / f"{key}.png")
        assert [h["text"] for h in highlights] == [SPAN], key
        assert MODEL_VERSION in browser.evaluate("document.body.innerText"), \
            f"the prediction's tab is missing from task {key}'s page"
        shots[key] = image, [round(v) for v in highlights[0]["box"]]

    for key, label in labels.items():
        (image, box), (other_image, _) = shots[key], shots[next(k for k in labels if k != key)]
        other = next(x for x in COLOURS if x != label)
        tint, other_tint = (highlight_colour(x, page_colour(image)) for x in (label, other))
        area = (box[2] - box[0]) * (box[3] - box[1])
        own = count_colour(image, tint, box)
        where = f"task {key!r} (screenshot {tmp_path / f'{key}.png'})"
        # The span's box is mostly the label's tint (the rest is glyphs), none of the other's.
        assert own >= 0.4 * area, f"{label} span not painted in {where}: {own} of {area} px"
        assert count_colour(image, other_tint, box) == 0, f"{other} colour on the span in {where}"
        # That tint is nowhere else on this page, nor on the other task's: it comes from the
        # predicted region alone (the label buttons use a paler tint of the same colour).
        assert count_colour(image, tint) - own <= 0.05 * area, \
            f"{label} tint off the span in {where}"
        assert count_colour(other_image, tint) <= 0.05 * area, \
            f"{label} tint on the other task's page, beside {where}"


IMAGE_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image">
    <Label value="car" background="#ff0000"/>
  </RectangleLabels>
</View>"""
BOX_COLOUR = (255, 0, 0)

# The image's natural size once loaded, and where the editor draws it.
IMAGE_BOX = """(() => {
    // loaded images (the editor shows a blob: copy of the served file), the largest: the
    // editor's, not the Data Manager's thumbnail
    const shown = Array.from(document.querySelectorAll('img')).filter(
        i => i.complete && i.naturalWidth > 0);
    const img = shown.sort((a, b) => b.getBoundingClientRect().width
                                     - a.getBoundingClientRect().width)[0];
    if (!img || img.getBoundingClientRect().width < 200) return null;
    // where the editor draws the image: its Konva stage's image node, in screen pixels (the
    // stage is fitted, scaled and moved after the image loads)
    const stage = (window.Konva ? window.Konva.stages : []).find(st => st.find('Image').length);
    if (!stage) return null;
    const c = stage.container().getBoundingClientRect();
    const r = stage.find('Image')[0].getClientRect();
    return {natural: [img.naturalWidth, img.naturalHeight],
            box: [c.left + r.x, c.top + r.y, c.left + r.x + r.width, c.top + r.y + r.height]};
})()"""


def test_an_image_from_a_folder_is_shown_with_its_predicted_box(browser, labelstudio, tmp_path):
    """A folder's image, pushed as preannot pushes to the server it started, is served by Label
    Studio (a Local Files storage covers its folder) and drawn with the predicted box."""
    if labelstudio.server is None:
        pytest.skip("needs a server this session started: its login and file serving are known")
    from preannot.labelstudio.push import LOCAL_FILES
    from preannot.model import Box

    folder = labelstudio.files_root / f"photos-{tmp_path.name}"  # what the server serves
    folder.mkdir()
    Image.new("RGB", (320, 240), (235, 235, 235)).save(folder / "car.png")  # plain grey
    box = Box(label="car", x=100, y=60, width=120, height=120, image_width=320, image_height=240,
              score=0.9, from_name="box", to_name="image")
    task = task_to_ls(Task("car", {"image": str(folder / "car.png")}),
                      [Prediction("car", "det", MODEL_VERSION, [box])])
    client = labelstudio.client(local_files_root=str(labelstudio.files_root))
    project = labelstudio.project(IMAGE_CONFIG, title="image browser test")
    summary = push_tasks(client, project, [("car.png", task)])
    assert (summary.created, summary.failures, summary.notices) == (1, [], [])
    [pushed] = client.export(project)
    assert pushed["data"]["image"] == LOCAL_FILES + f"{folder.name}/car.png"
    assert pushed["meta"]["preannot_image"] == str(folder / "car.png")
    storages = client.sdk.import_storage.local.list(project=project)
    assert [s.path for s in storages] == [str(folder)]
    served = client.sdk._client_wrapper.httpx_client.request(pushed["data"]["image"].lstrip("/"),
                                                             method="GET")
    assert served.status_code == 200 and served.content == (folder / "car.png").read_bytes()

    server = labelstudio.server
    log_in(browser, server.url, server.username, server.password)
    browser.navigate(f"{server.url}/projects/{project}/data?task={pushed['id']}")
    shown = browser.wait_for(f"document.readyState === 'complete' && {IMAGE_BOX}",
                             "the image in the editor", timeout=60)
    assert shown["natural"] == [320, 240]
    deadline = time.monotonic() + 20
    while True:  # the canvas paints, and is fitted to the editor, after the image loads: wait
        time.sleep(0.5)  # for the box's colour where the editor's stage is at that moment
        image = browser.screenshot()
        shown = browser.evaluate(IMAGE_BOX) or shown
        inner, outer, area = box_on_screen(shown["box"])
        inside = count_reddish(image, inner)
        if inside >= 0.9 * area or time.monotonic() > deadline:
            break
    image.save(tmp_path / "image-task.png")
    where = f"(screenshot {tmp_path / 'image-task.png'})"
    assert inside >= 0.9 * area, f"the predicted box is not drawn: {inside} of {area} px {where}"
    on_image = count_reddish(image, [round(v) for v in shown["box"]])
    # and none elsewhere on the image (a few anti-aliased pixels of the stroke at most)
    assert on_image - count_reddish(image, outer) <= 0.01 * area, f"red off the box {where}"


def box_on_screen(stage) -> tuple[list[int], list[int], int]:
    """Where the predicted box (100..220 x 60..180 of the 320x240 image) must be drawn when the
    image is drawn at ``stage`` (screen pixels): inside its stroke, outside it, and the inner
    area.
    Label Studio fills a box with a tint of its label's colour (red over the grey image) and
    strokes it in that colour."""
    left, top, right, bottom = stage
    sx, sy = (right - left) / 320, (bottom - top) / 240
    inner = [round(left + 100 * sx) + 3, round(top + 60 * sy) + 3,
             round(left + 220 * sx) - 3, round(top + 180 * sy) - 3]
    outer = [v + d for v, d in zip(inner, (-7, -7, 7, 7))]
    return inner, outer, (inner[2] - inner[0]) * (inner[3] - inner[1])


def count_reddish(image: Image.Image, box) -> int:
    """Pixels in ``box`` where red clearly dominates (a red tint over grey)."""
    r, g, b = (band.point(lambda v: v) for band in image.crop(box).convert("RGB").split())
    redder = ImageChops.subtract(r, ImageChops.lighter(g, b))  # r - max(g, b), floored at 0
    return sum(redder.point(lambda v: 255 if v > 30 else 0).histogram()[255:])


def test_a_task_without_predictions_shows_what_preannot_serve_predicts(browser, labelstudio,
                                                                        tmp_path):
    """A project connected to a running `preannot serve` (`ls connect`): a task imported with
    no prediction is opened, Label Studio asks the backend, and the editor paints its span."""
    if labelstudio.server is None:
        pytest.skip("needs a server this session started: its login is known "
                    "(PREANNOT_TEST_LS_URL reuses another)")
    from helpers import run_cli, start_server, wait_up
    from preannot.labelstudio.server import free_port

    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "products.csv").write_text(f"term,label\n{SPAN},PRODUCT\n")
    project = labelstudio.project(CONFIG, title="browser serve")
    port = free_port()
    config = tmp_path / "preannot.toml"
    config.write_text(f'[[annotators]]\nname = "products"\ntype = "rules"\nrules = "rules"\n'
                      f'[labelstudio]\nproject = {project}\n'
                      f'[serve]\nport = {port}\nlearn = false\n')
    process = start_server(config, labelstudio.env())
    try:
        wait_up(f"http://127.0.0.1:{port}", process, tmp_path / "serve.log")
        connected = run_cli(["ls", "connect", "-c", str(config)], env=labelstudio.env())
        assert connected.returncode == 0, connected.stderr
        client = labelstudio.client()
        [task] = client.sdk.projects.import_tasks(project, request=[{"text": TEXT}],
                                                  return_task_ids=True).task_ids
        [backend] = client.ml_backends(project)
        server = labelstudio.server
        log_in(browser, server.url, server.username, server.password)
        image, highlights = labeling_page(browser, server.url, project, task, "PRODUCT",
                                          tmp_path / "served.png")
        assert [h["text"] for h in highlights] == [SPAN]
        page = browser.evaluate("document.body.innerText")  # the tab shortens the version
        assert backend["title"][:8] in page and backend["title"][-6:] in page and "80.00%" in page, \
            "the served version's prediction tab (with its score) is missing"
        box = [round(v) for v in highlights[0]["box"]]
        area = (box[2] - box[0]) * (box[3] - box[1])
        tint = highlight_colour("PRODUCT", page_colour(image))
        assert count_colour(image, tint, box) >= 0.4 * area, \
            f"the served span is not painted (screenshot {tmp_path / 'served.png'})"
        # Label Studio asks for the open task twice at once (its list and its editor each see
        # it without predictions), so it may keep two copies: each is the served version's
        [stored] = [t["predictions"] for t in client.annotated_tasks(project)]
        assert {p["model_version"] for p in stored} == {backend["title"]} and stored
    finally:
        process.terminate()
        process.wait(30)
