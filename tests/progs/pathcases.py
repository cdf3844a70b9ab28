"""Paths that reach a mount point at T/mnt in every way the kernel allows (absolute,
relative, dirfd, .., symlinks, cwd inside): one line per case with the answer.
usage: pathcases.py T  (run with cwd = T; T/mnt holds x = "virt" and sub/y)"""
import os
import sys

from caselib import attempt as attempt_ino, read

T = sys.argv[1]


def attempt(fn):
    return attempt_ino(fn, with_ino=False)  # inode numbers differ between the two trees


def main():
    for name, target in (("lnk_abs", T + "/mnt/x"), ("lnk_rel", "mnt/x"),
                         ("lnk_dir", "mnt"), ("chain", "lnk_rel"), ("real/up", ".."),
                         ("lnk_sub", "mnt/sub"), ("loop_a", "loop_b"),
                         ("loop_b", "loop_a"), ("dangling", "mnt/none"),
                         ("lnk_proc", "/proc/self/cwd")):
        os.symlink(target, name)
    dots = "/".join([".."] * (T.count("/") + 2))
    paths = ["mnt/x", "./mnt/x", "real/../mnt/x", T + "/mnt/x", "/.." + T + "/mnt/x",
             dots + T + "/mnt/x", "lnk_abs", "lnk_rel", "lnk_dir/x", "chain",
             "real/up/mnt/x", "lnk_sub/y", "lnk_sub/../x", "loop_a", "dangling",
             "nonexist/../mnt/x", "mnt/x/", "mnt/sub/", "mnt", "mnt/", "real/f",
             "mnt/../real/f", "lnk_dir/../real/f"]
    for p in paths:
        print(p, "read", attempt(lambda: read(p)))
        print(p, "stat", attempt(lambda: os.stat(p)))
        print(p, "lstat", attempt(lambda: os.lstat(p)))
        print(p, "access", attempt(lambda: os.access(p, os.R_OK)))
    top = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    realfd = os.open("real", os.O_RDONLY | os.O_DIRECTORY)
    mntfd = os.open("mnt", os.O_RDONLY | os.O_DIRECTORY)
    for what, fd, p in (("top", top, "mnt/x"), ("top", top, "lnk_dir/x"),
                        ("real", realfd, "../mnt/x"), ("real", realfd, "up/lnk_abs"),
                        ("mnt", mntfd, "x"), ("mnt", mntfd, "sub/y"),
                        ("mnt", mntfd, "../real/f"), ("mnt", mntfd, "..")):
        print("at", what, p, "read", attempt(lambda: read(p, dir_fd=fd)))
        print("at", what, p, "stat", attempt(lambda: os.stat(p, dir_fd=fd)))
        print("at", what, p, "lstat", attempt(
            lambda: os.stat(p, dir_fd=fd, follow_symlinks=False)))
    print("readlink", attempt(lambda: os.readlink("lnk_abs")))
    # changes made through each kind of path
    print("mkdir", attempt(lambda: os.mkdir("lnk_dir/new")), sorted(os.listdir("mnt")))
    print("write", attempt(lambda: open("lnk_sub/../w", "w").write("ww")),
          attempt(lambda: os.stat("mnt/w")))
    print("rename in", attempt(lambda: os.rename("lnk_dir/w", "mnt/w2")))
    print("symlink", attempt(lambda: os.symlink("x", "lnk_dir/sx")),
          attempt(lambda: read("mnt/sx")))
    print("chmod", attempt(lambda: os.chmod("lnk_rel", 0o600)),
          attempt(lambda: oct(os.stat("mnt/x").st_mode)))
    fd = os.open("mnt/x", os.O_RDONLY)
    print("utime fd", attempt(lambda: os.utime(fd, ns=(10**9, 2 * 10**9))),
          attempt(lambda: os.stat("lnk_abs").st_mtime_ns))
    print("dev fd", attempt(lambda: read("/dev/fd/%d" % fd)),
          attempt(lambda: read("/proc/self/fd/%d" % fd)),
          attempt(lambda: os.stat("/proc/self/fd/%d" % fd)))
    dfd = os.open("mnt/sub", os.O_RDONLY | os.O_DIRECTORY)
    print("dir fd", attempt(lambda: read("/proc/self/fd/%d/y" % dfd)),
          attempt(lambda: read("/proc/%d/fd/%d/../x" % (os.getpid(), dfd))))
    os.close(dfd)
    os.close(fd)
    print("unlink", attempt(lambda: os.unlink("lnk_dir/w2")), sorted(os.listdir("mnt")))
    os.chdir("mnt")
    for p in ("x", "./sub/y", "../real/f", "../lnk_abs", T + "/real/f", "."):
        print("in mnt", p, "stat", attempt(lambda: os.stat(p)))
        print("in mnt", p, "read", attempt(lambda: read(p)) if p != "." else "")
    print("in mnt cwd", os.getcwd() == T + "/mnt",
          attempt(lambda: os.readlink("/proc/self/cwd") == T + "/mnt"),
          attempt(lambda: read(T + "/lnk_proc/x")), attempt(lambda: read("/proc/self/cwd/x")),
          attempt(lambda: os.stat("/proc/%d/cwd/sub" % os.getpid())),
          attempt(lambda: sorted(os.listdir("/proc/self/cwd"))))
    os.chdir("sub")
    print("in sub", attempt(lambda: read("y")), attempt(lambda: read("../../real/f")))
    os.chdir(T)
    print("back", attempt(lambda: read("mnt/x")), attempt(lambda: read("real/f")))


main()
