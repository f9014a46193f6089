"""The base image's root filesystem, built in Python from Debian's busybox-static.

The tarball must be deterministic (the same layer every build), complete (every applet
the quick start and the sandbox use) and importable; the import itself is exercised on
Docker in ``test_docker.py`` and, for idempotence, on the fake here.
"""

from __future__ import annotations

import asyncio
import io
import os
import tarfile

import pytest

from kstate.clock import FakeClock
from kstate.errors import RuntimeAdapterError
from kstate.runtime.fake import FakeRuntime
from kstate.runtime.image import (
    DEFAULT_TAGS,
    REQUIRED_APPLETS,
    base_image_tar,
    build_base_image,
)
from tests.conftest import require


@pytest.fixture(scope="module")
def tarball() -> bytes:
    require(os.path.exists("/bin/busybox"), "busybox-static (/bin/busybox)")
    return base_image_tar()


def test_tarball_is_deterministic(tarball: bytes) -> None:
    assert base_image_tar() == tarball


def test_tarball_has_busybox_applets_and_a_usable_root(tarball: bytes) -> None:
    with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bin/busybox"].isfile() and members["bin/busybox"].mode & 0o111
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "/bin/busybox"
    names = {n.rsplit("/", 1)[-1] for n, m in members.items() if m.issym()}
    assert set(REQUIRED_APPLETS) <= names
    assert members["tmp"].mode == 0o1777
    assert members["www"].isdir() and "etc/passwd" in members
    assert all(m.uid == 0 and m.gid == 0 for m in members.values())


def test_missing_busybox_is_a_clear_error() -> None:
    with pytest.raises(RuntimeAdapterError, match="busybox-static"):
        base_image_tar("/nonexistent/busybox")


def test_build_is_idempotent(tarball: bytes) -> None:
    async def scenario() -> None:
        rt = FakeRuntime(FakeClock(), images=())
        assert await build_base_image(rt) == list(DEFAULT_TAGS)
        assert await build_base_image(rt) == []
        assert await build_base_image(rt, force=True) == list(DEFAULT_TAGS)
        assert all([await rt.image_present(t) for t in DEFAULT_TAGS])

    asyncio.run(scenario())
