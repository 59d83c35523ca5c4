"""A toy venue registered from the test suite: what "adding a venue" needs, and nothing more.

A test makes it available for a while with ``with toyvenue.registered():`` (that is
``registry.register(toyvenue.KIND, toyvenue.__name__)``, undone with ``registry.unregister``).
``config.py`` is how its ``[venues.X]`` table is read, ``adapter.py`` how the runtime runs it
(its protocol is in that module's docstring), ``parse.py`` its frames as events;
``tests/runtime/test_toy_venue.py`` runs it on the runtime.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from qfexbot.venues import registry

KIND = "toy"


@contextlib.contextmanager
def registered() -> Iterator[str]:
    """``kind = "toy"`` available inside the block (its kind is yielded), forgotten after it."""
    registry.register(KIND, __name__)
    try:
        yield KIND
    finally:
        registry.unregister(KIND)
