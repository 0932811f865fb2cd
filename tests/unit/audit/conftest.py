"""In-process SMTP servers for the probe tests: aiosmtpd that behaves, aiosmtpd that misbehaves,
and raw sockets that go silent or hang up."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator

import pytest

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: E402

from tests.unit.audit.certs import self_signed_cert  # noqa: E402

DOMAIN = "example.test"
ACCOUNTS = {"alice": "alice-pw", "bob": "bob-pw"}


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and \
        ACCOUNTS.get(auth_data.login.decode()) == auth_data.password.decode()
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


def _login_of(session) -> str | None:
    data = getattr(session, "auth_data", None)
    if isinstance(data, LoginPassword):
        return data.login.decode()
    return None


class BehavingHandler:
    """Refuses what a hardened MDaemon or Postfix refuses (replies modelled on Postfix's)."""

    def __init__(self) -> None:
        self.data_received = 0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        local = address.lower().endswith("@" + DOMAIN)
        if session.authenticated:
            login = _login_of(session)
            if address.lower() != f"{login}@{DOMAIN}":
                return f"553 5.7.1 <{address}>: Sender address rejected: not owned by user {login}"
        elif local:
            return f"553 5.7.1 <{address}>: Sender address rejected: not logged in"
        envelope.mail_from = address
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if not session.authenticated and not address.lower().endswith("@" + DOMAIN):
            return f"554 5.7.1 <{address}>: Relay access denied"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        self.data_received += 1  # the probe must never get here
        return "250 2.0.0 Ok: queued"


class MisbehavingHandler:
    """Accepts any sender from anyone and relays anywhere: every probe check must fail."""

    def __init__(self) -> None:
        self.data_received = 0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        envelope.mail_from = address
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        self.data_received += 1
        return "250 2.0.0 Ok: queued"


def _free_port() -> int:
    # aiosmtpd's Controller checks readiness by connecting to the port it was given, so it
    # needs a real number rather than 0.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(handler, **kwargs):
    controller = aiosmtpd_controller.Controller(
        handler, hostname="127.0.0.1", port=_free_port(), authenticator=_authenticator, **kwargs)
    controller.start()
    return controller


def _port(controller) -> int:
    return controller.port


@pytest.fixture(scope="session")
def tls_context(tmp_path_factory) -> ssl.SSLContext:
    cert, key = self_signed_cert(tmp_path_factory.mktemp("tls"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    return context


@pytest.fixture
def behaving_server(tls_context) -> Iterator[tuple[int, BehavingHandler]]:
    """STARTTLS, AUTH only under TLS, sender ownership enforced, no relaying."""
    handler = BehavingHandler()
    controller = _start(handler, tls_context=tls_context, auth_require_tls=True)
    try:
        yield _port(controller), handler
    finally:
        controller.stop()


@pytest.fixture
def misbehaving_server() -> Iterator[tuple[int, MisbehavingHandler]]:
    """No TLS, AUTH PLAIN/LOGIN in clear, accepts every sender and recipient."""
    handler = MisbehavingHandler()
    controller = _start(handler, auth_require_tls=False)
    try:
        yield _port(controller), handler
    finally:
        controller.stop()


class RawServer:
    """A TCP server on 127.0.0.1 whose behaviour per connection is a function of the socket."""

    def __init__(self, behaviour) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.behaviour = behaviour
        self.connections: list[socket.socket] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        try:
            self.behaviour(conn, self.stopped)
        except OSError:
            pass

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()
        for conn in self.connections:
            try:
                conn.close()
            except OSError:
                pass
        self.thread.join(timeout=5)


@pytest.fixture
def raw_server():
    servers: list[RawServer] = []

    def make(behaviour) -> RawServer:
        server = RawServer(behaviour)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()
