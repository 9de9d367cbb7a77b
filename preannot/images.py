"""Open a task's image the way Label Studio shows it, wherever it lives.

One place for every image plugin: a local path, an http(s) URL, or a file already in Label Studio
(``/data/upload/...``, ``/data/local-files/?d=...``, cloud URIs), fetched through the Label Studio
SDK's own downloader with the connection from ``LABEL_STUDIO_URL`` / ``LABEL_STUDIO_API_KEY``.
EXIF orientation is applied, as browsers (and so Label Studio's editor) do, so pixel coordinates
and ``original_width``/``original_height`` match what annotators see.
"""

from __future__ import annotations

import os
from pathlib import Path

from .annotator import Context, TaskFailed
from .model import Task


def locate_image(value: str, context: Context, task: Task | None = None) -> Path:
    """A local file holding the image ``value`` names (downloaded into the cache if remote)."""
    if value.startswith(("http://", "https://", "/data/", "upload/", "/upload/", "s3://", "gs://",
                         "azure-blob://")):
        if value.startswith(("/data/", "upload/", "/upload/")) and not os.getenv("LABEL_STUDIO_URL"):
            raise OSError("a Label Studio URL: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY")
        from label_studio_sdk._extensions.label_studio_tools.core.utils.io import get_local_path

        cache = context.cache_dir / "images"
        cache.mkdir(parents=True, exist_ok=True)  # the downloader writes into it without creating it
        # Cloud URIs are presigned per Label Studio task: a task exported from Label Studio
        # keeps its numeric id.
        task_id = int(task.id) if task and task.id.isdigit() else None
        return Path(get_local_path(value, cache_dir=str(cache), task_id=task_id))
    return context.path(value)


def open_image(task: Task, field: str, context: Context):
    """The task's image as an RGB ``PIL.Image`` with EXIF orientation applied, or a
    :class:`TaskFailed` naming the image and what went wrong (the caller returns it).
    """
    from PIL import Image, ImageOps

    value = task.data.get(field)
    if not isinstance(value, str) or not value:
        return TaskFailed(f"cannot read image {value!r}: task field {field!r} holds no image path or URL")
    try:
        path = locate_image(value, context, task)
        with Image.open(path) as image:
            image.load()
            ImageOps.exif_transpose(image, in_place=True)  # no copy when there is nothing to turn
            return image if image.mode == "RGB" else image.convert("RGB")
    except Exception as exc:  # decoding errors come in many types (OSError, SyntaxError, ...)
        return TaskFailed(f"cannot read image {value}: {_safe(exc)}")


def _safe(exc: Exception) -> str:
    """The error text without the access token, should a library echo request headers."""
    text = f"{type(exc).__name__}: {exc}"
    token = os.getenv("LABEL_STUDIO_API_KEY") or os.getenv("LABEL_STUDIO_ACCESS_TOKEN")
    return text.replace(token, "***") if token else text
