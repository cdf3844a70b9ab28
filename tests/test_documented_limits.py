"""Where umvu cannot behave natively, the guest gets the clean error the README lists
(issue: core, documented differences)."""
import subprocess
import textwrap


from conftest import run

ABI32 = textwrap.dedent(r"""
    #include <stdio.h>
    int main(void) {
        long ret;
        /* getpid through the 32-bit ABI */
        __asm__ volatile ("int $0x80" : "=a"(ret) : "a"(20) : "memory");
        printf("%ld\n", ret);
        return 0;
    }
""")


def test_ptrace_inside_is_eperm(guest_mode):
    r = run(guest_mode, ["strace", "-o", "/dev/null", "true"])
    assert r.returncode == 1
    assert b"PTRACE_TRACEME" in r.stderr and b"Operation not permitted" in r.stderr
    code = ("import ctypes, errno; libc = ctypes.CDLL(None, use_errno=True);"
            "print(libc.ptrace(0, 0, 0, 0), errno.errorcode[ctypes.get_errno()])")
    assert run(guest_mode, ["python3", "-c", code]).stdout == b"-1 EPERM\n"


def test_int80_is_refused_with_enosys_and_a_warning(tmp_path, guest_mode):
    src = tmp_path / "a.c"
    src.write_text(ABI32)
    subprocess.run(["gcc", "-o", str(tmp_path / "a"), str(src)], check=True)
    native = run("native", [str(tmp_path / "a")])
    assert int(native.stdout) > 0  # natively a real pid
    # once the guest has needed the hypervisor (-S: always) such a call could bypass it
    r = run(guest_mode, ["sh", "-c", "vuname; exec " + str(tmp_path / "a")])
    assert r.stdout == b"\n-38\n"  # vuname's empty name, then -ENOSYS
    assert b"32-bit/x32 system call 20 refused with ENOSYS" in r.stderr
    # before that (followed in C, no filter, nothing virtualized) it runs as natively
    r = run(guest_mode, [str(tmp_path / "a")])
    if guest_mode == "umvu":
        assert int(r.stdout) > 0 and r.stderr == b""
    else:
        assert r.stdout == b"-38\n"
