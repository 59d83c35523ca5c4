"""tests/spec: the vendored schemas and the simulator checked against them.

``validate`` (this folder) and ``sim_client`` (tests/sim) are imported as top-level modules, as
the other test folders do with their helpers; tests/sim is put on the path here so that this
folder also runs on its own.
"""

from __future__ import annotations

import sys
from pathlib import Path

SIM_TESTS = str(Path(__file__).parent.parent / "sim")
if SIM_TESTS not in sys.path:
    sys.path.append(SIM_TESTS)
