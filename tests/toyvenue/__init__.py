"""A toy venue registered from the test suite: what "adding a venue" needs, and nothing more.

A test makes it available with ``registry.register(toyvenue.KIND, toyvenue.__name__)`` and undoes
that with ``registry.unregister`` (see the ``toy_kind`` fixture in
``tests/test_config_venue_rules.py``). ``config.py`` is how its ``[venues.X]`` table is read;
the runtime side (``adapter.py``) is added next to it.
"""

KIND = "toy"
