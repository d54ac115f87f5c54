"""Start and stop the local stand-ins of the runtime tier.

Every server runs in its own process group (``start_new_session``) so that
stopping it kills its children too (uvicorn workers, nginx workers), and only
those: nothing here looks processes up by name.
"""
from __future__ import annotations

import base64
import fcntl
import io
import os
import random
import secrets
import shlex
import shutil
import signal
import socket
import string
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

from modules.mlflow_instance import UNIT_PATH, BootstrapInputs

PG_BIN = Path("/usr/lib/postgresql/15/bin")
MARIADB_BIN = Path("/usr/sbin/mariadbd")
NGINX_BIN = shutil.which("nginx") or "/usr/sbin/nginx"
DB_NAME = "mlflow"
DB_USER = "mlflow"
# URL-special characters on purpose: the launcher must quote them. No quote or
# backslash, so it can go into SQL string literals verbatim.
DB_PASSWORD = "Runtime-p@ss:w/rd%25+&=?#x"


def missing_tools() -> list[str]:
    problems = []
    if os.geteuid() != 0:
        problems.append("not root (PostgreSQL runs as the postgres user)")
    for tool in ("nginx", "shellcheck", "openssl", "mariadb", "mariadb-install-db"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            problems.append(f"{tool} not installed")
    if not MARIADB_BIN.exists():
        problems.append(f"{MARIADB_BIN} missing")
    if not (PG_BIN / "postgres").exists():
        problems.append(f"PostgreSQL 15 missing ({PG_BIN})")
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        problems.append("no postgres user")
    return problems


# Ports for the test servers come from below Linux's ephemeral range (32768-60999
# by default), which bind(0) and outgoing connections draw from, so nothing else
# on the machine is handed one between our check and the server's bind. Each port
# is also held by an flock for the life of the test process, so concurrent test
# sessions never pick the same one.
PORT_RANGE = range(20000, 32000)
PORT_LOCKS = Path(tempfile.gettempdir()) / "mlflow-runtime-ports"
_held_ports: dict[int, object] = {}


def free_port() -> int:
    """A loopback port no other test process holds, free when checked, held until this process ends."""
    PORT_LOCKS.mkdir(mode=0o777, exist_ok=True)
    rng = random.Random(os.getpid() * 1_000_003 + time.monotonic_ns())
    for _ in range(500):
        port = rng.choice(PORT_RANGE)
        if port in _held_ports:
            continue
        lock = open(PORT_LOCKS / f"{port}.lock", "a")  # noqa: SIM115 (held open on purpose)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                lock.close()  # in use by something else: releases the flock
                continue
        _held_ports[port] = lock
        return port
    raise RuntimeError(f"no free port in {PORT_RANGE}")


def address_in_use(log: Path) -> bool:
    """Whether a server's log says its port was taken (then start() picks another and retries)."""
    text = tail(log, 80).lower()
    return "address already in use" in text or "errno 98" in text or "could not bind" in text


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return f"(no {path})"
    return "\n".join(text.splitlines()[-lines:])


def http_status(url: str, headers: Optional[Mapping[str, str]] = None, timeout: float = 5) -> int:
    """Status code of a GET, 0 when nothing answers."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Service:
    """A process started in a new process group, logging to a file."""

    def __init__(self, name: str, argv: Sequence[str], log: Path, *,
                 env: Optional[Mapping[str, str]] = None, cwd: Optional[Path] = None,
                 user: Optional[str] = None, stop_signal: int = signal.SIGTERM):
        self.name, self.argv, self.log = name, list(argv), Path(log)
        self.env, self.cwd, self.user, self.stop_signal = env, cwd, user, stop_signal
        self.proc: Optional[subprocess.Popen] = None

    @property
    def pgid(self) -> int:
        assert self.proc is not None
        return self.proc.pid  # leader of its own session and group

    def start(self) -> "Service":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=dict(self.env) if self.env is not None else None,
                cwd=self.cwd, user=self.user, start_new_session=True,
            )
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def group_pids(self) -> list[int]:
        """Live processes of the group (zombies excluded)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[2]) == self.pgid and fields[0] != "Z":
                pids.append(int(entry.name))
        return pids

    def stop(self, timeout: float = 15) -> None:
        """Signal the whole group, then SIGKILL what is left of it."""
        if self.proc is None:
            return
        for sig, wait in ((self.stop_signal, timeout), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                self.proc.poll()
                if not self.group_pids():
                    break
                time.sleep(0.1)
            else:
                continue
            break
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass

    def describe(self) -> str:
        code = None if self.proc is None else self.proc.poll()
        return f"{self.name} (exit code {code}); log {self.log}:\n{tail(self.log)}"


def wait_until(check: Callable[[], bool], what: str, timeout: float,
               service: Optional[Service] = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if service is not None and not service.running():
            raise AssertionError(f"{what}: {service.name} exited\n{service.describe()}")
        time.sleep(0.2)
    detail = f"\n{service.describe()}" if service is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")


def run(argv: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, argv))} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def extract(bundle, directory: Path) -> Path:
    """Unpack a bootstrap bundle (modules.mlflow_instance.Bundle) into directory."""
    directory.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(bundle.data), mode="r:gz") as tar:
        tar.extractall(directory, filter="data")
    return directory


