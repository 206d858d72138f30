"""rillfixtures — pytest fixtures and hooks shared by tests/integration and
tests/fault (each suite's conftest.py imports them by name).

Fixtures:
  broker_factory  function scope: make(props=None, env=None, start=True) ->
                  Broker; every broker made is stopped and checked at teardown
  broker          function scope: one started broker with default settings
  shared_broker   module scope: one broker for a module's cheap tests
Every test is followed by a check of all running brokers (crash, sanitizer
report); a failing test gets each active broker's log tail attached.
"""

import pytest

from rilltest import ACTIVE_BROKERS, Broker, BrokerError


def pytest_configure(config):
    config.addinivalue_line("markers", "soak: slow, long-running variant (make soak); excluded from CI by -m 'not soak'")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and not getattr(rep, "_rill_logs_added", False):
        rep._rill_logs_added = True
        for b in list(ACTIVE_BROKERS):
            rep.sections.append(("rilld log %s (%s)" % (b.bootstrap, b.log_path), b.log_tail(200)))


def _cleanup_all(brokers, request=None):
    errors = []
    for b in brokers:
        try:
            b.cleanup()
        except BrokerError as e:
            errors.append(str(e))
    if not errors:
        return
    session = request.session if request is not None else None
    if session is not None and (session.shouldfail or session.shouldstop):
        # pytest is stopping after a failure (-x) and tears this fixture down
        # outside any test: raising here would abort its summary, so print
        tr = request.config.pluginmanager.get_plugin("terminalreporter")
        msg = "\nrilld teardown error (module %s):\n%s\n" % (request.node.name, "\n\n".join(errors))
        if tr is not None:
            tr.write_line(msg)
        else:
            print(msg)
        return
    pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def broker_factory(request, tmp_path):
    made = []

    def make(props=None, env=None, start=True):
        b = Broker(data_dir=str(tmp_path / ("broker%d" % len(made))), props=props, env=env)
        made.append(b)
        if start:
            b.start()
        return b
    yield make
    _cleanup_all(made, request)


@pytest.fixture
def broker(broker_factory):
    return broker_factory()


@pytest.fixture(scope="module")
def shared_broker(request, tmp_path_factory):
    b = Broker(data_dir=str(tmp_path_factory.mktemp("shared")))
    b.start()
    yield b
    _cleanup_all([b], request)


@pytest.fixture(autouse=True)
def _rill_check_brokers_after_test():
    """After every test: any broker still registered must not have died on its
    own nor printed a sanitizer report."""
    yield
    errors = []
    for b in list(ACTIVE_BROKERS):
        try:
            b.check()
        except BrokerError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)
