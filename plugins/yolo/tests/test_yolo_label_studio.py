"""Images already in Label Studio (``/data/upload/...``) are fetched with the user's token through
the SDK's own downloader, and give the same boxes as the local file. Talks to a real server.
"""

from __future__ import annotations

import logging
import random

import pytest
import requests

from preannot import Context, Task, TaskFailed
from preannot_yolo.annotator import YoloAnnotator

pytestmark = pytest.mark.labelstudio


def test_uploaded_image_is_fetched_with_the_token_and_gives_the_same_boxes(
        labelstudio, yolo_weights, shapes, tmp_path, monkeypatch, capsys, caplog):
    url, token = labelstudio.url, labelstudio.api_key
    headers = {"Authorization": f"Token {token}"}
    project = requests.post(f"{url}/api/projects", headers=headers, timeout=30, json={
        "title": "vision fetch", "label_config":
            '<View><Image name="image" value="$image"/><RectangleLabels name="label" '
            'toName="image"><Label value="circle"/></RectangleLabels></View>'}).json()
    local = tmp_path / "upload-me.png"
    shapes.draw_image(random.Random(8), 240, 180)[0].save(local)
    with local.open("rb") as f:
        imported = requests.post(f"{url}/api/projects/{project['id']}/import", headers=headers,
                                 files={"file": ("upload-me.png", f, "image/png")}, timeout=60)
    imported.raise_for_status()
    [task] = requests.get(f"{url}/api/tasks", headers=headers, timeout=30,
                          params={"project": project["id"]}).json()["tasks"]
    remote = task["data"]["image"]
    assert remote.startswith("/data/upload/")

    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("LABEL_STUDIO_URL", url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", token)
    context = Context(base_dir=tmp_path, cache_dir=tmp_path / "cache")
    yolo = YoloAnnotator("yolo", {"model": str(yolo_weights)}, context)
    from_ls, from_disk, missing = yolo.annotate(
        [Task("ls", {"image": remote}), Task("disk", {"image": str(local)}),
         Task("gone", {"image": remote.replace("upload-me", "not-there")})], {})
    assert from_disk, "the detector should find shapes in the local copy"
    assert [(r.label, r.xyxy) for r in from_ls] == [(r.label, r.xyxy) for r in from_disk]
    assert isinstance(missing, TaskFailed) and "not-there" in str(missing)
    assert token not in str(missing)
    assert token not in capsys.readouterr().err and token not in caplog.text

    monkeypatch.delenv("LABEL_STUDIO_URL")
    [unconfigured] = yolo.annotate([Task("x", {"image": "/data/upload/9/nowhere.png"})], {})
    assert isinstance(unconfigured, TaskFailed) and "LABEL_STUDIO_URL" in str(unconfigured)