# --- TLS ---------------------------------------------------------------------

@dataclass(frozen=True)
class TLS:
    ca_cert: Path
    server_cert: Path
    server_key: Path


def make_tls(directory: Path) -> TLS:
    """A CA and a server certificate for 127.0.0.1/localhost, valid two days."""
    directory.mkdir(mode=0o755)
    d = str(directory)
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=mlflow runtime test CA", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.crt",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-keyout", f"{d}/server.key", "-out", f"{d}/server.csr"])
    (directory / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    run(["openssl", "x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.crt",
         "-CAkey", f"{d}/ca.key", "-CAcreateserial", "-days", "2",
         "-extfile", f"{d}/server.ext", "-out", f"{d}/server.crt"])
    (directory / "ca.crt").chmod(0o644)
    (directory / "server.crt").chmod(0o644)
    return TLS(directory / "ca.crt", directory / "server.crt", directory / "server.key")


# --- moto (S3 and SSM) -----------------------------------------------------------

class Moto:
    def __init__(self, log: Path, port: Optional[int] = None):
        self.log = log
        self.port = port or free_port()
        self.service: Optional[Service] = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, attempts: int = 3) -> None:
        for attempt in range(1, attempts + 1):
            self.service = Service("moto", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                            "-p", str(self.port)], self.log)
            self.service.start()
            try:
                wait_until(lambda: http_status(f"{self.endpoint}/moto-api/") == 200,
                           "moto server", 60, self.service)
                return
            except AssertionError:
                if attempt == attempts or self.service.running() or not address_in_use(self.log):
                    raise
                self.port = free_port()

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()

    def client(self, name: str):
        import boto3

        return boto3.client(name, endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")


# --- databases -------------------------------------------------------------------

class Database:
    engine = ""

    def __init__(self, directory: Path, tls: TLS):
        self.dir = directory
        self.tls = tls
        self.port = free_port()
        self.host = "127.0.0.1"
        self.name, self.user, self.password = DB_NAME, DB_USER, DB_PASSWORD
        self.service: Optional[Service] = None

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()


class Postgres(Database):
    """PostgreSQL 15 as the postgres user; TCP only with TLS (hostssl), scram."""

    engine = "postgres"

    def start(self) -> None:
        import pwd

        pg = pwd.getpwnam("postgres")
        self.dir.mkdir(mode=0o700)
        os.chown(self.dir, pg.pw_uid, pg.pw_gid)
        data, sock = self.dir / "data", self.dir
        for name, src in (("server.crt", self.tls.server_cert), ("server.key", self.tls.server_key)):
            shutil.copy(src, self.dir / name)
            os.chown(self.dir / name, pg.pw_uid, pg.pw_gid)
            (self.dir / name).chmod(0o600)
        env = {"PATH": f"{PG_BIN}:/usr/bin:/bin", "HOME": str(self.dir), "LANG": "C.UTF-8"}
        run([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8",
             "--locale=C", "--auth-local=trust", "--auth-host=reject", "--no-sync"],
            user="postgres", env=env, cwd=self.dir)
        with open(data / "postgresql.conf", "a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{sock}'\n"
                f"ssl = on\nssl_cert_file = '{self.dir}/server.crt'\n"
                f"ssl_key_file = '{self.dir}/server.key'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )
        # Only the postgres superuser over the socket; everyone else TLS + password.
        (data / "pg_hba.conf").write_text(
            "local all postgres trust\n"
            "hostssl all all 127.0.0.1/32 scram-sha-256\n"
        )
        for attempt in range(1, 4):
            with open(data / "postgresql.conf", "a") as conf:
                conf.write(f"port = {self.port}\n")  # the last one counts
            self.service = Service("postgres", [str(PG_BIN / "postgres"), "-D", str(data)],
                                   self.dir / "postgres.log", env=env, cwd=self.dir,
                                   user="postgres", stop_signal=signal.SIGINT)
            self.service.start()
            try:
                wait_until(lambda: subprocess.run(
                    [str(PG_BIN / "pg_isready"), "-q", "-h", str(sock), "-p", str(self.port)]
                ).returncode == 0, "PostgreSQL", 60, self.service)
                break
            except AssertionError:
                if attempt == 3 or self.service.running() or not address_in_use(self.service.log):
                    raise
                self.port = free_port()

        import psycopg2
        from psycopg2 import sql

        conn = psycopg2.connect(host=str(sock), port=self.port, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            # CREATEDB like the RDS master user: the launcher creates the auth database.
            cur.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                sql.Identifier(self.user), sql.Literal(self.password)))
            cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(self.name), sql.Identifier(self.user)))
        conn.close()

    def _superuser(self):
        import psycopg2

        conn = psycopg2.connect(host=str(self.dir), port=self.port, user="postgres", dbname="postgres")
        conn.autocommit = True
        return conn

    def set_password(self, password: str) -> None:
        """ALTER ROLE ... PASSWORD, as the superuser over the socket (existing sessions stay)."""
        from psycopg2 import sql

        conn = self._superuser()
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(self.user), sql.Literal(password)))
        finally:
            conn.close()
        self.password = password

    def end_sessions(self) -> int:
        """pg_terminate_backend on every session of the user; how many were ended."""
        conn = self._superuser()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE usename = %s", (self.user,))
                return cur.fetchone()[0]
        finally:
            conn.close()


