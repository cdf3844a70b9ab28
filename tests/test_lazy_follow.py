"""Processes the C loop follows alone while a module is loaded (issue: performance).

A clone by a thread whose state the hypervisor's table adds nothing to (current filter,
no virtual fd, cwd the kernel's, no module state) is followed by the C loop alone, and so
are the child's own clones, exec and exit, until one of its calls needs the hypervisor:
then it is adopted from the kernel's view and the C loop's tree. Each scenario here
makes a state a child must inherit, or adopts a thread that shares state with others,
and runs the same script natively on a plain directory and under umvu on a memfs.
"""
import os
import textwrap

import pytest

from conftest import differential, run

MOUNT = "mkdir -p {work}/d && vu_insmod vufuse && vumount -t vufusememfs none {work}/d && cd {work} && {{ {cmd}\n}}"

SCENARIOS = {
    # children of children, in the background, exec'ing, all reaching the mount late
    "grandchildren": """
        mkdir -p d && echo hello > d/f
        sh -c 'sh -c "sh -c \\"cat d/f; ls d\\""'
        (sleep 0.1; cat d/f) & (cat d/f | tr a-z A-Z) & wait
        for i in 1 2 3; do /bin/true; done; cat d/f
    """,
    # the shell gets a virtual fd: its children must have it
    "inherited virtual fd": """
        mkdir -p d && printf 'one\\ntwo\\nthree\\n' > d/f
        exec 3< d/f
        (read x <&3; echo "subshell $x")
        sh -c 'read y <&3; echo "child $y"'
        cat <&3
        exec 3<&-
        ( cat <&3 ) 2>/dev/null || echo closed
    """,
    # the shell's cwd goes inside the mount: its children start there
    "inherited virtual cwd": """
        mkdir -p d/sub && echo x > d/sub/g && echo y > d/f
        cd d/sub
        /bin/pwd; ls; cat ../f
        sh -c 'pwd; cat g; cd ..; /bin/pwd; ls'
        (cd ..; /bin/pwd)
        cd /; cd - > /dev/null; sh -c '/bin/pwd'
    """,
    # the kernel's umask at adoption, not the parent's when it forked
    "umask": """
        mkdir -p d
        umask 027; (touch d/u1; mkdir d/u2); stat -c '%a %n' d/u1 d/u2
        umask 002; sh -c 'umask; touch d/u3; sh -c "umask 077; touch d/u4"'
        stat -c '%a %n' d/u3 d/u4
    """,
    # a thread opens a virtual fd in the table its process shares, and another thread
    # forks at once: the child must have the fd
    "threads share the fd table": """
        mkdir -p d && echo shared > d/f
        python3 -c '
import os, threading
fds = []
def opener():
    fds.append(os.open("d", os.O_RDONLY | os.O_DIRECTORY))
t = threading.Thread(target=opener); t.start(); t.join()
pid = os.fork()
if pid == 0:
    os.write(1, ("child lists %s\\n" % os.listdir(fds[0])).encode())
    os._exit(0)
os.waitpid(pid, 0)
'
    """,
    # a thread moves the cwd its process shares inside the mount, and another thread
    # forks at once: the child must start there; threads adopted later share it
    "threads share the cwd": """
        mkdir -p d && echo shared > d/f
        python3 -c '
import os, threading
def chdir():
    os.chdir("d")
t = threading.Thread(target=chdir); t.start(); t.join()
pid = os.fork()
if pid == 0:
    os.execvp("cat", ["cat", "f"])
os.waitpid(pid, 0)
def reader(out):
    out.append(open("f").read().strip())
out = []
ts = [threading.Thread(target=reader, args=(out,)) for _ in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print(out, os.path.basename(os.getcwd()))
'
    """,
    # vfork (posix_spawn) and exec of a program that then reads the mount
    "vfork and exec": """
        mkdir -p d && echo spawned > d/f
        python3 -c '
import os, subprocess
pid = os.posix_spawnp("cat", ["cat", "d/f"], os.environ)
print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
print(subprocess.run(["sh", "-c", "cat d/f; exit 3"]).returncode)
'
    """,
    # an unseen process (no exec events) is adopted when it opens a file of the mount
    # close-on-exec, then execs: the exec must be seen (the fd number is a real file's
    # after it), and so must an exec after a vfork by such a process
    "adopted then exec": """
        mkdir -p d && echo virtual > d/f && echo real > r
        sh -c '/usr/bin/python3 -c "
import os
fd = os.open(\\"d/f\\", os.O_RDONLY)
os.dup2(fd, 7, inheritable=False)
print(os.read(7, 100).decode().strip(), flush=True)
os.execv(\\"/bin/sh\\", [\\"sh\\", \\"-c\\", \\"exec 7<r; cat <&7; ls /proc/self/fd | wc -l\\"])
"'
        sh -c 'exec 6<d/f; sh -c "cat <&6"; /bin/sh -c "exec 6<r; cat <&6"'
    """,
    # a thread that is not its process's leader execs while the process is unseen (the
    # kernel gives it the leader's tid; the C loop never saw the exec), then reaches the
    # mount
    "non-leader exec while unseen": """
        mkdir -p d && echo there > d/f
        sh -c '/usr/bin/python3 -c "
import os, threading, time
threading.Thread(target=os.execv, args=(\\"/bin/sh\\", [\\"sh\\", \\"-c\\", \\"cat d/f; ls d\\"])).start()
time.sleep(30)
"'
        sh -c 'cat d/f' & wait
    """,
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_lazily_followed_children(name, tmp_path):
    cmd = textwrap.dedent(SCENARIOS[name])
    results = differential(cmd, tmp_path, "umvu",
                           lambda work, c: MOUNT.format(work=work, cmd=c))
    assert results["umvu"] == results["native"], results
    assert results["native"][0] == 0


def test_unseen_processes_are_listed(tmp_path):
    """vuctl ps adopts the processes the C loop followed alone."""
    (tmp_path / "d").mkdir()
    script = MOUNT.format(work=tmp_path, cmd="""
        sleep 30 & s=$!
        sh -c 'sleep 30' & t=$!
        sleep 0.2
        vuctl ps | awk '{print $1}' > pids
        grep -qx $s pids && echo sleep listed
        grep -qx $t pids && echo sh listed
        kill $s $t; wait
    """)
    r = run("umvu", ["bash", "-c", script])
    assert r.stdout == b"sleep listed\nsh listed\n", r.stderr


def test_module_state_goes_to_children(tmp_path):
    """unrealuidgid keeps virtual ids in the process's module state: a child forked
    after the shell took them must have them (the shell stops being plain at once)."""
    script = ("vu_insmod unrealuidgid && vusu -s /bin/sh daemon -c 'id -u; "
              "sh -c \"id -u; id -g\"; (id -un)'")
    r = run("umvu", ["bash", "-c", script], cwd=tmp_path)
    # daemon is uid 1 to every process of vusu's tree
    assert (r.returncode, r.stdout, r.stderr) == (0, b"1\n1\n1\ndaemon\n", b"")


@pytest.mark.parametrize("lazy", ["1", "0"])
def test_fork_exec_loop_same_with_and_without(lazy, tmp_path):
    """Many short children, some reaching the mount: the same output either way."""
    script = MOUNT.format(work=tmp_path, cmd="""
        echo 0 > d/n
        i=0; while [ $i -lt 200 ]; do
            /bin/true
            if [ $((i % 20)) = 0 ]; then n=$(cat d/n); echo $((n + 1)) > d/n; fi
            i=$((i+1))
        done
        cat d/n; ls d
    """)
    (tmp_path / "d").mkdir()
    r = run("umvu", ["bash", "-c", script], env={"UMVU_LAZY": lazy})
    assert (r.returncode, r.stdout) == (0, b"10\nn\n"), r.stderr
    assert os.listdir(tmp_path / "d") == []  # the host saw nothing



EXEC_BY_A_THREAD = """
import os, threading, time
script = ("vu_insmod vufuse && vumount -t vufusememfs none {mnt} && echo hi > {mnt}/f && "
          "cat {mnt}/f && exec bash -c 'cat {mnt}/f; sh -c \\"cat {mnt}/f\\"; "
          "vuctl ps | awk -F\\"\\\\t\\" \\"NR > 1 && \\\\$4 == \\\\\\"?\\\\\\"\\"'")
threading.Thread(target=os.execvp, args=("bash", ["bash", "-c", script])).start()
time.sleep(60)
"""


def test_exec_events_come_back_when_the_hypervisor_starts(tmp_path):
    """Followed in C alone, the guest runs without exec events; the hypervisor gets them
    back for every thread when it starts. Here a thread that is not the leader execs
    before any module (the kernel gives it the leader's tid), the new program loads a
    module, and execs again: the exec is seen (the cat after it reads the mount), and no
    thread the exec took away is still listed (vuctl ps shows a gone one's command as
    "?")."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = run("umvu", ["python3", "-c", EXEC_BY_A_THREAD.format(mnt=mnt)])
    assert (r.returncode, r.stdout, r.stderr) == (0, b"hi\nhi\nhi\n", b"")


@pytest.mark.parametrize("name, out", [
    ("adopted then exec", b"virtual\nreal\n5\nvirtual\nreal\n"),
    ("non-leader exec while unseen", b"there\nf\nthere\n")])
def test_unseen_execs_as_an_unprivileged_user(name, out, as_user):
    """The two unseen-exec scenarios above as nobody (the C loop's kcmp and tgkill at
    adoption need no privilege beyond being the tracer); out is what they print
    natively."""
    work = as_user.work / name.replace(" ", "-")
    script = MOUNT.format(work=work, cmd=textwrap.dedent(SCENARIOS[name]))
    r = as_user(["bash", "-c", script])
    assert (r.returncode, r.stdout) == (0, out), r.stderr


def test_no_thread_an_unseen_exec_took_away_is_listed(tmp_path):
    """A thread that is not its process's leader execs while the process is unseen: the
    kernel gives it the leader's tid and its own tid is gone without a word to the
    tracer. At adoption the C loop drops that tid, so vuctl ps lists no thread umvu
    cannot find (it shows a gone one's command as "?")."""
    script = MOUNT.format(work=tmp_path, cmd="""
        echo there > d/f
        sh -c '/usr/bin/python3 -c "
import os, threading, time
threading.Thread(target=os.execv, args=(\\"/bin/sh\\", [\\"sh\\", \\"-c\\", \\"cat d/f; sleep 2\\"])).start()
time.sleep(30)
"' &
        sleep 1; cat d/f
        vuctl ps | awk -F'\\t' 'NR > 1 && $4 == "?"'
        wait
    """)
    (tmp_path / "d").mkdir()
    r = run("umvu", ["bash", "-c", script])
    assert (r.returncode, r.stdout) == (0, b"there\nthere\n"), r.stderr
