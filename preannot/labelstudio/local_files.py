"""What Label Studio may serve from this machine's disk: the least that shows the images.

Label Studio serves a file under its ``LOCAL_FILES_DOCUMENT_ROOT`` to every user of the
organisation (admin or not: any of them can add a Local Files storage on any folder under the
root), and follows symbolic links while it does. So the root is the folder just above the
image folders, never one that holds a secret or preannot's own state, and no link under it may
lead out of it. A storage must be a strict sub-folder of the root (Label Studio refuses the
root itself), hence "just above".
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..annotator import ConfigError

SETTING = "[labelstudio] local_files_root"


def root_above(folders: Iterable[Path]) -> Path | None:
    """The narrowest folder that holds every one of ``folders`` strictly below it (None for
    no folder)."""
    resolved = sorted({f.resolve() for f in folders})
    if not resolved:
        return None
    common = Path(os.path.commonpath(resolved))
    return common.parent if common in resolved else common


def check_root(root: Path, protected: dict[str, Path], why: str) -> Path:
    """``root`` resolved, or a :class:`ConfigError` (one line, saying what to set) when serving
    it would expose the whole disk, a home folder or a ``protected`` path (what it is ->
    where). ``why`` says where the root came from, for that line."""
    root = root.resolve()
    protected = {"your home folder": Path.home(), **protected}
    exposed = [(what, path) for what, path in protected.items()
               if path.resolve() == root or root in path.resolve().parents]
    if exposed:
        what, path = exposed[0]
        raise ConfigError(
            f"Label Studio would serve {root} ({why}) to all its users, and it holds {what} "
            f"({path}): keep the images in a folder of their own (e.g. data/images beside "
            f"preannot.toml), or set {SETTING} to a folder that holds only images")
    return root


def escaping_links(folder: Path, root: Path) -> list[tuple[Path, Path]]:
    """(link, target) for every symbolic link under ``folder`` that leads out of ``root``:
    Label Studio would serve its target. Links are not followed while walking."""
    root = root.resolve()
    found = []
    for parent, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            path = Path(parent) / name
            if path.is_symlink():
                target = path.resolve()
                if target != root and root not in target.parents:
                    found.append((path, target))
    return sorted(found)


def refuse_escaping_links(folder: Path, root: Path) -> None:
    """A :class:`ConfigError` naming the first link under ``folder`` that leads out of
    ``root`` (and how many there are)."""
    if links := escaping_links(folder, root):
        link, target = links[0]
        more = f" (and {len(links) - 1} more)" if len(links) > 1 else ""
        raise ConfigError(
            f"{link} links to {target}, outside {root}{more}: Label Studio would serve it to "
            "all its users; remove the link or copy the file into the folder")
