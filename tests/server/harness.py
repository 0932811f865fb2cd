"""Real Dovecot and Postfix instances on 127.0.0.1 for tests and benchmarks.

Each instance writes its own throw-away configuration and never reads or
changes /etc/postfix or /etc/dovecot (Postfix still reads its read-only
``meta_directory`` files such as ``postfix-files`` from /etc/postfix, as
every Postfix instance does). The classes are plain context managers, so the
same code serves pytest fixtures (tests/server/conftest.py) and bench/ scripts::

    with Dovecot(workdir, {"alice": "pw"}) as dovecot, \\
         Postfix(workdir, dovecot=dovecot) as postfix:
        ...

Layout. The caller's ``workdir`` holds the logs (``dovecot.log``, ``maillog``)
and ``dovecot.conf``. Everything an unprivileged process must open lives in a
short *runtime* directory per instance under /tmp (``workdir/runtime-dovecot``
and ``workdir/runtime-postfix`` link to them): sockets, Postfix's queue and
``config/`` (main.cf, master.cf, maps), Dovecot's passwd file, and the mail.
Two reasons: Unix socket paths are limited to 107 bytes, and the ``nobody``,
``postfix`` and ``dovecot`` accounts cannot enter pytest's 0700
``/tmp/pytest-of-root``.
One Dovecot and one Postfix at most per workdir. Processes are stopped by
``stop()`` (also on interpreter exit); the runtime directory is removed on
interpreter exit, or earlier by ``remove_files()``; instances left behind by a
killed test process are reaped by the next one (``reap_stale_instances``).

Readiness is always a poll of the real thing (the IMAP or SMTP banner, the
auth socket, a log line), never a fixed sleep.
"""

from __future__ import annotations

import atexit
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

HOST = "127.0.0.1"
# Mail files belong to this account: Dovecot refuses to access mail as root
# and Postfix's virtual(8) delivers as an ordinary uid.
MAIL_ACCOUNT = "nobody"
START_TIMEOUT = 30.0  # generous: two cores shared with other test runs
POLL_INTERVAL = 0.05
# One readiness probe's wait for a banner; a miss just means "poll again" (START_TIMEOUT rules).
PROBE_TIMEOUT = 1.0
LOG_TAIL_LINES = 40

DEFAULT_USERS: dict[str, str] = {"alice": "alice-secret-1", "bob": "bob-secret-2"}


class HarnessError(RuntimeError):
    """A server did not start, stop or settle as expected (message includes its log tail)."""


class PortClashError(HarnessError):
    """Another process took a port between free_port() and the server's bind(); start() retries."""


PORT_ATTEMPTS = 3
ADDRESS_IN_USE = "Address already in use"


# -- availability --------------------------------------------------------------------------


def _is_root() -> bool:
    return os.geteuid() == 0


def _account_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def have_dovecot() -> bool:
    """Dovecot's binaries are installed, its system accounts exist, and we are root."""
    return (
        _is_root()
        and shutil.which("dovecot") is not None
        and shutil.which("doveadm") is not None
        and all(_account_exists(a) for a in ("dovecot", "dovenull", MAIL_ACCOUNT))
    )


def have_postfix() -> bool:
    """Postfix's binaries are installed, its system accounts exist, and we are root."""
    return (
        _is_root()
        and shutil.which("postfix") is not None
        and shutil.which("postconf") is not None
        and shutil.which("smtp-sink") is not None
        and _account_exists("postfix")
        and _account_exists(MAIL_ACCOUNT)
        and _group_exists("postdrop")
    )


def why_not_dovecot() -> str:
    """Reason text for pytest.skip when have_dovecot() is false."""
    if not _is_root():
        return "real Dovecot tests need root (they start dovecot on 127.0.0.1)"
    return "dovecot/doveadm not installed (scripts/install-test-servers.sh installs them)"


def why_not_postfix() -> str:
    """Reason text for pytest.skip when have_postfix() is false."""
    if not _is_root():
        return "real Postfix tests need root (they start postfix on 127.0.0.1)"
    return "postfix not installed (scripts/install-test-servers.sh installs it)"


# -- ports, polling, processes -----------------------------------------------------------------

_handed_out_ports: set[int] = set()
_ports_lock = threading.Lock()


def free_port(host: str = HOST) -> int:
    """A TCP port on ``host`` that is free now and that this process has not handed out before."""
    with _ports_lock:
        for _ in range(200):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind((host, 0))
                port = probe.getsockname()[1]
            if port not in _handed_out_ports:
                _handed_out_ports.add(port)
                return port
    raise HarnessError("no free TCP port found")


