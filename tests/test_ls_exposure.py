"""What the local Label Studio serves from this machine's disk, tried as a hostile user would.

`preannot ls up` starts Label Studio with a document root for its Local Files serving. Any user
of the organisation (an annotator the admin invited, not only the admin) can add a Local Files
storage on any folder under that root and read every file there, following symbolic links. So
the root must be the least that shows the images: never `/`, a home folder or a folder holding
`.preannot/` (the Label Studio login, its database), and no link under it may lead out of it.
"""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import httpx
import pytest
from PIL import Image

from helpers import ROOT, pip_install, run_cli, write_plugin
from preannot.annotator import ConfigError
from preannot.engine.config import load_config
from preannot.labelstudio.local_files import escaping_links, root_above
from preannot.labelstudio.server import free_port
from preannot.labelstudio.sync import local_files_root

WHOLE_IMAGE_PLUGIN = """
from preannot import Annotator, Box, TaskFailed, hookimpl
from preannot.images import open_image


class WholeImage(Annotator):
    type = "whole-image"
    reads = ("image",)
    emits = ("rectanglelabels",)

    @property
    def labels(self):
        return ["thing"]

    def annotate(self, tasks, upstream):
        found = []
        for task in tasks:
            image = open_image(task, self.field, self.context)
            found.append(image if isinstance(image, TaskFailed) else [Box(
                label="thing", x=0, y=0, width=image.width, height=image.height,
                image_width=image.width, image_height=image.height, score=0.9,
                from_name="box", to_name="image")])
        return found


@hookimpl
def register_annotators(register):
    register(WholeImage)
"""


def write_config(base: Path, inputs: list[str], extra: str = "") -> Path:
    config = base / "preannot.toml"
    config.write_text(f"[input]\npaths = {json.dumps(inputs)}\n[output]\npath = \"out/p.json\"\n"
                      "[[annotators]]\nname = \"boxes\"\ntype = \"whole-image\"\n"
                      f"from_name = \"box\"\n{extra}")
    return config


def images(folder: Path, *names: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.new("RGB", (40 + i, 30), (200, 10 * i, 0)).save(folder / name)
    return [folder / n for n in names]


# -- choosing the root (no server) ---------------------------------------------------------

def test_the_root_is_the_folder_just_above_the_image_folders(tmp_path):
    images(tmp_path / "data" / "images", "a.png", "b.jpg")
    images(tmp_path / "data" / "images" / "more", "c.png")
    (tmp_path / "data" / "emails.jsonl").write_text('{"text": "no image here"}\n')
    config = load_config(write_config(tmp_path, ["data/images", "data/emails.jsonl"]))
    assert local_files_root(config) == (tmp_path / "data").resolve()


def test_no_image_input_means_no_file_served(tmp_path):
    (tmp_path / "emails.jsonl").write_text('{"text": "a"}\n{"text": "b"}\n')
    assert local_files_root(load_config(write_config(tmp_path, ["emails.jsonl"]))) is None


def test_image_paths_named_in_a_task_file_count(tmp_path):
    shots = images(tmp_path / "shots" / "day1", "a.png") + images(tmp_path / "shots" / "day2",
                                                                   "b.png")
    (tmp_path / "tasks.jsonl").write_text("".join(json.dumps({"image": str(p)}) + "\n"
                                                  for p in shots))
    config = load_config(write_config(tmp_path, ["tasks.jsonl"]))
    assert local_files_root(config) == (tmp_path / "shots").resolve()


def test_images_beside_the_config_are_refused_with_what_to_set(tmp_path):
    """`images/` beside preannot.toml: the folder above it holds .preannot/ (the login)."""
    images(tmp_path / "images", "a.png")
    with pytest.raises(ConfigError) as refused:
        local_files_root(load_config(write_config(tmp_path, ["images"])))
    said = str(refused.value)
    assert "\n" not in said
    assert f"Label Studio would serve {tmp_path.resolve()} " in said
    assert "preannot's state (.preannot: the Label Studio login" in said
    assert "[labelstudio] local_files_root" in said


@pytest.mark.parametrize("root, holds", [("/", "your home folder"),
                                         ("~", "your home folder"),
                                         (".", "preannot's state"),
                                         ("secrets", "the Label Studio token file")])
def test_a_named_root_that_exposes_too_much_is_refused(tmp_path, root, holds):
    images(tmp_path / "data" / "images", "a.png")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "token").write_text("x")
    config = load_config(write_config(
        tmp_path, ["data/images"],
        f'[labelstudio]\nlocal_files_root = "{root}"\napi_key_file = "secrets/token"\n'))
    with pytest.raises(ConfigError, match=re.escape(holds)):
        local_files_root(config)


