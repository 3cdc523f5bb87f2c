"""Real batch systems on loopback for the batch launcher tests.

Slurm (munged + slurmctld + slurmd) and Grid Engine (sge_qmaster +
sge_execd) run as root from a private directory under /tmp, on free ports
of 127.0.0.1, with nothing in /etc touched. Each is stopped by the pids in
its own pid files, never by name. The recipes follow
/work/shared/reference/fixtures/{slurm,sge}/start.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from plexa_testing import alive, wait_for  # noqa: E402,F401

TORQUE_DIR = os.environ.get("PLX_TORQUE_DIR", "/opt/slurm-torque")
TORQUE_BIN = os.path.join(TORQUE_DIR, "usr", "bin")


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port_pair():
    """A port P with P+1 free too (the daemons take two)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p < 65000 and port_free(p) and port_free(p + 1):
            return p
    raise RuntimeError("no two consecutive free ports on 127.0.0.1")


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def stop_pid(pid, grace=5.0):
    """SIGTERM, then SIGKILL after grace seconds."""
    if not pid or not alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not wait_for(lambda: not alive(pid), grace):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_for(lambda: not alive(pid), 5)


def private_dir(prefix):
    """munged wants its socket's directory and all parents executable by
    everyone, so not under pytest's 0700 tmp_path."""
    d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(d, 0o711)
    return d


def daemon_env():
    """Our environment without plexa's variables, so no daemon (nor a job
    it starts without -V) is mistaken for a process of a test cluster."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("PLEXA_", "PLX_", "SLURM_", "SGE_"))}


def run(cmd, env, timeout=30, check=True):
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stdout}{p.stderr}")
    return p


class Slurm:
    """A one-node Slurm 22.05 cluster, partition 'debug', node 'localhost'
    with 2 CPUs."""

    missing = [b for b in ("munged", "slurmctld", "slurmd", "sbatch") if not shutil.which(b)]

    def __init__(self):
        self.dir = private_dir("plx-slurm-")
        self.port = free_port_pair()
        self.conf = self.path("slurm.conf")
        self.env = dict(daemon_env(), SLURM_CONF=self.conf)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def _munge(self):
        m = self.path("munge")
        os.makedirs(m, mode=0o711)
        os.chmod(m, 0o711)
        with open(self.path("munge", "munge.key"), "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(self.path("munge", "munge.key"), 0o400)
        run(["munged", f"--socket={m}/munge.socket", f"--key-file={m}/munge.key",
             f"--pid-file={m}/munged.pid", f"--log-file={m}/munged.log",
             f"--seed-file={m}/munged.seed", "--force"], self.env)

    def _write_conf(self):
        d = self.dir
        for sub in ("state", "spool", "log"):
            os.makedirs(self.path(sub))
        with open(self.conf, "w") as f:
            f.write(f"""ClusterName=plexatest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={self.port}
