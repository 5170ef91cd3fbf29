"""Fixtures for the proxy's end-to-end tests: a short H.264 MPEG-TS made by ffmpeg, a simulator image that plays it,
and orchestrators (and standalone proxies) as real processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from orchestrator_proc import Orchestrator  # noqa: E402
from viewers import StandaloneProxy  # noqa: E402

#: The simulator image that loops the ffmpeg-made file (built from aceorch/engine-sim:latest).
MEDIA_IMAGE = "aceorch/engine-sim-media:test"


@pytest.fixture(scope="session")
def media_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 s of 320x240 H.264 at 25 fps, a key frame every second, in MPEG-TS (Debian's ffmpeg)."""
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is missing: scripts/ensure-system.sh installs it", pytrace=False)
    out = tmp_path_factory.mktemp("media") / "media.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "10",
                    "-c:v", "libx264", "-g", "25", "-f", "mpegts", str(out)], check=True, timeout=120)
    return out


@pytest.fixture(scope="session")
def media_image(docker_engine: None, media_file: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """aceorch/engine-sim with the file at /media/media.ts and SIM_MEDIA_FILE pointing at it; dl after 0.5 s."""
    ctx = tmp_path_factory.mktemp("media-image")
    shutil.copy(media_file, ctx / "media.ts")
    (ctx / "Dockerfile").write_text(
        "FROM aceorch/engine-sim:latest\n"
        "COPY media.ts /media/media.ts\n"
        "ENV SIM_MEDIA_FILE=/media/media.ts SIM_TIME_TO_DL_S=0.5\n"
    )
    subprocess.run(["docker", "build", "-q", "-t", MEDIA_IMAGE, str(ctx)], check=True, timeout=300,
                   capture_output=True, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    return MEDIA_IMAGE


@pytest.fixture
def orch(media_image: str, tmp_path: Path) -> Iterator[Callable[..., Orchestrator]]:
    """``orch(**env)``: an ``aceorch serve`` (RUNTIME=docker, engines of the media image); closed afterwards."""
    made: list[Orchestrator] = []

    def factory(**env: str) -> Orchestrator:
        o = Orchestrator(tmp_path / f"o{len(made)}", {"RUNTIME": "docker", "TARGET_IMAGE": media_image,
                                                      "AUTO_DELETE": "false", **env})
        o.cwd.mkdir(exist_ok=True)
        made.append(o)
        return o.start()

    yield factory
    for o in made:
        o.close()


@pytest.fixture
def standalone(tmp_path: Path) -> Iterator[Callable[..., StandaloneProxy]]:
    """``standalone(orchestrator, **env)``: a standalone proxy for that orchestrator; stopped afterwards."""
    made: list[StandaloneProxy] = []

    def factory(o: Orchestrator, **env: str) -> StandaloneProxy:
        p = StandaloneProxy(o, o.cwd, env)
        made.append(p)
        return p

    yield factory
    for p in made:
        p.close()
