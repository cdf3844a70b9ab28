"""Interactive bash with job control through a real pty (issue: core, acceptance 3)."""
import pexpect
import pytest

from conftest import BASE_ENV, MODES

PROMPT = "PROMPT-OK> "


def spawn(mode):
    env = dict(BASE_ENV, PS1=PROMPT, TERM="xterm")
    argv = MODES[mode] + ["bash", "--norc", "--noprofile", "-i"]
    child = pexpect.spawn(argv[0], argv[1:], env=env, timeout=60, encoding="utf-8")
    child.expect_exact(PROMPT)
    return child


def interrupt_until_prompt(child):
    """Ctrl-C until the shell prompts again: the foreground job may not have the
    terminal yet right after `fg` printed its command line."""
    for _ in range(50):
        child.sendcontrol("c")
        if child.expect_exact([PROMPT, pexpect.TIMEOUT], timeout=2) == 0:
            return
    raise AssertionError("Ctrl-C never gave the prompt back")


@pytest.mark.parametrize("mode", list(MODES))
def test_job_control(mode):
    child = spawn(mode)
    child.sendline("sleep 100")
    child.expect_exact("sleep 100")  # the echo of the command line
    # Ctrl-Z until bash reports the job stopped (the first may come before sleep runs)
    for _ in range(50):
        child.sendcontrol("z")
        if child.expect([r"Stopped\s+sleep 100", pexpect.TIMEOUT], timeout=2) == 0:
            break
    else:
        raise AssertionError("Ctrl-Z never stopped the job")
    child.expect_exact(PROMPT)
    child.sendline("jobs -l")
    child.expect(r"\[1\]\+\s+\d+ Stopped\s+sleep 100")
    child.expect_exact(PROMPT)
    child.sendline("bg")
    child.expect_exact("[1]+ sleep 100 &")
    child.expect_exact(PROMPT)
    child.sendline("jobs")
    child.expect(r"\[1\]\+\s+Running\s+sleep 100 &")
    child.expect_exact(PROMPT)
    child.sendline("fg")
    child.expect_exact("sleep 100")
    interrupt_until_prompt(child)
    child.sendline("jobs; echo jobs-done")
    child.expect_exact("jobs-done")
    assert "sleep" not in child.before
    child.expect_exact(PROMPT)
    child.sendline("exit 7")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 7