SlurmdPort={self.port + 1}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={d}/munge/munge.socket
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool/%n
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=2
Waittime=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
""")

    def start(self):
        self._munge()
        self._write_conf()
        run(["slurmctld", "-f", self.conf], self.env)       # daemonizes
        # -N: the node is 'localhost' whatever this machine's hostname is.
        run(["slurmd", "-f", self.conf, "-N", "localhost"], self.env)
        ok = wait_for(lambda: run(["sinfo", "-h", "-N", "-o", "%T"], self.env, check=False)
                      .stdout.strip() in ("idle", "mixed", "allocated"), 20, 0.1)
        if not ok:
            raise RuntimeError("slurm did not come up:\n" + self.logs())
        return self

    def logs(self):
        out = []
        for name in ("slurmctld.log", "slurmd.log"):
            try:
                with open(self.path("log", name)) as f:
                    out.append(f"--- {name}\n" + "".join(f.readlines()[-15:]))
            except OSError:
                pass
        return "\n".join(out)

    def jobs(self):
        """Jobs still queued or running: squeue's own lines."""
        p = run(["squeue", "-h", "-t", "PD,R,CG,CF,S,RQ,RH,RS,SI,SO,ST",
                 "-o", "%i %T %r"], self.env, check=False)
        assert p.returncode == 0, p.stderr
        return p.stdout.split("\n")[:-1]

    def job_env(self, extra=None):
        """Environment for ipcluster, sbatch and the wrappers."""
        env = dict(self.env)
        env.update(extra or {})
        return env

    def stop(self):
        pid = read_pid(self.path("slurmctld.pid"))
        if pid and alive(pid):
            # Jobs first, so slurmstepd and the job's processes go too.
            run(["scancel", "--full", "-u", "root"], self.env, check=False)
            wait_for(lambda: not run(["squeue", "-h", "-t", "R,CG"], self.env,
                                     check=False).stdout.strip(), 10, 0.1)
        for f in ("slurmd.pid", "slurmctld.pid", os.path.join("munge", "munged.pid")):
            stop_pid(read_pid(self.path(f)))
        pids = [read_pid(self.path(f)) for f in
                ("slurmd.pid", "slurmctld.pid", os.path.join("munge", "munged.pid"))]
        return [p for p in pids if p and alive(p)]

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class Sge:
    """A one-host (Son of) Grid Engine 8.1.9 cell: queue all.q with 2
    slots on this host, parallel environment 'mpi'."""

    missing = [p for p in ("/usr/sbin/sge_qmaster", "/usr/sbin/sge_execd",
                           "/usr/lib/gridengine/spoolinit", "/usr/lib/gridengine/qsub")
               if not os.path.exists(p)]

    def __init__(self):
        self.dir = private_dir("plx-sge-")
        self.port = free_port_pair()
        self.host = socket.gethostname()
        self.root = self.path("root")
        self.qspool = self.path("spool", "qmaster")
        self.espool = self.path("spool", "execd")
        self.env = dict(daemon_env(), SGE_ROOT=self.root, SGE_CELL="default",
                        SGE_QMASTER_PORT=str(self.port), SGE_EXECD_PORT=str(self.port + 1))
        self.env["PATH"] = "/usr/lib/gridengine:" + self.env.get("PATH", "/usr/bin:/bin")

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def _write(self, name, text):
        with open(name, "w") as f:
            f.write(text)

    def _cell(self):
        common = os.path.join(self.root, "default", "common")
        os.makedirs(common)
        os.makedirs(self.qspool)
        os.makedirs(self.espool)
        for x in ("bin", "lib", "utilbin", "util"):
            os.symlink(f"/var/lib/gridengine/{x}", os.path.join(self.root, x))
        self._write(os.path.join(common, "bootstrap"), f"""admin_user none
default_domain none
ignore_fqdn true
spooling_method classic
spooling_lib libspoolc
spooling_params {common};{self.qspool}
binary_path /usr/sbin
qmaster_spool_dir {self.qspool}
security_mode none
listener_threads 2
worker_threads 2
scheduler_threads 1
""")
        self._write(os.path.join(common, "act_qmaster"), self.host + "\n")
        # commlib refuses a client whose address resolves to another name
        # than its own (127.0.0.1 is 'localhost', the host is not): alias.
        names = [self.host, "localhost"]
        with open("/etc/hosts") as f:
            for line in f:
                w = line.split()
                if w and w[0] == "127.0.0.1":
                    names += [n for n in w[1:] if n not in names]
        self._write(os.path.join(common, "host_aliases"), " ".join(names) + "\n")
        return common

    def _global_conf(self, common):
        with open("/usr/share/gridengine/default-configuration") as f:
            lines = f.read().split("\n")
        repl = {"execd_spool_dir": self.espool, "min_uid": "0", "min_gid": "0",
                "load_report_time": "00:00:05"}
        out = [f"{ln.split()[0]} {repl[ln.split()[0]]}" if ln.split() and ln.split()[0] in repl
               else ln for ln in lines]
        self._write(self.path("global.conf"), "\n".join(out))
        spool = f"{common};{self.qspool}"
        run(["/usr/lib/gridengine/spoolinit", "classic", "libspoolc", spool, "init"], self.env)
        sd = "/usr/lib/gridengine/spooldefaults"
        run([sd, "configuration", self.path("global.conf")], self.env)
        run([sd, "complexes", "/usr/share/gridengine/util/resources/centry"], self.env)
        run([sd, "usersets", "/usr/share/gridengine/util/resources/usersets"], self.env)
        run([sd, "managers", "root"], self.env)
        run([sd, "adminhosts", self.host], self.env, check=False)

    def _objects(self):
        run(["qconf", "-as", self.host], self.env)
        sconf = run(["qconf", "-ssconf"], self.env).stdout
        fast = {"schedule_interval": "0:0:1", "flush_submit_sec": "1", "flush_finish_sec": "1"}
        sconf = "\n".join(f"{ln.split()[0]} {fast[ln.split()[0]]}"
                          if ln.split() and ln.split()[0] in fast else ln
                          for ln in sconf.split("\n"))
        self._write(self.path("sconf"), sconf)
        run(["qconf", "-Msconf", self.path("sconf")], self.env)
        self._write(self.path("exechost"), f"hostname {self.host}\nload_scaling NONE\n"
                    "complex_values NONE\nuser_lists NONE\nxuser_lists NONE\nprojects NONE\n"
                    "xprojects NONE\nusage_scaling NONE\nreport_variables NONE\n")
        run(["qconf", "-Ae", self.path("exechost")], self.env)
        self._write(self.path("pe"), "pe_name mpi\nslots 99\nuser_lists NONE\n"
                    "xuser_lists NONE\nstart_proc_args NONE\nstop_proc_args NONE\n"
                    "allocation_rule $fill_up\ncontrol_slaves TRUE\njob_is_first_task FALSE\n"
                    "urgency_slots min\naccounting_summary FALSE\nqsort_args NONE\n")
        run(["qconf", "-Ap", self.path("pe")], self.env)
        q = run(["qconf", "-sq"], self.env).stdout
        set_ = {"qname": "all.q", "hostlist": self.host, "slots": "2", "load_thresholds": "NONE",
                "pe_list": "mpi", "shell_start_mode": "unix_behavior",
                "tmpdir": self.path("tmp")}
        os.makedirs(self.path("tmp"))
        q = "\n".join(f"{ln.split()[0]} {set_[ln.split()[0]]}"
                      if ln.split() and ln.split()[0] in set_ else ln for ln in q.split("\n"))
        self._write(self.path("queue"), q)
        run(["qconf", "-Aq", self.path("queue")], self.env)

    def _execd_ready(self):
        p = run(["qstat", "-f", "-q", "all.q"], self.env, check=False)
        for line in p.stdout.split("\n"):
            w = line.split()
            if w and w[0] == f"all.q@{self.host}":
                # queuename qtype resv/used/tot load arch [states]
                return len(w) >= 5 and w[3] != "-NA-" and len(w) == 5
        return False

    def start(self):
        common = self._cell()
        self._global_conf(common)
        run(["/usr/sbin/sge_qmaster"], self.env)        # daemonizes
        if not wait_for(lambda: run(["qconf", "-sh"], self.env, check=False).returncode == 0,
                        20, 0.1):
            raise RuntimeError("sge_qmaster not answering:\n" + self.logs())
        self._objects()
        run(["/usr/sbin/sge_execd"], self.env)
        if not wait_for(self._execd_ready, 30, 0.1):
            raise RuntimeError("sge_execd did not register:\n" +
                               run(["qstat", "-f"], self.env, check=False).stdout + self.logs())
        return self

    def logs(self):
        try:
            with open(os.path.join(self.qspool, "messages")) as f:
                return "".join(f.readlines()[-15:])
        except OSError:
            return ""

    def pidfiles(self):
        out = [os.path.join(self.qspool, "qmaster.pid")]
        if os.path.isdir(self.espool):
            out += [os.path.join(self.espool, d, "execd.pid") for d in os.listdir(self.espool)]
        return out

    def jobs(self):
        """qstat's lines for jobs still in the cell."""
        p = run(["qstat", "-u", "*"], self.env, check=False)
        assert p.returncode == 0, p.stderr
        return [ln for ln in p.stdout.split("\n")[2:] if ln.strip()]

    def job_env(self, extra=None):
        env = dict(self.env)
        env.update(extra or {})
        return env

    def stop(self):
        qmaster = read_pid(os.path.join(self.qspool, "qmaster.pid"))
        if qmaster and alive(qmaster):
            run(["qdel", "-f", "-u", "*"], self.env, check=False)
        pids = [read_pid(f) for f in self.pidfiles()]
        execds = [p for p in pids[1:] if p]
        for p in execds:
            stop_pid(p, 5)
        # sge_qmaster's controlled shutdown takes ~9 s; the spool is thrown
        # away, so one second of grace is enough.
        stop_pid(qmaster, 1)
        return [p for p in pids if p and alive(p)]

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)
