"""Path canonicalization cases: prints one line per case with the kernel's (or umvu's)
answer. usage: canon.py ROOT  (run with cwd = ROOT)"""
import os
import sys

from caselib import attempt, read

ROOT = sys.argv[1]


def opened_dir(flags):
    fd = os.open(ROOT + "/d", os.O_RDONLY | os.O_DIRECTORY)
    return fd


D = opened_dir(0)
A = ROOT
CASES = [
    lambda: os.stat("d/f"), lambda: os.stat("d/f/"), lambda: os.stat("d/./f"),
    lambda: os.stat("d/../file"), lambda: os.stat("d/sub/../../file"),
    lambda: os.stat("l_rel"), lambda: os.lstat("l_rel"), lambda: os.readlink("l_rel"),
    lambda: os.stat("l_abs"), lambda: os.stat("l_dir/f"), lambda: os.stat("l_dir/"),
    lambda: os.lstat("l_dir/"), lambda: os.stat("loop1"), lambda: os.lstat("loop1"),
    lambda: os.stat("self"), lambda: os.stat("dangling"), lambda: os.lstat("dangling"),
    lambda: os.stat("l_chain"), lambda: os.stat("l_trailing"), lambda: os.stat("l_file_dir"),
    lambda: os.stat("file/"), lambda: os.stat("file/.."), lambda: os.stat("nonexist/x"),
    lambda: os.stat("d/nonexist"), lambda: os.stat(""), lambda: os.stat("a" * 256),
    lambda: os.stat("d/up/file"), lambda: os.stat("d/up/d/up/d/f"), lambda: os.stat("."),
    lambda: os.stat(".."), lambda: os.stat("deep_up/etc/hostname"), lambda: read("d/f"),
    lambda: read("l_rel"), lambda: read("file", os.O_DIRECTORY),
    lambda: read("l_rel", os.O_NOFOLLOW),
    lambda: os.open("dangling", os.O_CREAT | os.O_EXCL | os.O_WRONLY),
    lambda: os.mkdir("d"), lambda: os.readlink("file"),
    lambda: os.access("l_dir/sub", os.F_OK), lambda: read("f", dir_fd=D),
    lambda: read("../file", dir_fd=D), lambda: read("up/l_rel", dir_fd=D),
    lambda: os.stat(D), lambda: os.stat("d//f"), lambda: os.stat("d/sub/g/"),
    lambda: os.unlink("d"), lambda: os.stat("l_loopdir/x"), lambda: os.stat(A + "/d/f"),
    lambda: os.stat(A + "/l_dir/../file"), lambda: os.stat(A + "/d/sub/../f"),
    lambda: os.readlink(A + "/d/up"), lambda: os.stat("d/f/.."),
    lambda: os.stat("l_dir/.."), lambda: os.stat("l_dotdot/" + os.path.basename(A) + "/file"),
    lambda: os.rmdir("l_dir/"), lambda: os.stat("/" + "x" * 4100),
    lambda: os.lstat("l_chain/"), lambda: os.stat("d/sub/./../sub/g"),
]
for i, case in enumerate(CASES):
    print(i, attempt(case))
os.chdir("d")
print("chdir", attempt(lambda: os.stat("f")), attempt(lambda: os.stat("../file")))
os.chdir("up/l_dir/sub")
print("chdir2", attempt(lambda: os.stat("g")), attempt(lambda: os.stat("../../file")))