class MariaDB(Database):
    """MariaDB 10.11 (the MySQL stand-in) with its own datadir; TLS required."""

    engine = "mysql"

    def start(self) -> None:
        self.dir.mkdir(mode=0o700)
        data = self.dir / "data"
        self.socket = self.dir / "mysqld.sock"
        cnf = self.dir / "my.cnf"
        self._cnf = lambda: cnf.write_text(
            "[mysqld]\n"
            f"datadir={data}\nport={self.port}\nbind-address=127.0.0.1\n"
            f"socket={self.socket}\npid-file={self.dir}/mysqld.pid\n"
            f"log-error={self.dir}/error.log\nuser=root\n"
            f"ssl-ca={self.tls.ca_cert}\nssl-cert={self.tls.server_cert}\n"
            f"ssl-key={self.tls.server_key}\nrequire-secure-transport=ON\n"
            "skip-name-resolve\nskip-log-bin\ninnodb-buffer-pool-size=64M\n"
            "innodb-flush-log-at-trx-commit=0\ninnodb-doublewrite=0\n"
            "character-set-server=utf8mb4\ncollation-server=utf8mb4_general_ci\n"
            "[client]\n"
            f"socket={self.socket}\nuser=root\n"
        )
        self._cnf()
        run(["mariadb-install-db", f"--defaults-file={cnf}", "--auth-root-authentication-method=socket",
             "--skip-test-db", "--user=root"], cwd=self.dir)
        client = ["mariadb", f"--defaults-file={cnf}"]
        for attempt in range(1, 4):
            self._cnf()
            self.service = Service("mariadb", [str(MARIADB_BIN), f"--defaults-file={cnf}"],
                                   self.dir / "mariadbd.out", cwd=self.dir)
            self.service.start()
            try:
                wait_until(lambda: subprocess.run(client + ["-e", "SELECT 1"], capture_output=True
                                                  ).returncode == 0, "MariaDB", 60, self.service)
                break
            except AssertionError:
                if attempt == 3 or self.service.running() or not address_in_use(self.dir / "error.log"):
                    raise
                self.port = free_port()
        run(client, input=(
            f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4;\n"
            f"CREATE USER '{self.user}'@'%' IDENTIFIED BY '{self.password}' REQUIRE SSL;\n"
            # Global privileges like the RDS master user: the launcher creates the auth database.
            f"GRANT ALL PRIVILEGES ON *.* TO '{self.user}'@'%';\n"
        ))

    def _sql(self, statements: str) -> str:
        """Statements as root over the socket, on stdin (no secret in a command line)."""
        return run(["mariadb", f"--defaults-file={self.dir / 'my.cnf'}", "--batch", "--skip-column-names"],
                   input=statements).stdout

    def set_password(self, password: str) -> None:
        """ALTER USER ... IDENTIFIED BY (existing sessions stay)."""
        self._sql(f"ALTER USER '{self.user}'@'%' IDENTIFIED BY '{password}';\n")
        self.password = password

    def end_sessions(self) -> int:
        """KILL every session of the user; how many were ended."""
        ids = self._sql(f"SELECT id FROM information_schema.processlist WHERE user = '{self.user}';\n").split()
        if ids:
            self._sql("".join(f"KILL CONNECTION {int(i)};\n" for i in ids))
        return len(ids)

    def describe(self) -> str:
        return tail(self.dir / "error.log")


