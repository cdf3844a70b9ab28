"""Threads, subprocess, signals and select, with deterministic output."""
import os
import select
import signal
import subprocess
import sys
import threading

# (kept small: under any ptrace tracer, strace included, GIL hand-offs between threads
# making syscalls cost a stop each, and this part alone takes minutes at 16 x 200)
results = [0] * 8


def work(i):
    # a process-directed signal goes to any thread not blocking it, one still exiting
    # too (which may take longer under a tracer): the SIGUSR1 below is the main thread's
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    total = 0
    for _ in range(50):
        total += len(os.listdir("/usr/bin")) > 0
        os.getppid()
    results[i] = total


threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("threads", sum(results))

out = subprocess.run(["sh", "-c", "echo from-child; exit 4"], capture_output=True)
print("subprocess", out.stdout.decode().strip(), out.returncode)

r, w = os.pipe()
got = []
# The signal is seen by select through the wakeup fd, written by the C-level handler the
# moment the signal comes: a Python-level handler's write would come only at the next
# bytecode, and a signal landing between Python's last check and select's syscall (the
# main thread preempted there, likelier with a tracer taking a CPU) left select waiting
# its whole timeout, natively as under a tracer.
os.set_blocking(w, False)
signal.set_wakeup_fd(w)
signal.signal(signal.SIGUSR1, lambda s, f: got.append(s))
pid = os.fork()
if pid == 0:
    os.kill(os.getppid(), signal.SIGUSR1)
    os._exit(9)
while True:
    try:
        ready, _, _ = select.select([r], [], [], 30)
        break
    except InterruptedError:
        continue
print("select", ready == [r], os.read(r, 1))
_, status = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(status), "signals", got)
sys.exit(0)