def read_banner(host: str, port: int, timeout: float = 5.0, goodbye: bytes = b"") -> bytes | None:
    """The first line a server sends on connect, or None when nothing listens yet.

    ``goodbye`` (e.g. ``b"QUIT\\r\\n"``) is sent after the banner so that the
    server logs an orderly session rather than a lost connection.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            data = b""
            while b"\n" not in data and len(data) < 4096:
                chunk = conn.recv(1024)
                if not chunk:
                    break
                data += chunk
            if goodbye and b"\n" in data:
                conn.sendall(goodbye)
                try:
                    while conn.recv(1024):
                        pass
                except OSError:
                    pass
            return data.split(b"\n", 1)[0].rstrip(b"\r")
    except OSError:
        return None


def wait_until(predicate, timeout: float, what: str, on_timeout=None):
    """Poll ``predicate`` until it returns a truthy value; HarnessError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = on_timeout() if on_timeout else ""
            raise HarnessError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(POLL_INTERVAL)


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"\n({path} not readable)"
    return f"\n--- last lines of {path} ---\n" + "\n".join(text.splitlines()[-lines:])


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _process_state(pid: int) -> str | None:
    """'R', 'S', 'Z' ... from /proc, or None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _pid_running(pid: int) -> bool:
    # Orphaned Postfix processes can stay zombies here (PID 1 does not reap them):
    # a zombie has stopped running.
    return _process_state(pid) not in (None, "Z", "X")


_live_instances: list[_Instance] = []


def _stop_all_at_exit() -> None:
    for instance in list(_live_instances):
        try:
            instance.stop()
        finally:
            instance.remove_files()


atexit.register(_stop_all_at_exit)


def _mail_ids() -> tuple[int, int]:
    entry = pwd.getpwnam(MAIL_ACCOUNT)
    return entry.pw_uid, entry.pw_gid


RUNTIME_PARENT = Path("/tmp")
RUNTIME_PREFIXES = ("mwhd", "mwhp")  # Dovecot, Postfix ("mw harness")
OWNER_FILE = "owner.pid"
# Files holding the pid of a process group an instance started (relative to its runtime dir).
GROUP_PID_FILES = ("run/master.pid", "queue/pid/master.pid", "sink.pid")
_reaped = False


def reap_stale_instances() -> list[Path]:
    """Stop and delete instances left behind by a test process that died (kill -9, crash).

    Only runtime directories whose owner process is gone are touched, so other
    test runs on the same machine keep their servers. Returns what was removed.
    """
    removed = []
    for prefix in RUNTIME_PREFIXES:
        for runtime in RUNTIME_PARENT.glob(f"{prefix}*"):
            try:
                owner = int((runtime / OWNER_FILE).read_text())
            except (OSError, ValueError):
                continue  # not ours, or still being created
            if _pid_running(owner):
                continue
            for name in GROUP_PID_FILES:
                try:
                    pid = int((runtime / name).read_text().split()[0])
                except (OSError, ValueError, IndexError):
                    continue
                _kill_group(pid)
            shutil.rmtree(runtime, ignore_errors=True)
            removed.append(runtime)
    return removed


class _Instance:
    """What Dovecot and Postfix share: a runtime directory and at-exit cleanup."""

    host = HOST
    label = "server"

    def __init__(self, workdir: Path) -> None:
        global _reaped
        if not _reaped:
            _reaped = True
            reap_stale_instances()
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        # mkdtemp is 0700; the unprivileged mail and login accounts must enter it.
        self.runtime = Path(tempfile.mkdtemp(prefix=f"mwh{self.label[0]}", dir=RUNTIME_PARENT))
        self.runtime.chmod(0o755)
        (self.runtime / OWNER_FILE).write_text(str(os.getpid()))
        link = self.workdir / f"runtime-{self.label}"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(self.runtime)
        self.running = False
        _live_instances.append(self)

    def _check_workdir_free(self) -> None:
        for other in _live_instances:
            if other is not self and other.running and other.workdir == self.workdir and (
                other.label == self.label
            ):
                # They would share dovecot.conf / maillog.
                raise HarnessError(
                    f"a running {self.label} already uses {self.workdir}; give each its own workdir"
                )

    def remove_files(self) -> None:
        """Delete the runtime directory (mail, queue, sockets); the workdir is the caller's."""
        if self.running:
            self.stop()
        shutil.rmtree(self.runtime, ignore_errors=True)
        if self in _live_instances:
            _live_instances.remove(self)

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self):  # pragma: no cover - overridden
        raise NotImplementedError


# -- Dovecot ----------------------------------------------------------------------------------

MAIL_LOCATIONS = {
    "maildir": "maildir:~/Maildir",
    "mbox": "mbox:~/mail:INBOX=~/mail/inbox",
    "sdbox": "sdbox:~/sdbox",
    "mdbox": "mdbox:~/mdbox",
}