# --- one instance: the rendered bundle run as systemd would, behind nginx ---------

ALLOWED_HOSTS = "mlflow.example.test, internal-mlflow-123.us-east-1.elb.example"
ALPHANUMERIC = string.ascii_letters + string.digits  # what the product's generated secrets use


def random_secret(length: int) -> str:
    return "".join(secrets.choice(ALPHANUMERIC) for _ in range(length))


def basic_auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def inputs_for(engine: str, work: Path, ca_bundle: Path, **overrides) -> BootstrapInputs:
    fields = dict(
        region="us-east-1",
        ssm_prefix=f"/mlflow/runtime-{engine}",
        log_group_mlflow="/mlflow/runtime/mlflow",
        log_group_nginx="/mlflow/runtime/nginx",
        log_group_system="/mlflow/runtime/system",
        mlflow_version="3.17.2",
        db_engine=engine,
        metrics_namespace="MLflow/runtime-test",
        mlflow_port=free_port(),
        http_port=free_port(),
        workers=2,
        db_connections=25,  # the default settings' budget with postgres (modules/db_budget.py)
        state_dir=str(work / "state"),
        log_dir=str(work / "log"),
        ca_bundle_path=str(ca_bundle),
    )
    fields.update(overrides)
    return BootstrapInputs(**fields)


def unit_settings(unit: str) -> tuple[dict[str, str], list[str], dict[str, str]]:
    """(Environment=, ExecStart= argv, other [Service] keys) of a rendered unit."""
    env: dict[str, str] = {}
    keys: dict[str, str] = {}
    argv: list[str] = []
    for line in unit.splitlines():
        if line.startswith("Environment="):
            for assignment in shlex.split(line[len("Environment="):]):
                name, _, value = assignment.partition("=")
                env[name] = value
        elif line.startswith("ExecStart="):
            argv = shlex.split(line[len("ExecStart="):])
        elif "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            keys[key] = value
    return env, argv, keys


def env_file(path: Path) -> dict[str, str]:
    """An EnvironmentFile= as systemd reads the ones we write: KEY=VALUE lines, '#' comments."""
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def unpack(bundle, work: Path) -> Path:
    """The bundle's files under a fake root (work/root), as bootstrap.sh installs them."""
    extract(bundle, work / "bundle")
    root = work / "root"
    (work / "bundle" / "files").rename(root)
    return root


