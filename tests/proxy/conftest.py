"""Fixtures for the proxy's end-to-end tests: a short H.264 MPEG-TS made by ffmpeg, mounted into the simulator's
containers (ENGINE_VOLUMES) with SIM_MEDIA_FILE pointing at it (ENGINE_ENV), and orchestrators (and standalone
proxies) as real processes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from orchestrator_proc import Orchestrator  # noqa: E402
from viewers import StandaloneProxy  # noqa: E402

#: The plain simulator image: the ffmpeg-made file is mounted into its containers.
ENGINE_IMAGE = "aceorch/engine-sim:latest"
#: Where an engine container sees the file.
MEDIA_IN_ENGINE = "/media/media.ts"


@pytest.fixture(scope="session")
def media_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 s of 320x240 H.264 at 25 fps, a key frame every second, in MPEG-TS (Debian's ffmpeg)."""
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is missing: scripts/ensure-system.sh installs it", pytrace=False)
    out = tmp_path_factory.mktemp("media") / "media.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "10",
                    "-c:v", "libx264", "-g", "25", "-f", "mpegts", str(out)], check=True, timeout=120)
    return out


def media_settings(media_file: Path, **engine_env: str) -> dict[str, str]:
    """Orchestrator settings whose engines (the plain simulator image) play ``media_file``: its folder mounted
    read-only at /media, SIM_MEDIA_FILE pointing at it, dl after 0.5 s, and ``engine_env`` besides."""
    env = {"SIM_MEDIA_FILE": MEDIA_IN_ENGINE, "SIM_TIME_TO_DL_S": "0.5", **engine_env}
    return {"RUNTIME": "docker", "TARGET_IMAGE": ENGINE_IMAGE,
            "ENGINE_VOLUMES": f"{media_file.parent}:{Path(MEDIA_IN_ENGINE).parent}:ro",
            "ENGINE_ENV": ",".join(f"{k}={v}" for k, v in env.items())}


@pytest.fixture(scope="session")
def media_engine_settings(docker_engine: None, media_file: Path) -> Callable[..., dict[str, str]]:
    """``media_engine_settings(**engine_env)``: :func:`media_settings` for the session's file (Docker up, the images
    built)."""
    return lambda **engine_env: media_settings(media_file, **engine_env)


@pytest.fixture(scope="session")
def media_engines(media_engine_settings: Callable[..., dict[str, str]]) -> dict[str, str]:
    """The settings of engines that play the session's media file."""
    return media_engine_settings()


@pytest.fixture
def orch(media_engines: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Orchestrator]]:
    """``orch(**env)``: an ``aceorch serve`` (RUNTIME=docker, engines playing the media file); closed afterwards."""
    made: list[Orchestrator] = []

    def factory(**env: str) -> Orchestrator:
        o = Orchestrator(tmp_path / f"o{len(made)}", {**media_engines, "AUTO_DELETE": "false", **env})
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