class Dovecot(_Instance):
    """A Dovecot 2.3 IMAP server on 127.0.0.1 with passwd-file users and mail under one root.

    ``users`` maps login names to plain-text passwords. Mail for user U lives in
    ``mail_home(U)`` (owned by the ``nobody`` account); with the default Maildir
    format ``maildir(U)`` is ``mail_home(U)/Maildir``. ``mail_format`` is one of
    maildir, mbox, sdbox, mdbox. ``auth_failure_delay`` is Dovecot's pause after
    a failed login; "0" (the default here) also turns off the anvil auth penalty,
    so brute-force scenarios run at full speed. ``extra_conf`` is appended to
    the generated dovecot.conf. ``doveadm(...)`` runs doveadm on this instance.
    """

    label = "dovecot"

    def __init__(
        self,
        workdir: Path,
        users: Mapping[str, str] | None = None,
        *,
        mail_format: str = "maildir",
        auth_failure_delay: str = "0",
        extra_conf: str = "",
        mail_root: Path | None = None,
    ) -> None:
        if mail_format not in MAIL_LOCATIONS:
            raise ValueError(f"mail_format must be one of {sorted(MAIL_LOCATIONS)}")
        super().__init__(workdir)
        self.users = dict(DEFAULT_USERS if users is None else users)
        for name, password in self.users.items():
            if not name or any(c in name + password for c in ":\n\r/"):
                raise ValueError(f"user name/password may not contain ':', '/' or newlines: {name!r}")
        self.mail_format = mail_format
        self.auth_failure_delay = auth_failure_delay
        self.extra_conf = extra_conf
        self.imap_port = free_port()
        self.config_path = self.workdir / "dovecot.conf"
        # The auth process runs as the dovecot account, which cannot enter pytest's tmp dirs.
        self.passwd_path = self.runtime / "passwd"
        self.log_path = self.workdir / "dovecot.log"
        # mail_root: an existing tree (e.g. a bench's generated Maildirs) instead of the
        # runtime directory; every directory above it must be enterable by "nobody".
        self.mail_root = Path(mail_root).resolve() if mail_root else self.runtime / "mail"
        self.base_dir = self.runtime / "run"
        # Extra auth listeners (a Postfix queue's private/auth); see add_auth_listener().
        self._auth_listeners: list[tuple[Path, str, str]] = []
        self.auth_socket: Path | None = None
        self._process: subprocess.Popen | None = None

    # paths ----------------------------------------------------------------
    def mail_home(self, user: str) -> Path:
        """The user's Dovecot home; the mail store is inside it."""
        return self.mail_root / user

    def maildir(self, user: str) -> Path:
        """The user's mail root: the Maildir++ directory (INBOX = cur/new/tmp, folders .Name)."""
        if self.mail_format == "maildir":
            return self.mail_home(user) / "Maildir"
        location = MAIL_LOCATIONS[self.mail_format]
        return self.mail_home(user) / location.split(":", 2)[1].removeprefix("~/")

    # configuration ----------------------------------------------------------
    def add_auth_listener(self, path: Path, *, user: str = "postfix", group: str = "postfix") -> None:
        """Serve Dovecot SASL on ``path`` (e.g. a Postfix queue's private/auth).

        Before start() it becomes part of the configuration; on a running
        Dovecot the configuration is rewritten and reloaded, and this returns
        once the socket exists.
        """
        path = Path(path)
        if len(str(path)) > 100:
            raise HarnessError(f"auth socket path too long for a Unix socket: {path}")
        self._auth_listeners.append((path, user, group))
        self.auth_socket = path
        if self.running:
            self._write_config()
            self.doveadm("reload")
            wait_until(path.exists, START_TIMEOUT, f"Dovecot auth socket {path}", self._log_tail)

    def _write_config(self) -> None:
        uid, gid = _mail_ids()
        listeners = "".join(
            f"  unix_listener {path} {{\n    mode = 0660\n    user = {user}\n    group = {group}\n  }}\n"
            for path, user, group in self._auth_listeners
        )
        # Dovecot 2.3.19 also slows repeated failures from one IP (anvil "auth penalty", 2 s
        # growing to 15 s) whatever auth_failure_delay says; its documented off switch is
        # a mode-0 anvil-auth-penalty listener. Brute-force scenarios need it off. (2.3.19
        # still answers each failure after ~0.5 s: its delayed-failure queue runs twice a second.)
        penalty = (
            "service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}\n"
            if self._no_delay()
            else ""
        )
        self.passwd_path.write_text(
            "".join(f"{name}:{{PLAIN}}{password}\n" for name, password in self.users.items())
        )
        self.passwd_path.chmod(0o600)
        dovecot_account = pwd.getpwnam("dovecot")
        os.chown(self.passwd_path, dovecot_account.pw_uid, dovecot_account.pw_gid)
        self.config_path.write_text(
            f"""# Written by tests/server/harness.py for one test run; not read from /etc/dovecot.
base_dir = {self.base_dir}
state_dir = {self.runtime / "state"}
instance_name = mailwarden-{self.runtime.name}
protocols = imap
listen = {self.host}
log_path = {self.log_path}
info_log_path = {self.log_path}
ssl = no
# Clients on 127.0.0.77 talk to 127.0.0.1 without TLS; Dovecot only trusts same-address clients.
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = {self.auth_failure_delay}
auth_verbose = yes
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = {uid}
last_valid_uid = {uid}
mail_location = {MAIL_LOCATIONS[self.mail_format]}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.passwd_path}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={self.mail_root}/%u
}}
service imap-login {{
  inet_listener imap {{
    address = {self.host}
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service auth {{
{listeners}}}
{penalty}{self.extra_conf}
"""
        )

    def _no_delay(self) -> bool:
        return self.auth_failure_delay.strip().split(" ")[0] in ("0", "")

    def doveadm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``doveadm -c <this config> ARGS`` (e.g. ``expunge -u alice mailbox INBOX all``)."""
        return subprocess.run(
            ["doveadm", "-c", str(self.config_path), *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    # life cycle -------------------------------------------------------------
    def start(self) -> Dovecot:
        """Write the configuration, start dovecot in the foreground, wait for the IMAP banner."""
        if self.running:
            return self
        self._check_workdir_free()
        uid, gid = _mail_ids()
        self.mail_root.mkdir(exist_ok=True)
        os.chown(self.mail_root, uid, gid)
        for user in self.users:
            self._prepare_home(user, uid, gid)
        for attempt in range(PORT_ATTEMPTS):
            try:
                return self._start_once()
            except PortClashError:
                if attempt == PORT_ATTEMPTS - 1:
                    raise
                self.imap_port = free_port()
        raise AssertionError("unreachable")

    def _start_once(self) -> Dovecot:
        self._write_config()
        with open(self.workdir / "dovecot.stderr", "ab") as stderr:
            self._process = subprocess.Popen(
                ["dovecot", "-F", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                # Its own process group, so stop() can kill every child it leaves behind.
                start_new_session=True,
            )
        self.running = True
        try:
            wait_until(self._ready, START_TIMEOUT, f"Dovecot IMAP banner on port {self.imap_port}", self._log_tail)
            for path, _user, _group in self._auth_listeners:
                wait_until(path.exists, START_TIMEOUT, f"Dovecot auth socket {path}", self._log_tail)
        except BaseException:
            self.stop()
            raise
        return self

    def _prepare_home(self, user: str, uid: int, gid: int) -> None:
        # Created up front so that tests can look at (and Postfix can deliver into) an empty store.
        home = self.mail_home(user)
        dirs = [home]
        if self.mail_format == "maildir":
            dirs += [home / "Maildir", *(home / "Maildir" / sub for sub in ("cur", "new", "tmp"))]
        for path in dirs:
            path.mkdir(exist_ok=True)
            os.chown(path, uid, gid)
            path.chmod(0o700)

    def _ready(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            tail = self._log_tail()
            error = PortClashError if ADDRESS_IN_USE in tail else HarnessError
            raise error(f"dovecot exited with status {self._process.returncode}" + tail)
        banner = read_banner(self.host, self.imap_port, PROBE_TIMEOUT, goodbye=b"a LOGOUT\r\n")
        return bool(banner and banner.startswith(b"* OK"))

    def _log_tail(self) -> str:
        return _tail(self.log_path) + _tail(self.workdir / "dovecot.stderr")

    def stop(self) -> None:
        """Stop the master and every child (SIGTERM, then SIGKILL to the process group)."""
        process, self._process = self._process, None
        self.running = False
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        # The master's children share its process group (start_new_session above).
        _kill_group(process.pid)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def chown_mail(self) -> None:
        """Give everything under the mail root back to the mail account.

        Call this after a test (running as root) created folders or files in a
        store that Dovecot must write to afterwards.
        """
        uid, gid = _mail_ids()
        for root, dirs, files in os.walk(self.mail_root):
            for name in dirs + files:
                os.lchown(os.path.join(root, name), uid, gid)
        os.lchown(self.mail_root, uid, gid)


# -- Postfix ----------------------------------------------------------------------------------

# master.cf for a test instance: Debian's service list, nothing chrooted (the queue is
# private to the instance), smtpd only on the 127.0.0.1 ports the instance picked.
MASTER_CF_SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
        -o syslog_name=postfix/$service_name
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

# The queue layout post-install creates (name, owner, group, mode), as Postfix 3.7 makes it.
# Creating it here and starting with $queue_directory/quick-start skips postfix-script's
# checks, which take ~2 s per fresh instance; start() falls back to a checked start if
# this Postfix wants something else.
QUEUE_LAYOUT = (
    *((name, "postfix", "root", 0o700) for name in (
        "active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming",
        "private", "saved", "trace")),
    ("maildrop", "postfix", "postdrop", 0o730),
    ("public", "postfix", "postdrop", 0o710),
    ("pid", "root", "root", 0o755),
)
# Queue subdirectories that hold messages not yet delivered (deferred is hashed).
ACTIVE_QUEUES = ("maildrop", "incoming", "active")
# "postfix/smtpd[123]: 4F2A1B3C: ..." short (hex) and long (enable_long_queue_ids) queue ids.
QUEUE_ID_LINE = re.compile(
    r"postfix(?:/[\w.-]{1,40}){1,3}\[\d{1,10}\]: ([0-9A-F]{6,20}|[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{8,30}): (\S{1,40})"
)
# Lines after which a queue id will not be logged again.
QUEUE_ID_FINAL = ("removed", "reject:", "discard:", "milter-reject:", "milter-discard:")


class Postfix(_Instance):
    """A Postfix 3.x instance on 127.0.0.1 with virtual Maildir users and its own everything.

    ``postfix -c DIR`` as root needs no ``alternate_config_directories`` entry in
    /etc/postfix/main.cf (that check only guards the set-gid postdrop/postqueue
    programs run by ordinary users), so /etc is left alone.

    - smtpd on ``smtp_port`` plays port 25; with a ``dovecot`` it also offers AUTH
      (Dovecot SASL through ``<queue>/private/auth``) and ``submission_port`` is a
      submission service that requires AUTH (None without Dovecot or submission).
    - Local users (``users``; default: the Dovecot users) are virtual mailboxes at
      ``mailbox(user)``: the same Maildir Dovecot serves over IMAP.
    - Mail to other domains goes to ``outbound``: "sink" (Postfix's smtp-sink on a
      loopback port, logged ``status=sent (250 ...)``) or "discard" (the discard
      transport). Nothing ever leaves 127.0.0.1; DNS is off.
    - ``tls=True``: a throw-away self-signed certificate (openssl), STARTTLS offered
      on smtpd (``may``), required on submission together with
      ``smtpd_tls_auth_only=yes``. Without it there is no TLS at all.
    - ``main_cf`` overrides or adds main.cf parameters; ``master_cf_extra`` is
      appended to master.cf. ``log_path`` is the instance's ``maillog_file``.
    """

    label = "postfix"

    def __init__(
        self,
        workdir: Path,
        *,
        domain: str = "example.test",
        hostname: str = "mail.example.test",
        mynetworks: Iterable[str] = ("127.0.0.1/32",),
        users: Mapping[str, str] | None = None,
        dovecot: Dovecot | None = None,
        submission: bool = True,
        main_cf: Mapping[str, str] | None = None,
        master_cf_extra: str = "",
        outbound: str = "sink",
        tls: bool = False,
    ) -> None:
        if outbound not in ("sink", "discard"):
            raise ValueError("outbound must be 'sink' or 'discard'")
        super().__init__(workdir)
        self.domain = domain
        self.hostname = hostname
        self.mynetworks = tuple(mynetworks)
        self.dovecot = dovecot
        if users is None:
            users = dovecot.users if dovecot is not None else DEFAULT_USERS
        self.users = dict(users)
        self.main_cf_overrides = dict(main_cf or {})
        self.master_cf_extra = master_cf_extra
        self.outbound = outbound
        self.tls = tls
        self.smtp_port = free_port()
        self.submission_port: int | None = (
            free_port() if submission and dovecot is not None else None
        )
        self.sink_port: int | None = free_port() if outbound == "sink" else None
        # In the runtime directory: virtual(8) opens its maps after dropping privileges.
        self.config_dir = self.runtime / "config"
        self.log_path = self.workdir / "maillog"
        self.queue_dir = self.runtime / "queue"
        self.data_dir = self.runtime / "data"
        self.mail_root = dovecot.mail_root if dovecot is not None else self.runtime / "mail"
        self._sink: subprocess.Popen | None = None
        self._started_dovecot = False
        self._master_pid: int | None = None

    # paths and queries ---------------------------------------------------------
    def address(self, user: str) -> str:
        """user@domain for a local user name."""
        return user if "@" in user else f"{user}@{self.domain}"

    def mailbox(self, user: str) -> Path:
        """The Maildir where mail for user@domain lands (Dovecot's maildir(user) too)."""
        return self.mail_root / user / "Maildir"

    def postconf(self, *args: str) -> str:
        """``postconf -c <config_dir> ARGS`` output."""
        result = subprocess.run(
            ["postconf", "-c", str(self.config_dir), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            raise HarnessError(f"postconf {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def postconf_n(self) -> str:
        """``postconf -c <config_dir> -n``: the non-default main.cf settings (audit reads it)."""
        return self.postconf("-n")

    # configuration ---------------------------------------------------------------
    def main_cf_params(self) -> dict[str, str]:
        """The main.cf this instance writes (before ``main_cf`` overrides are applied)."""
        uid, gid = _mail_ids()
        params = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue_dir),
            "data_directory": str(self.data_dir),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": self.hostname,
            "mydomain": self.domain,
            "myorigin": "$mydomain",
            "mydestination": "",
            "inet_interfaces": self.host,
            "inet_protocols": "ipv4",
            "mynetworks": " ".join(self.mynetworks),
            # No syslog daemon here: Postfix >= 3.4 writes its own log through postlogd.
            "maillog_file": str(self.log_path),
            "maillog_file_prefixes": str(self.workdir),
            # No DNS: no MX lookups, no reverse lookups of clients (logged as unknown[IP]).
            "smtp_dns_support_level": "disabled",
            "smtpd_peername_lookup": "no",
            "smtpd_banner": "$myhostname ESMTP $mail_name",
            "biff": "no",
            "append_dot_mydomain": "no",
            "readme_directory": "no",
            "alias_maps": "",
            "alias_database": "",
            "local_transport": "error:local delivery is disabled",
            "virtual_mailbox_domains": self.domain,
            "virtual_mailbox_base": str(self.mail_root),
            "virtual_mailbox_maps": f"texthash:{self.config_dir / 'vmailbox'}",
            "virtual_uid_maps": f"static:{uid}",
            "virtual_gid_maps": f"static:{gid}",
            "smtpd_relay_restrictions": (
                "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination"
            ),
            # Tests send bursts and bad commands on purpose; don't slow them down.
            "smtpd_error_sleep_time": "0s",
            "in_flow_delay": "0s",
        }
        if self.outbound == "sink":
            params["relayhost"] = f"[{self.host}]:{self.sink_port}"
        else:
            params["default_transport"] = "discard:outside mail is discarded by the test harness"
        if self.dovecot is not None:
            params.update(
                {
                    "smtpd_sasl_auth_enable": "yes",
                    "smtpd_sasl_type": "dovecot",
                    "smtpd_sasl_path": "private/auth",
                    "smtpd_sasl_authenticated_header": "yes",
                }
            )
        if self.tls:
            params.update(
                {
                    "smtpd_tls_cert_file": str(self.config_dir / "tls.crt"),
                    "smtpd_tls_key_file": str(self.config_dir / "tls.key"),
                    "smtpd_tls_security_level": "may",
                    "smtpd_tls_loglevel": "1",
                }
            )
        params.update(self.main_cf_overrides)
        return params

    def master_cf_text(self) -> str:
        """The master.cf this instance writes."""
        lines = [
            "# Written by tests/server/harness.py; smtpd listens on 127.0.0.1 only.",
            f"{self.host}:{self.smtp_port} inet n - n - - smtpd",
        ]
        if self.submission_port is not None:
            lines += [
                f"{self.host}:{self.submission_port} inet n - n - - smtpd",
                "  -o syslog_name=postfix/submission",
                "  -o smtpd_sasl_auth_enable=yes",
                "  -o smtpd_client_restrictions=permit_sasl_authenticated,reject",
                "  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject",
                "  -o milter_macro_daemon_name=ORIGINATING",
            ]
            if self.tls:
                lines += ["  -o smtpd_tls_security_level=encrypt", "  -o smtpd_tls_auth_only=yes"]
        return "\n".join(lines) + "\n" + MASTER_CF_SERVICES + self.master_cf_extra

    def _write_config(self) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "main.cf").write_text(
            "# Written by tests/server/harness.py for one test run; not read from /etc/postfix.\n"
            + "".join(f"{name} = {value}\n" for name, value in self.main_cf_params().items())
        )
        (self.config_dir / "master.cf").write_text(self.master_cf_text())
        if self.tls and not (self.config_dir / "tls.crt").exists():
            self._make_certificate()
        # texthash: maps need no postmap; a trailing slash means Maildir delivery.
        (self.config_dir / "vmailbox").write_text(
            "".join(f"{self.address(user)} {user}/Maildir/\n" for user in self.users)
        )
        # Postfix re-reads a table file whose mtime is this very second (it may still be
        # being edited), sleeping 300 ms per try: ~2 s on every fresh start. Backdate them.
        past = time.time() - 10
        for path in self.config_dir.iterdir():
            os.utime(path, (past, past))

    def _make_certificate(self) -> None:
        # An EC key: generated in milliseconds, unlike RSA on a loaded machine.
        key, crt = self.config_dir / "tls.key", self.config_dir / "tls.crt"
        result = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(key), "-out", str(crt), "-days", "7",
             "-subj", f"/CN={self.hostname}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            raise HarnessError(f"openssl could not make a test certificate: {result.stderr.strip()}")
        key.chmod(0o600)

    def _prepare_dirs(self) -> None:
        uid, gid = _mail_ids()
        postfix_account = pwd.getpwnam("postfix")
        # postfix(1) chdirs into the queue before it creates anything; post-install
        # (run by "postfix start") makes the subdirectories with the right owners.
        self.queue_dir.mkdir(exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        os.chown(self.data_dir, postfix_account.pw_uid, postfix_account.pw_gid)
        self.data_dir.chmod(0o700)
        self.mail_root.mkdir(exist_ok=True)
        os.chown(self.mail_root, uid, gid)
        for user in self.users:
            for path in (self.mail_root / user, self.mailbox(user)):
                path.mkdir(exist_ok=True)
                os.chown(path, uid, gid)
                path.chmod(0o700)
            for sub in ("cur", "new", "tmp"):
                path = self.mailbox(user) / sub
                path.mkdir(exist_ok=True)
                os.chown(path, uid, gid)
                path.chmod(0o700)

    # life cycle -------------------------------------------------------------------
    def start(self) -> Postfix:
        """Write the configuration, start the sink, Postfix and (if needed) Dovecot; wait for banners."""
        if self.running:
            return self
        self._check_workdir_free()
        for attempt in range(PORT_ATTEMPTS):
            try:
                return self._start_once()
            except PortClashError:
                if attempt == PORT_ATTEMPTS - 1:
                    raise
                self.smtp_port = free_port()
                if self.submission_port is not None:
                    self.submission_port = free_port()
                if self.sink_port is not None:
                    self.sink_port = free_port()
        raise AssertionError("unreachable")

    def _start_once(self) -> Postfix:
        self._write_config()
        self._prepare_dirs()
        self.running = True
        try:
            if self.outbound == "sink":
                self._start_sink()
            self._make_queue_layout()
            result = self._postfix_start()
            if result.returncode != 0 and ADDRESS_IN_USE not in self._log_tail():
                # Not the layout this Postfix expects: let postfix-script check and fix it.
                (self.queue_dir / "quick-start").unlink(missing_ok=True)
                result = self._postfix_start()
            if result.returncode != 0:
                tail = self._log_tail()
                error = PortClashError if ADDRESS_IN_USE in tail else HarnessError
                raise error(f"postfix start failed ({result.returncode}): {result.stderr.strip()}" + tail)
            self._master_pid = self._read_master_pid()
            if self.dovecot is not None:
                self._attach_dovecot()
            ports = [self.smtp_port] + ([self.submission_port] if self.submission_port else [])
            for port in ports:
                wait_until(
                    lambda port=port: self._smtp_ready(port),
                    START_TIMEOUT,
                    f"Postfix SMTP banner on port {port}",
                    self._log_tail,
                )
        except BaseException:
            self.stop()
            raise
        return self

    def _postfix_start(self) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["postfix", "-c", str(self.config_dir), "start"],
            capture_output=True,
            text=True,
            timeout=120,
        )

    def _make_queue_layout(self) -> None:
        for name, owner, group, mode in QUEUE_LAYOUT:
            path = self.queue_dir / name
            path.mkdir(exist_ok=True)
            os.chown(path, pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid)
            path.chmod(mode)
        (self.queue_dir / "quick-start").touch()

    def _start_sink(self) -> None:
        # smtp-sink answers 250 to everything: "outside" mail is accepted and logged as sent.
        self._sink = subprocess.Popen(
            ["smtp-sink", "-u", "postfix", f"{self.host}:{self.sink_port}", "64"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        (self.runtime / "sink.pid").write_text(str(self._sink.pid))
        sink = self._sink

        def ready() -> bool:
            if sink.poll() is not None:
                # smtp-sink binds at once; exiting before answering means the port was taken.
                raise PortClashError(f"smtp-sink exited ({sink.returncode}) on port {self.sink_port}")
            banner = read_banner(self.host, self.sink_port, PROBE_TIMEOUT, goodbye=b"QUIT\r\n")
            return bool(banner and banner.startswith(b"220"))

        wait_until(ready, START_TIMEOUT, f"smtp-sink on port {self.sink_port}")

    def _attach_dovecot(self) -> None:
        socket_path = self.queue_dir / "private" / "auth"
        assert self.dovecot is not None
        if self.dovecot.auth_socket != socket_path:
            self.dovecot.add_auth_listener(socket_path, user="postfix", group="postfix")
        if not self.dovecot.running:
            self.dovecot.start()
            self._started_dovecot = True
        wait_until(socket_path.exists, START_TIMEOUT, f"Dovecot auth socket {socket_path}")

    def _read_master_pid(self) -> int | None:
        try:
            return int((self.queue_dir / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _smtp_ready(self, port: int) -> bool:
        if self._master_pid is not None and not _pid_running(self._master_pid):
            raise HarnessError("the Postfix master process exited" + self._log_tail())
        # The probe connects from 127.0.0.1, which scenarios never use as a client address.
        banner = read_banner(self.host, port, PROBE_TIMEOUT, goodbye=b"QUIT\r\n")
        return bool(banner and banner.startswith(b"220 "))

    def _log_tail(self) -> str:
        return _tail(self.log_path)

    def reload(self) -> None:
        """Rewrite main.cf/master.cf from the current settings and ``postfix reload``."""
        self._write_config()
        subprocess.run(
            ["postfix", "-c", str(self.config_dir), "reload"],
            capture_output=True,
            check=True,
            timeout=60,
        )

    def stop(self) -> None:
        """Stop master and all its children, the sink, and Dovecot if this instance started it."""
        self.running = False
        pid = self._master_pid or self._read_master_pid()
        self._master_pid = None
        if pid is not None and _pid_running(pid):
            try:
                os.kill(pid, signal.SIGTERM)  # master passes it on to its process group
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 15
            while _pid_running(pid) and time.monotonic() < deadline:
                time.sleep(POLL_INTERVAL)
        if pid is not None:
            _kill_group(pid)  # master runs setsid(): its group id is its pid
        sink, self._sink = self._sink, None
        if sink is not None:
            _kill_group(sink.pid)
            try:
                sink.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self._started_dovecot and self.dovecot is not None:
            self.dovecot.stop()
            self._started_dovecot = False

    # waiting for mail ----------------------------------------------------------------
    def queued_files(self, include_deferred: bool = True) -> list[Path]:
        """Message files still in the queue (maildrop, incoming, active, and deferred)."""
        names = ACTIVE_QUEUES + (("deferred",) if include_deferred else ())
        files: list[Path] = []
        for name in names:
            for root, _dirs, entries in os.walk(self.queue_dir / name):
                files += [Path(root) / entry for entry in entries]
        return files

    def open_queue_ids(self) -> set[str]:
        """Queue ids the log has seen but not yet finished (no "removed"/reject line)."""
        seen: set[str] = set()
        done: set[str] = set()
        for line in self.iter_log_lines():
            match = QUEUE_ID_LINE.search(line)
            if match is None:
                continue
            queue_id, what = match.groups()
            seen.add(queue_id)
            if what in QUEUE_ID_FINAL:
                done.add(queue_id)
        return seen - done

    def wait_for_queue_empty(self, timeout: float = 20, *, include_deferred: bool = True) -> None:
        """Wait until every accepted message has left the queue and its last log line is written.

        With ``include_deferred=False`` deferred mail counts as settled. Raises
        HarnessError (with ``postqueue -p`` and the log tail) on timeout.
        """

        def settled() -> bool:
            if self.queued_files(include_deferred):
                return False
            open_ids = self.open_queue_ids()
            if not include_deferred:
                open_ids -= {p.name for p in self.queued_files(True)}
            return not open_ids

        wait_until(settled, timeout, "the Postfix queue to empty", self._queue_report)

    def _queue_report(self) -> str:
        listing = subprocess.run(
            ["postqueue", "-c", str(self.config_dir), "-p"], capture_output=True, text=True
        ).stdout
        return f"\nopen queue ids: {sorted(self.open_queue_ids())}\n{listing}" + self._log_tail()

    def iter_log_lines(self) -> Iterator[str]:
        """The maillog so far, line by line (streamed; no line endings)."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as log:
                for line in log:
                    yield line.rstrip("\n")
        except FileNotFoundError:
            return

    def log_lines(self) -> list[str]:
        """The maillog so far, one string per line."""
        return list(self.iter_log_lines())

    def wait_for_log(self, pattern: str | re.Pattern[str], timeout: float = 15) -> str:
        """The first maillog line containing ``pattern`` (a substring or compiled regex)."""

        def find() -> str | None:
            for line in self.iter_log_lines():
                if (pattern.search(line) if isinstance(pattern, re.Pattern) else pattern in line):
                    return line
            return None

        return wait_until(find, timeout, f"maillog line matching {pattern!r}", self._log_tail)
