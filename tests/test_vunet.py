"""vunet: network stacks per process tree (vunetvdestack on a VDE switch the test starts
in its own directory, vunetnull, vunetreal), as root and as nobody.

Traffic stays inside the VDE switch and the namespaces the stacks make: the addresses
are 10.10.0.x inside the stacks only, never configured or reached on the host."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import textwrap
import threading
from pathlib import Path

import pytest

from conftest import BASE_ENV, REPO, UMVU

pytestmark = pytest.mark.skipif(shutil.which("vde_switch") is None,
                                reason="vde2 is installed by make setup")


class Switch:
    """A vde_switch of its own in directory ``where`` (as ``user``, None: root)."""

    def __init__(self, where: Path, user: str | None = None) -> None:
        self.dir = where / "sw"
        self.pidfile = where / "sw.pid"
        for p in (self.dir, self.pidfile, where / "sw.mgmt"):
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        cmd = ["vde_switch", "-d", "-s", str(self.dir), "-M", str(where / "sw.mgmt"),
               "-p", str(self.pidfile)]
        if user:
            cmd = ["runuser", "-u", user, "--"] + cmd
        subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, timeout=30)
        self.url = "vde://" + str(self.dir)

    def stop(self) -> None:
        try:
            os.kill(int(self.pidfile.read_text()), signal.SIGTERM)
        except (OSError, ValueError):
            pass


@pytest.fixture
def root_switch(tmp_path):
    sw = Switch(tmp_path)
    yield sw
    sw.stop()


def umvu_bash(script: str, *, cwd, env=None, timeout=300, user_prefix=None):
    """bash -c script in a umvu session (as root, or with as_user's prefix)."""
    prefix = user_prefix if user_prefix is not None else UMVU
    full = dict(BASE_ENV, **(env or {}))
    return subprocess.run(prefix + ["bash", "-c", script], cwd=str(cwd), env=full,
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)


def umvu_popen(script: str, *, cwd, env=None, user_prefix=None):
    prefix = user_prefix if user_prefix is not None else UMVU
    full = dict(BASE_ENV, **(env or {}))
    return subprocess.Popen(prefix + ["bash", "-c", script], cwd=str(cwd), env=full,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def host_links() -> list[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, check=True).stdout
    return sorted(line.split(":")[1].strip() for line in out.decode().splitlines())


def host_net_state() -> tuple[bytes, bytes, bytes]:
    return tuple(subprocess.run(["ip"] + args, capture_output=True, check=True).stdout
                 for args in (["-o", "addr"], ["route"], ["-6", "route"]))


MOUNT = "vu_insmod vunet && vumount -t vunetvdestack %s /dev/net/myvde"


def transcript(url: str) -> str:
    return textwrap.dedent("""\
        set -e
        %s
        ls -l /dev/net/myvde | cut -c1
        stat -c %%F /dev/net/myvde
        echo STACK; vustack /dev/net/myvde ip -o link
        echo HOST; ip -o link
        echo CONFIG
        vustack /dev/net/myvde bash -c 'ip addr add 10.10.0.1/24 dev vde0 && \\
            ip link set vde0 up && ip -o -4 addr show dev vde0'
        """) % (MOUNT % url)


def check_transcript(r) -> None:
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    out = r.stdout.decode()
    head, rest = out.split("STACK\n")
    assert head.split() == ["s", "socket"]
    stack, rest = rest.split("HOST\n")
    host, config = rest.split("CONFIG\n")
    names = [line.split(":")[1].strip().split("@")[0] for line in stack.splitlines()]
    assert names == ["lo", "vde0"], stack
    assert "<LOOPBACK>" in stack.splitlines()[0]  # down, as a new stack's
    assert sorted(line.split(":")[1].strip() for line in host.splitlines()) == host_links()
    assert "inet 10.10.0.1/24" in config and "vde0" in config


def test_transcript_as_root(tmp_path, root_switch):
    """VUOS's example: lo and vde0 in the stack, the host's interfaces outside vustack;
    the stack's own configuration; the host's addresses and routes unchanged."""
    before = host_net_state()
    r = umvu_bash(transcript(root_switch.url), cwd=tmp_path)
    check_transcript(r)
    assert host_net_state() == before


def test_transcript_as_nobody(as_user):
    """The same as nobody, with the user's own switch (/dev/net/tun is root's here)."""
    work = as_user.work
    sw = Switch(work, "nobody")
    try:
        before = host_net_state()
        r = as_user(["bash", "-c", transcript(sw.url)], stdin=subprocess.DEVNULL,
                    timeout=300)
        check_transcript(r)
        assert host_net_state() == before
    finally:
        sw.stop()


SERVER = r'''
import hashlib, os, socket, sys, threading
addr = sys.argv[1]
def tcp_sha():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, 5000)); s.listen(8); ready.append(1)
    c, _ = s.accept(); h = hashlib.sha256()
    while True:
        b = c.recv(1 << 16)
        if not b:
            break
        h.update(b)
    c.sendall(h.hexdigest().encode()); c.close()
def udp_echo():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind((addr, 5001))
    ready.append(1)
    while True:
        data, peer = u.recvfrom(2048)
        u.sendto(data[::-1], peer)
def many():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, 5002)); s.listen(128); ready.append(1)
    while True:
        c, _ = s.accept(); c.sendall(b"x"); c.close()
ready = []
for fn in (tcp_sha, udp_echo, many):
    threading.Thread(target=fn, daemon=True).start()
while len(ready) < 3:
    threading.Event().wait(0.01)
open(sys.argv[2], "w").close()
threading.Event().wait(3600)
'''

CLIENT = r'''
import hashlib, os, socket, sys
peer = sys.argv[1]
data = os.urandom(50 << 20)
c = socket.create_connection((peer, 5000))
c.sendall(data); c.shutdown(socket.SHUT_WR)
digest = b""
while True:
    b = c.recv(100)
    if not b:
        break
    digest += b
print("tcp", digest.decode() == hashlib.sha256(data).hexdigest())
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2)
good = 0
for i in range(100):
    msg = b"datagram %d " % i + os.urandom(i * 10)
    for attempt in range(5):  # (UDP: a lost datagram is sent again)
        u.sendto(msg, (peer, 5001))
        try:
            back = u.recv(2048)
        except socket.timeout:
            continue
        good += back == msg[::-1]
        break
print("udp", good)
def fds():
    pid = os.environ.get("UMVU_PID")
    try:
        return len(os.listdir("/proc/%s/fd" % pid)) if pid else -1
    except OSError:
        return -1
before = fds()
for i in range(1000):
    c = socket.create_connection((peer, 5002))
    assert c.recv(1) == b"x"
    c.close()
print("many", 1000, "fds", before, fds())
'''


def two_sessions(work: Path, url: str, user_prefix=None):
    """Session A (10.10.0.1: TCP, UDP, HTTP servers) and session B (10.10.0.2: ping,
    the clients) on one switch; B's output."""
    (work / "server.py").write_text(SERVER)
    (work / "client.py").write_text(CLIENT)
    www = work / "www"
    www.mkdir(exist_ok=True)
    (www / "file.bin").write_bytes(os.urandom(3 << 20))
    for flag in ("ready", "done"):
        if (work / flag).exists():
            (work / flag).unlink()
    if user_prefix is not None:
        subprocess.run(["chown", "-R", "nobody", str(work / "www")], check=True)
    mount = MOUNT % url
    a = umvu_popen(textwrap.dedent("""\
        set -e
        %s
        vustack /dev/net/myvde bash -c '
            set -e
            ip addr add 10.10.0.1/24 dev vde0; ip link set vde0 up
            cd www; python3 -m http.server --bind 10.10.0.1 8000 >/dev/null 2>&1 &
            cd ..; python3 server.py 10.10.0.1 ready &
            until [ -e done ]; do sleep 0.05; done
            kill %%1 %%2'
        """) % mount, cwd=work, user_prefix=user_prefix)
    try:
        b = umvu_bash(textwrap.dedent("""\
            set -e
            %s
            export UMVU_PID=$PPID
            vustack /dev/net/myvde bash -c '
                set -e
                ip addr add 10.10.0.2/24 dev vde0; ip link set vde0 up
                until [ -e ready ]; do sleep 0.05; done
                # (http.server too: a connection to it answers)
                until python3 -c "import socket; socket.create_connection((\\"10.10.0.1\\", 8000))" 2>/dev/null; do sleep 0.05; done
                ping -c 3 -W 5 10.10.0.1 | grep -c "bytes from 10.10.0.1"
                python3 client.py 10.10.0.1
                curl -s http://10.10.0.1:8000/file.bin | sha256sum
                touch done'
            """) % mount, cwd=work, user_prefix=user_prefix, timeout=600)
    finally:
        (work / "done").touch()
        try:
            a_out, a_err = a.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            a.kill()
            a_out, a_err = a.communicate()
    assert b.returncode == 0, b.stderr.decode()[-3000:] + a_err.decode()[-2000:]
    assert a.returncode == 0, a_err.decode()[-3000:]
    return b.stdout.decode().splitlines()


def check_two_sessions(lines, work: Path) -> None:
    import hashlib
    assert lines[0] == "3", lines  # three echo replies
    assert lines[1] == "tcp True", lines
    assert lines[2] == "udp 100", lines
    many = lines[3].split()
    assert many[:2] == ["many", "1000"], lines
    assert lines[4].split()[0] == hashlib.sha256(
        (work / "www" / "file.bin").read_bytes()).hexdigest()
    return many


def test_two_sessions_as_root(tmp_path, root_switch):
    """ping, a 50 MB TCP transfer (sha256 on both ends), 100 UDP datagrams, an HTTP
    server and curl, 1000 connections: between two umvu sessions on one switch; umvu's
    fds do not grow with the connections; the host's network is as it was."""
    before = host_net_state()
    lines = two_sessions(tmp_path, root_switch.url)
    many = check_two_sessions(lines, tmp_path)
    assert int(many[3]) > 0 and many[3] == many[4], lines  # umvu's fds: as many after
    assert host_net_state() == before


def test_two_sessions_as_nobody(as_user):
    work = as_user.work / "two"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    subprocess.run(["chown", "nobody", str(work)], check=True)
    sw = Switch(work, "nobody")
    try:
        lines = two_sessions(work, sw.url, user_prefix=as_user.prefix)
        check_two_sessions(lines, work)
    finally:
        sw.stop()


class HostListener:
    """A TCP listener on the host's 127.0.0.1 (the test's own), counting connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            c.sendall(b"host\n")
            c.close()

    def close(self) -> None:
        self.sock.close()


CONNECT = ('python3 -c "import socket,sys; s=socket.create_connection((\\"127.0.0.1\\", '
           '%d), timeout=5); print(s.recv(5).decode().strip())"')


def test_isolation_and_unmount(tmp_path, root_switch):
    """The host's 127.0.0.1 is not reachable from the stack (its own lo is another);
    processes outside vustack keep the host's stack; after vuumount the stack's sockets
    fail (a connected TCP socket: ECONNABORTED or ECONNRESET; a new socket():
    EAFNOSUPPORT) and the
    session goes on."""
    listener = HostListener()
    try:
        connect = CONNECT % listener.port
        (tmp_path / "after.py").write_text(textwrap.dedent("""\
            import errno, os, socket, subprocess, sys
            srv = socket.socket(); srv.bind(("127.0.0.1", 7000)); srv.listen(1)
            c = socket.create_connection(("127.0.0.1", 7000)); a, _ = srv.accept()
            c.sendall(b"before"); print("before", a.recv(10).decode())
            subprocess.run(["vuumount", "/dev/net/myvde"], check=True)
            try:
                c.sendall(b"after"); print("send after", c.recv(10))
            except OSError as e:
                print("after", errno.errorcode[e.errno])
            try:
                socket.socket()
            except OSError as e:
                print("new", errno.errorcode[e.errno])
            """))
        r = umvu_bash(textwrap.dedent("""\
            %s
            echo outside $(%s)
            vustack /dev/net/myvde bash -c 'ip link set lo up; %s' 2>&1 | tail -1
            vustack /dev/net/myvde python3 after.py
            echo alive $(%s)
            ls /dev/net/myvde 2>&1 || true
            """) % (MOUNT % root_switch.url, connect, connect, connect), cwd=tmp_path)
        assert r.returncode == 0, r.stderr.decode()[-3000:]
        lines = r.stdout.decode().splitlines()
        assert lines[0] == "outside host"
        assert "ConnectionRefusedError" in lines[1], lines
        # (aborted: ECONNABORTED, or ECONNRESET when its peer, in the stack too, was
        # aborted first and reset it)
        assert lines[2] == "before before" and lines[3] in (
            "after ECONNABORTED", "after ECONNRESET"), lines
        assert lines[4:6] == ["new EAFNOSUPPORT", "alive host"], lines
        assert "No such file or directory" in lines[6]
        assert listener.accepted == 2  # the two outside vustack, never the stack's
    finally:
        listener.close()


@pytest.mark.parametrize("opts", [[], ["-S"]], ids=["umvu", "umvu-S"])
def test_vunetnull(tmp_path, opts):
    """No network: an IPv4 connection fails with EAFNOSUPPORT (Python's clear error),
    netlink too (ip), a unix socket program works; outside vustack the host's stack
    (with -S too, where socket() is a ptrace stop and a stack's socket comes over the
    hand-off socket)."""
    listener = HostListener()
    try:
        script = textwrap.dedent("""\
            vu_insmod vunet && vumount -t vunetnull none /tmp/nonet.$$ || exit 9
            vustack /tmp/nonet.$$ python3 -c 'import socket; socket.create_connection(("127.0.0.1", %d))' 2>&1 | tail -1
            vustack /tmp/nonet.$$ ip link 2>&1 | tail -1
            vustack /tmp/nonet.$$ python3 -c '
            import os, socket
            srv = socket.socket(socket.AF_UNIX); srv.bind("u.sock"); srv.listen(1)
            c = socket.socket(socket.AF_UNIX); c.connect("u.sock"); a, _ = srv.accept()
            c.sendall(b"unix works"); print(a.recv(20).decode())
            l, r = socket.socketpair(); l.sendall(b"pair"); print(r.recv(4).decode())'
            echo outside $(%s)
            """) % (listener.port, CONNECT % listener.port)
        r = umvu_bash(script, cwd=tmp_path, user_prefix=UMVU + opts)
        assert r.returncode == 0, r.stderr.decode()[-3000:]
        lines = r.stdout.decode().splitlines()
        assert lines[0] == "OSError: [Errno 97] Address family not supported by protocol"
        assert "Address family not supported" in lines[1], lines
        assert lines[2:] == ["unix works", "pair", "outside host"], lines
        assert listener.accepted == 1
    finally:
        listener.close()


@pytest.mark.parametrize("opts", [[], ["-S"]], ids=["umvu", "umvu-S"])
def test_families_inheritance_and_msocket(tmp_path, root_switch, opts):
    """vustack -f sets the chosen families only; children (fork, threads, exec) keep the
    stack; msocket (the Python helper and the raw call) makes sockets in a stack given
    by path, or in the caller's default; vunetreal is the host's stack again."""
    listener = HostListener()
    try:
        probe = tmp_path / "probe.py"
        probe.write_text(textwrap.dedent("""\
            import os, socket, sys, threading
            # a socket's stack: lo up in the vdestack, the host's 127.0.0.1 otherwise
            def where(family=socket.AF_INET):
                s = socket.socket(family, socket.SOCK_STREAM)
                try:
                    s.settimeout(5)
                    s.connect(("127.0.0.1" if family == socket.AF_INET else "::1", %d))
                    return "host"
                except OSError as e:
                    return type(e).__name__
            out = [where()]
            t = threading.Thread(target=lambda: out.append(where())); t.start(); t.join()
            pid = os.fork()
            if pid == 0:
                os.execvp("python3", ["python3", "-c", "import socket; s = socket.socket(); "
                                      "s.settimeout(5); print(s.connect_ex(('127.0.0.1', %d)) == 0)"])
            os.waitpid(pid, 0)
            print(*out, flush=True)
            """) % (listener.port, listener.port))
        helper = tmp_path / "helper.py"
        helper.write_text(textwrap.dedent("""\
            import socket
            from umvu.net import msocket, set_default_stack
            s = msocket("/dev/net/myvde", socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(5)
            print("msocket", s.connect_ex(("127.0.0.1", %d)) != 0)
            try:
                msocket(None, socket.AF_INET)
            except OSError as e:
                print("no default", e.errno)
            set_default_stack("/real")
            s = socket.socket(); s.settimeout(5)
            print("real", s.connect_ex(("127.0.0.1", %d)) == 0)
            try:
                msocket("/etc/passwd")
            except OSError as e:
                print("not a stack", e.errno)
            from umvu.net import msocket_raw
            print("bad pointer", msocket_raw(8, socket.AF_INET, socket.SOCK_STREAM, 0))
            """) % (listener.port, listener.port))
        r = umvu_bash(textwrap.dedent("""\
            %s && vumount -t vunetreal none /real || exit 9
            vustack /dev/net/myvde python3 probe.py
            vustack -f inet6 /dev/net/myvde python3 probe.py
            vustack -f inet6 /dev/net/myvde python3 helper.py
            """) % (MOUNT % root_switch.url), cwd=tmp_path,
            env={"PYTHONPATH": str(REPO)}, user_prefix=UMVU + opts)
        assert r.returncode == 0, r.stderr.decode()[-3000:]
        lines = r.stdout.decode().splitlines()
        # in the stack: its lo is down (ENETUNREACH) and the host is not there
        assert lines[0] == "False" and lines[1] == "OSError OSError", lines
        assert lines[2] == "True" and lines[3] == "host host", lines  # -f inet6 only
        assert lines[4:] == ["msocket True", "no default 2", "real True",
                             "not a stack 95", "bad pointer -14"], lines
    finally:
        listener.close()


def test_bad_mounts(tmp_path, root_switch):
    """A switch that is not there, no source, a bad option, a second stack on the same
    path: one clear line each, and the session goes on."""
    r = umvu_bash(textwrap.dedent("""\
        vu_insmod vunet
        vumount -t vunetvdestack vde://%s/none /tmp/s1.$$
        vumount -t vunetvdestack none /tmp/s2.$$
        vumount -t vunetvdestack -o colour=red %s /tmp/s3.$$
        vumount -t vunetvdestack %s /tmp/s4.$$ && vumount -t vunetnull none /tmp/s4.$$
        vustack /tmp/s4.$$ ip -o link | wc -l
        """) % (tmp_path, root_switch.url, root_switch.url), cwd=tmp_path)
    err = r.stderr.decode().splitlines()
    assert r.returncode == 0 and r.stdout.strip() == b"2", (r.stdout, err)
    assert len(err) == 4, err
    assert "cannot connect to the VDE network" in err[0] and "/none" in err[0]
    assert "needs a VDE network" in err[1]
    assert "colour" in err[2]
    assert "Device or resource busy" in err[3] or "already" in err[3]


def test_killing_umvu_leaves_no_stack_behind(tmp_path, root_switch):
    """SIGKILL of umvu while a stack is mounted and its sockets are in use: the guests,
    the stack's keeper and its frame copier all go (the copier leaves the switch)."""
    url = root_switch.url
    p = umvu_popen(textwrap.dedent("""\
        %s || exit 9
        vustack /dev/net/myvde python3 -c '
        import socket, time
        s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
        open("ready", "w").close(); time.sleep(1000)'
        """) % (MOUNT % url), cwd=tmp_path)
    def stack_processes():
        out = subprocess.run(["pgrep", "-f", "vunet_stack .* %s " % url],
                             capture_output=True).stdout.split()
        return [int(pid) for pid in out]
    try:
        for _ in range(1200):
            if (tmp_path / "ready").exists() or p.poll() is not None:
                break
            threading.Event().wait(0.05)
        assert (tmp_path / "ready").exists(), p.communicate()
        assert len(stack_processes()) == 2  # the keeper and its copier
        guests = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True).stdout
        assert guests.split()
    finally:
        p.kill()
        p.wait()
    for _ in range(400):  # (each goes as soon as it sees its peer's end close)
        if not stack_processes():
            break
        threading.Event().wait(0.05)
    assert stack_processes() == []
    leftover = subprocess.run(["pgrep", "-f", "ready.*time.sleep"], capture_output=True)
    assert leftover.stdout == b""


IFCONF = r'''
import array, fcntl, socket, struct
u = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # (not a socket of the stack)
print("index", socket.if_nametoindex("vde0"), socket.if_indextoname(1))
buf = array.array("B", bytes(40 * 8))
ifc = struct.pack("iL", len(buf), buf.buffer_info()[0])
got = struct.unpack("iL", fcntl.ioctl(u.fileno(), 0x8912, ifc))[0]
names = [bytes(buf[i:i + 16]).split(b"\0")[0].decode() for i in range(0, got, 40)]
addrs = [socket.inet_ntoa(bytes(buf[i + 20:i + 24])) for i in range(0, got, 40)]
print("ifconf", sorted(zip(names, addrs)))
try:
    socket.if_nametoindex("eth0")
except OSError as e:
    print("eth0", e)
'''


@pytest.mark.parametrize("opts", [[], ["-S"]], ids=["umvu", "umvu-S"])
def test_netdevice_ioctls_on_other_sockets(tmp_path, root_switch, opts):
    """glibc's if_nametoindex and SIOCGIFCONF on a unix socket: in a process of the stack
    they see the stack's interfaces (as VUOS routes them), outside it the host's."""
    (tmp_path / "ifconf.py").write_text(IFCONF)
    r = umvu_bash(textwrap.dedent("""\
        %s || exit 9
        vustack /dev/net/myvde bash -c 'ip addr add 10.10.0.7/24 dev vde0 &&
            ip link set vde0 up && ip link set lo up && python3 ifconf.py'
        python3 -c 'import socket; print("host", socket.if_nametoindex("lo"))'
        """) % (MOUNT % root_switch.url), cwd=tmp_path, user_prefix=UMVU + opts)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    lines = r.stdout.decode().splitlines()
    assert lines[0] == "index 2 lo", lines
    assert lines[1] == "ifconf [('lo', '127.0.0.1'), ('vde0', '10.10.0.7')]", lines
    assert lines[2].startswith("eth0 "), lines
    assert lines[3] == "host %d" % socket.if_nametoindex("lo"), lines