def test_a_named_root_that_holds_only_images_is_used(tmp_path):
    images(tmp_path / "data" / "images", "a.png")
    config = load_config(write_config(tmp_path, ["data/images"],
                                      '[labelstudio]\nlocal_files_root = "data"\n'))
    assert local_files_root(config) == (tmp_path / "data").resolve()


def test_a_link_out_of_the_root_is_refused_and_named(tmp_path):
    folder = tmp_path / "data" / "images"
    images(folder, "a.png")
    (folder / "inside.png").symlink_to(folder / "a.png")  # stays inside: fine
    (folder / "sub").mkdir()
    (folder / "sub" / "passwd.png").symlink_to("/etc/passwd")
    (folder / "up").symlink_to(tmp_path)  # a folder link out of it
    assert sorted(escaping_links(folder, tmp_path / "data")) == [
        (folder / "sub" / "passwd.png", Path("/etc/passwd")), (folder / "up", tmp_path)]
    with pytest.raises(ConfigError) as refused:
        local_files_root(load_config(write_config(tmp_path, ["data/images"])))
    assert str(refused.value).startswith(f"{folder / 'sub' / 'passwd.png'} links to /etc/passwd, "
                                         f"outside {(tmp_path / 'data').resolve()} (and 1 more)")


def test_root_above_one_folder_is_its_parent():
    assert root_above([Path("/srv/a/images")]) == Path("/srv/a")
    assert root_above([Path("/srv/a/x"), Path("/srv/a/y/z")]) == Path("/srv/a")
    assert root_above([]) is None


# -- the server `ls up` starts, against an invited annotator --------------------------------

def invited_user(url: str, admin_token: str) -> str:
    """A user who joined through the organisation's invite link (not an admin): its token."""
    invite = httpx.get(f"{url}/api/invite", headers={"Authorization": f"Token {admin_token}"})
    signup = invite.json()["invite_url"]
    with httpx.Client(base_url=url) as browser:
        browser.get(signup)
        joined = browser.post(signup, data={
            "email": "mallory@example.com", "password": "not-an-admin-1234",
            "csrfmiddlewaretoken": browser.cookies["csrftoken"]},
            headers={"Referer": url + signup})
        assert joined.status_code == 302, joined.text[:300]
        user = browser.get("/api/current-user/whoami").json()
        assert user["email"] == "mallory@example.com"
        return browser.get("/api/current-user/token").json()["token"]


@pytest.fixture(scope="module")
def image_plugin(tmp_path_factory):
    base = tmp_path_factory.mktemp("plugin")
    return pip_install(write_plugin(base / "src", "preannot-whole-image", WHOLE_IMAGE_PLUGIN),
                       base / "site")