class Instance:
    """The launcher of one rendered bundle, run as systemd would, with MLflow's locked venv."""

    def __init__(self, inputs: BootstrapInputs, work: Path, root: Path, venv: Path, endpoint: str, request):
        self.inputs, self.work, self.root, self.venv, self.request = inputs, work, root, venv, request
        unit_env, self.exec_start, self.unit_keys = unit_settings((root / UNIT_PATH.lstrip("/")).read_text())
        self.log_file = Path(self.unit_keys["StandardOutput"].removeprefix("append:"))
        self.runtime_dir = work / "run" / self.unit_keys.get("RuntimeDirectory", "mlflow")
        self.runtime_dir.mkdir(parents=True, mode=0o700, exist_ok=True)
        for directory in (inputs.state_dir, inputs.log_dir):
            Path(directory).mkdir(parents=True, exist_ok=True)
        launcher_env = env_file(root / self.unit_keys["EnvironmentFile"].lstrip("/"))
        self.env = {"PATH": SYSTEMD_PATH, "LANG": "C.UTF-8", **unit_env, **launcher_env,
                    "RUNTIME_DIRECTORY": str(self.runtime_dir),
                    "AWS_ENDPOINT_URL": endpoint,
                    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

    def service(self) -> Service:
        """ExecStart= with the venv of the lock and the launcher from the bundle."""
        argv = [str(self.venv / "bin" / "python"), str(self.root / self.exec_start[1].lstrip("/"))]
        service = Service(f"mlflow {self.inputs.mlflow_version} ({self.inputs.db_engine})", argv,
                          self.log_file, env=self.env, cwd=Path(self.unit_keys["WorkingDirectory"]))
        self.request.addfinalizer(service.stop)
        return service


def put_parameters(ssm, inputs: BootstrapInputs, values: dict[str, str]) -> None:
    """The SSM parameters under the names the bundle's launcher.env gives, as Terraform would create them."""
    secret_keys = ("db/password", "mlflow/admin_password", "mlflow/flask_secret_key")
    for key, name in inputs.parameter_names.items():
        if key in values:
            ssm.put_parameter(Name=name, Value=values[key], Overwrite=True,
                              Type="SecureString" if key in secret_keys else "String")



def nginx_test_conf(directory: Path, site: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "nginx.conf"
    d = directory
    conf.write_text(
        "daemon off;\nmaster_process on;\nworker_processes 1;\n"
        f"pid {d}/nginx.pid;\nerror_log {d}/error.log info;\n"
        "events { worker_connections 128; }\n"
        "http {\n"
        "    log_format routed '$request_method $uri $status $upstream_addr';\n"  # which server answered
        f"    access_log {d}/access.log routed;\n"
        f"    client_body_temp_path {d}/client_body;\n    proxy_temp_path {d}/proxy;\n"
        f"    fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n"
        f"    scgi_temp_path {d}/scgi;\n"
        f"    include {site};\n"
        "}\n"
    )
    return conf


def nginx_check(conf: Path) -> None:
    run([NGINX_BIN, "-t", "-q", "-c", str(conf), "-p", str(conf.parent), "-e", str(conf.parent / "error.log")])


@dataclass
class Deployment:
    """One booted instance: the launcher's MLflow behind nginx, with its SSM parameters and bucket."""

    inputs: BootstrapInputs
    bundle: object
    root: Path
    venv: Path
    instance: Instance
    service: Service  # the launcher, then its supervisor (the same PID)
    nginx: Service
    base: str  # nginx's URL
    ssm: object
    parameters: dict[str, str]
    bucket: str
    start_seconds: float  # launcher start to /health 200 through nginx


def boot_deployment(database, moto_server, locked_venv, work: Path, tls: TLS, request,
                    name: str = "runtime", **overrides) -> Deployment:
    """Render, unpack and install the bundle, put its SSM parameters and bucket (as Terraform would),
    start nginx (502 until MLflow is up), then the launcher, and wait for /health through nginx.

    ``name`` keeps the bucket and SSM names of tests sharing one moto server apart."""
    from modules.mlflow_instance import NGINX_SITE_PATH, build_bundle

    engine = database.engine
    inputs = inputs_for(engine, work, tls.ca_cert, **{"ssm_prefix": f"/mlflow/{name}-{engine}", **overrides})
    bundle = build_bundle(inputs)
    root = unpack(bundle, work)
    venv = locked_venv(bundle)
    instance = Instance(inputs, work, root, venv, moto_server.endpoint, request)

    bucket = f"mlflow-{name}-{engine}"
    moto_server.client("s3").create_bucket(Bucket=bucket)
    ssm = moto_server.client("ssm")
    parameters = {
        "db/host": database.host, "db/port": str(database.port), "db/name": database.name,
        "db/username": database.user, "db/password": database.password,
        "cache/endpoint": "cache.example.test", "cache/port": "6379",
        "mlflow/artifact_bucket": bucket, "mlflow/allowed_hosts": ALLOWED_HOSTS,
        "mlflow/admin_password": random_secret(32), "mlflow/flask_secret_key": random_secret(64),
    }
    put_parameters(ssm, inputs, parameters)

    nginx_conf = nginx_test_conf(work / "nginx", root / NGINX_SITE_PATH.lstrip("/"))
    nginx_check(nginx_conf)
    nginx = Service("nginx", [NGINX_BIN, "-c", str(nginx_conf), "-p", str(nginx_conf.parent),
                              "-e", str(nginx_conf.parent / "error.log")],
                    work / "nginx" / "stdout.log")
    request.addfinalizer(nginx.stop)
    nginx.start()
    base = f"http://127.0.0.1:{inputs.http_port}"
    wait_until(lambda: http_status(f"{base}/health") == 502, "nginx (502 before MLflow starts)", 20, nginx)

    service = instance.service()
    started = time.monotonic()
    service.start()
    for port in (inputs.mlflow_port, inputs.mlflow_port + 1):  # the UI server, the API server
        wait_until(lambda: http_status(f"http://127.0.0.1:{port}/health") == 200,
                   f"MLflow /health on its own port {port}", 120, service)
    wait_until(lambda: http_status(f"{base}/health") == 200, "MLflow /health through nginx", 10, service)
    return Deployment(inputs, bundle, root, venv, instance, service, nginx, base, ssm, parameters, bucket,
                      time.monotonic() - started)
