"""Fault suite: kill -9 under load, torn segments, injected I/O errors.
Uses the same helpers and fixtures as tests/integration."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rillfixtures import (  # noqa: E402,F401  (fixtures and hooks, re-exported)
    _rill_check_brokers_after_test, broker, broker_factory, pytest_configure,
    pytest_runtest_makereport, shared_broker)
