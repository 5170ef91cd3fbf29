"""The monitoring tests: the end-to-end helpers of tests/integration (a real ``aceorch serve``) are importable."""

from __future__ import annotations

import sys
from pathlib import Path

_INTEGRATION = str(Path(__file__).resolve().parents[1] / "integration")
if _INTEGRATION not in sys.path:
    sys.path.insert(0, _INTEGRATION)
