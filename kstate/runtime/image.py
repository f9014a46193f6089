"""The local base image: a busybox root filesystem built in Python, imported into the engine.

Where it sits: beside the runtime adapters. ``kstate image build-base`` (and ``./dev test``,
and the Docker adapter itself when a sandbox needs it) calls :func:`build_base_image`;
node agent -> runtime adapter -> containers running this image.

Why it exists: a kstate node has no container registry and no network, yet the quick
start and every sandbox need an image. Debian's ``busybox-static`` is one static binary
that is a shell, an HTTP server (the quick start's "Tomcat"), ``wget``, ``nc``, ``sleep``
and some 270 other tools, so a tarball of it plus applet symlinks is a complete ~2 MB
image. The tarball is deterministic (fixed owners and mtimes): building twice gives the
same layer.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from kstate.errors import RuntimeAdapterError
from kstate.runtime.base import BASE_IMAGE, HTTPD_IMAGE

BUSYBOX = "/bin/busybox"
DEFAULT_TAGS = (BASE_IMAGE, HTTPD_IMAGE)
#: Dockerfile-style instructions applied on import (``docker import --change``).
IMAGE_CHANGES = ('CMD ["sh"]',)
#: Applets the quick start, the sandbox and the tests rely on; checked at build time so a
#: busybox built without one fails here, not inside a pod.
REQUIRED_APPLETS = (
    "sh", "httpd", "sleep", "echo", "cat", "ls", "wget", "nc", "env", "kill", "true",
    "false", "test", "mkdir", "hostname", "date", "seq", "yes", "dd", "head",
)

_DIRS = ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "www", "var",
         "proc", "sys", "dev")
_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n"
                  "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
    "www/index.html": "kstate httpd\n",
}
_MTIME = 1_700_000_000


class ImageImporter(Protocol):
    """What the builder needs of an adapter (Docker implements it; so does the fake)."""

    async def image_present(self, image: str) -> bool: ...

    async def import_image(
        self, tarball: bytes, tags: Sequence[str], changes: Sequence[str] = ()
    ) -> str: ...


def busybox_applets(busybox: str = BUSYBOX) -> list[str]:
    """Install paths of every applet (``bin/sh``, ``usr/bin/wget``, ...)."""
    try:
        out = subprocess.run([busybox, "--list-full"], capture_output=True, text=True,
                             check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise RuntimeAdapterError(
            f"cannot run {busybox} ({err}); install Debian's busybox-static "
            "(apt-get install busybox-static)"
        ) from err
    return sorted({line.strip().lstrip("/") for line in out.split() if line.strip()})


def base_image_tar(busybox: str = BUSYBOX) -> bytes:
    """The root filesystem as an uncompressed tarball, ready for ``docker import``."""
    applets = busybox_applets(busybox)
    names = {Path(p).name for p in applets}
    missing = [a for a in REQUIRED_APPLETS if a not in names]
    if missing:
        raise RuntimeAdapterError(f"{busybox} lacks applets {missing}; "
                                  "install Debian's busybox-static")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:

        def add(info: tarfile.TarInfo, data: bytes | None = None) -> None:
            info.mtime, info.uid, info.gid, info.uname, info.gname = _MTIME, 0, 0, "root", "root"
            tar.addfile(info, io.BytesIO(data) if data is not None else None)

        for d in _DIRS:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            add(info)
        tmp = tarfile.TarInfo("tmp")
        tmp.type, tmp.mode = tarfile.DIRTYPE, 0o1777  # sticky, world-writable: sh needs it
        add(tmp)
        binary = Path(busybox).read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(binary), 0o755
        add(info, binary)
        for path in applets:
            if path == "bin/busybox":
                continue
            link = tarfile.TarInfo(path)
            link.type, link.linkname = tarfile.SYMTYPE, "/bin/busybox"
            add(link)
        for path, text in _FILES.items():
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), 0o644
            add(info, data)
    return buf.getvalue()


async def build_base_image(
    runtime: ImageImporter,
    tags: Sequence[str] = DEFAULT_TAGS,
    *,
    force: bool = False,
    busybox: str = BUSYBOX,
) -> list[str]:
    """Build the busybox image under ``tags``; idempotent. Returns the tags it (re)built.

    Does nothing when every tag is present, unless ``force``.

    >>> # await build_base_image(DockerRuntime())  # -> ['kstate/base:1', 'kstate/httpd:1']
    """
    if not force:
        missing = [t for t in tags if not await runtime.image_present(t)]
        if not missing:
            return []
    await runtime.import_image(base_image_tar(busybox), tags, IMAGE_CHANGES)
    return list(tags)
