"""Integration suite: a real rilld per test (broker) or per module
(shared_broker), driven by real clients. Helpers live in tests/rilltest.py,
fixtures in tests/rillfixtures.py (shared with tests/fault)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rillfixtures import (  # noqa: E402,F401  (fixtures and hooks, re-exported)
    _rill_check_brokers_after_test, broker, broker_factory, pytest_configure,
    pytest_runtest_makereport, shared_broker)