@pytest.mark.labelstudio
@pytest.mark.slow
def test_an_invited_user_reads_the_images_and_nothing_else(tmp_path, image_plugin):
    folder = tmp_path / "data" / "images"
    shown = images(folder, "a.png", "b.png")
    (tmp_path / "data" / "notes").mkdir()  # the user's own beside the images: under the root
    config = write_config(tmp_path, ["data/images"],
                          '[labelstudio]\ntitle = "exposure test"\n')
    env = {k: v for k, v in os.environ.items()
           if k not in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY")}
    up = run_cli(["ls", "up", "-c", str(config), "--detach", "--port", str(free_port()),
                  "--no-progress"], pythonpath=[image_plugin], env=env, cwd=ROOT)
    assert up.returncode == 0, up.stderr
    said = " ".join(up.stderr.split())
    pid = int(re.search(r"kill (\d+)", said).group(1))
    try:
        assert f"serves the files under {(tmp_path / 'data').resolve()} to its users" in said
        assert "2 tasks created with their predictions" in said
        data_dir = tmp_path / ".preannot" / "labelstudio"
        creds = json.loads((data_dir / "preannot-credentials.json").read_text())
        assert creds["local_files_root"] == str((tmp_path / "data").resolve())
        url = creds["url"]
        admin = httpx.Client(base_url=url, headers={"Authorization": f"Token {creds['api_key']}"})
        [project] = [p["id"] for p in admin.get("/api/projects").json()["results"]]
        tasks = admin.get("/api/tasks", params={"project": project}).json()["tasks"]
        paths = sorted(t["data"]["image"] for t in tasks)
        assert paths == ["/data/local-files/?d=images/a.png", "/data/local-files/?d=images/b.png"]

        hostile = httpx.Client(base_url=url, headers={
            "Authorization": f"Token {invited_user(url, creds['api_key'])}"})
        assert hostile.get("/api/current-user/whoami").json()["email"] == "mallory@example.com"
        # the images: what the editor shows every annotator
        for path, image in zip(paths, shown):
            served = hostile.get(path)
            assert (served.status_code, served.content) == (200, image.read_bytes())
        # a storage anywhere but below the root is refused
        secrets = {"/etc": "/etc", "state": str(tmp_path / ".preannot"),
                   "labelstudio": str(data_dir), "config folder": str(tmp_path),
                   "the root itself": str((tmp_path / "data").resolve()),
                   "a sibling of the root": str(tmp_path / "out"), "home": str(Path.home())}
        (tmp_path / "out").mkdir(exist_ok=True)
        for what, path in secrets.items():
            made = hostile.post("/api/storages/localfiles", json={"project": project,
                                                                  "path": path})
            assert made.status_code == 400, f"{what}: {made.status_code} {made.text[:200]}"
        # below it the storage is made, but serves what the root holds and nothing else
        made = hostile.post("/api/storages/localfiles",
                            json={"project": project, "path": str(tmp_path / "data" / "notes")})
        assert made.status_code == 201, made.text[:300]
        targets = {"etc/passwd": b"root:", "../.preannot/labelstudio/preannot-credentials.json":
                   creds["api_key"].encode(),
                   "notes/../../.preannot/labelstudio/preannot-credentials.json":
                   creds["api_key"].encode(),
                   "%2e%2e/.preannot/labelstudio/label_studio.sqlite3": b"SQLite format",
                   "images/../../.preannot/labelstudio/label_studio.sqlite3": b"SQLite format"}
        for d, marker in targets.items():
            reply = hostile.get("/data/local-files/", params={"d": d})
            assert reply.status_code != 200 and marker not in reply.content, d
    finally:
        os.killpg(pid, signal.SIGTERM)


@pytest.mark.labelstudio
@pytest.mark.slow
def test_a_folder_holding_a_link_out_of_the_root_gets_no_storage(labelstudio, tmp_path):
    """Push to a server that serves a root: the folder with the link is refused, named, and its
    tasks fail; the clean folder's tasks go in."""
    from preannot.labelstudio.push import push_tasks
    from preannot.lsjson import task_to_ls
    from preannot.model import Box, Prediction, Task

    root = labelstudio.files_root
    clean, linked = root / f"clean-{tmp_path.name}", root / f"linked-{tmp_path.name}"
    [good] = images(clean, "good.png")
    [bad] = images(linked, "bad.png")
    (linked / "passwd.png").symlink_to("/etc/passwd")
    outside = images(tmp_path / "elsewhere", "far.png")[0]

    def task(path: Path) -> dict:
        box = Box(label="car", x=0, y=0, width=10, height=10, image_width=40, image_height=30,
                  score=0.9, from_name="box", to_name="image")
        return task_to_ls(Task(path.name, {"image": str(path)}), [Prediction(
            path.name, "det", "det-1", [box])])

    client = labelstudio.client(local_files_root=str(root))
    project = labelstudio.project('<View><Image name="image" value="$image"/><RectangleLabels '
                                  'name="box" toName="image"><Label value="car"/>'
                                  '</RectangleLabels></View>')
    summary = push_tasks(client, project, [(p.name, task(p)) for p in (good, bad, outside)])
    assert summary.created == 2  # the clean one, and the one outside (as it is)
    assert summary.failures == [("bad.png", f"{linked / 'passwd.png'} links to /etc/passwd, "
                                 f"outside {root}: Label Studio would serve it to all its users; "
                                 "remove the link or copy the file into the folder")]
    assert summary.notices == [
        f"1 tasks hold images outside {root}, the folder Label Studio at {client.url} serves "
        "files from: its editor will not show them. Add their folder to [input] paths and "
        "restart `preannot ls up`, or set [labelstudio] local_files_root to a folder above "
        "them that holds only images"]
    storages = client.sdk.import_storage.local.list(project=project)
    assert [s.path for s in storages] == [str(clean)]
