"""The seed document's code blocks, exactly as written (the acceptance test runs them verbatim)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENDORED = HERE / "seed.txt"
SHARED = HERE.parents[2] / "shared" / "seed" / "000_9013e1b83aa32ed3.txt"


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    heading: str


def seed_text() -> str:
    return VENDORED.read_text(encoding="utf-8")


def blocks() -> list[Block]:
    out: list[Block] = []
    heading = ""
    lines = seed_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        m = re.match(r"^```(\w*)\s*$", line)
        if m:
            body: list[str] = []
            i += 1
            while not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            out.append(Block(m.group(1), "\n".join(body) + "\n", heading))
        i += 1
    return out


def find(lang: str, contains: str) -> Block:
    hits = [b for b in blocks() if b.lang == lang and contains in b.code]
    assert len(hits) == 1, f"expected one {lang} block containing {contains!r}, found {len(hits)}"
    return hits[0]
