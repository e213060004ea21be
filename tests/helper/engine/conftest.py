"""The engine tests' shared fixture: `world`, the engine over fake ports
(defined in test_engine_plan.py beside World), for every test module here."""

from tests.helper.engine.test_engine_plan import world  # noqa: F401  (the fixture)
