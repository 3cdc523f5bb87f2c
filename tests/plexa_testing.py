"""Helpers shared by the pytest suites (integration, launchers, soak): find
the build's commands and the processes a test started, and wait for
conditions. Tests find their processes by an environment entry (each test
gets its own PLEXA_DIR), never by name, so nothing else on the machine is
touched."""
import os
import struct
import time

BUILD = os.path.abspath(os.environ.get("PLX_BUILD_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "build"))
BIN = os.path.join(BUILD, "bin")


def protocol_version():
    """PLX_PROTOCOL_VERSION of the build under test (include/plexa/version.h)."""
    with open(os.path.join(BUILD, "include", "plexa", "version.h")) as f:
        for line in f:
            if line.startswith("#define PLX_PROTOCOL_VERSION"):
                return int(line.split()[2])
    raise RuntimeError("no PLX_PROTOCOL_VERSION in the build's version.h")


def tool(name):
    """Full path of a command of the build under test."""
    return os.path.join(BIN, name)


def alive(pid):
    """True if pid runs. A zombie waiting for its parent (PID 1 reaps
    orphans lazily here) is dead."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_for(cond, timeout=10.0, interval=0.02):
    """Poll cond() until it is true or timeout seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(interval)
    return cond()


def processes_with_env(key, value):
    """Pids of live processes (not this one) whose environment has key=value."""
    needle = f"{key}={value}".encode()
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if needle in env and alive(int(d)):
            pids.append(int(d))
    return pids


def rss_mib(pid):
    """Resident memory of process pid, MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


# ---- plexa's wire written by hand, as an attacker or a broken peer would -------
# (a minimal protobuf encoder for the few fields the tests need)

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(num, wire, payload):
    key = varint(num << 3 | wire)
    if wire == 0:
        return key + varint(payload)
    return key + varint(len(payload)) + payload


def hello(role, token, version=None, hostname=None, engine_id=None):
    """Envelope{id=1, hello={role, token, version, ...}} (role: 1 engine,
    2 mec, 3 task, 4 status)."""
    body = field(1, 0, role) + field(2, 2, token.encode()) + \
        field(3, 0, protocol_version() if version is None else version)
    if engine_id is not None:
        body += field(4, 0, engine_id * 2)   # sint32, zigzag
    if hostname is not None:
        body += field(5, 2, hostname.encode())
    return field(1, 0, 1) + field(10, 2, body)


def frame_header(env_len, nbufs):
    return b"PLX1" + struct.pack("<II", env_len, nbufs)


def frame(envelope, bufs=()):
    out = frame_header(len(envelope), len(bufs)) + envelope
    for b in bufs:
        out += struct.pack("<Q", len(b)) + b
    return out


def _terminated(signum, frame):
    raise KeyboardInterrupt("terminated (signal %d)" % signum)


def tear_down_on_sigterm():
    """A SIGTERM (timeout(1), a kill, a CI runner stopping the job) stops
    the run as Ctrl-C does, so that pytest still tears the fixtures down:
    the clusters, users and daemons a suite started are stopped instead of
    outliving it. (A SIGKILL cannot be caught: ctest's own timeout still
    leaves a daemonized ipcluster behind.)"""
    import signal
    signal.signal(signal.SIGTERM, _terminated)
