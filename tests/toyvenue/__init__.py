"""A toy venue registered from the test suite: what "adding a venue" needs, and nothing more.

A test makes it available with ``registry.register(toyvenue.KIND, toyvenue.__name__)`` and undoes
that with ``registry.unregister`` (see the ``toy_kind`` fixture in
``tests/test_config_venue_rules.py``). ``config.py`` is how its ``[venues.X]`` table is read,
``adapter.py`` how the runtime runs it (its protocol is in that module's docstring), ``parse.py``
its frames as events; ``tests/runtime/test_toy_venue.py`` runs it on the runtime.
"""

KIND = "toy"
