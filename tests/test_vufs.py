"""vufs: bind, merge, cow, mincow, except (issue: vufs, acceptance 1 and 2)."""
import hashlib
import os
import re
import subprocess


from conftest import run


def sh(mode, script, **kw):
    return run(mode, ["bash", "-c", "vu_insmod vufs && " + script], **kw)


def tree_listing(root):
    """sha256 listing of a host tree: path, mode, size, content hash."""
    out = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            p = os.path.join(d, name)
            st = os.lstat(p)
            h = ""
            if os.path.isfile(p) and not os.path.islink(p):
                h = hashlib.sha256(open(p, "rb").read()).hexdigest()
            out.append((os.path.relpath(p, root), oct(st.st_mode), st.st_size, h))
    return out


def make_tree(root):
    os.makedirs(root / "sub" / "deep")
    (root / "a").write_text("original a\n")
    (root / "sub" / "s").write_text("s\n")
    (root / "sub" / "deep" / "d").write_text("d\n")
    (root / "other").write_text("other\n")
    subprocess.run(["cp", "-a", "/usr/share/doc/bash", str(root / "docs")], check=True)


def test_bind_file_and_dir_writes_and_ro(tmp_path, guest_mode):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    (src / "f").write_text("in source\n")
    (tmp_path / "file").write_text("a file\n")
    (tmp_path / "target").write_text("hidden\n")
    r = sh(guest_mode, f"""
        vumount -t vufs {src} {dst} && cat {dst}/f && echo written > {dst}/new &&
        vumount -t vufs {tmp_path}/file {tmp_path}/target && cat {tmp_path}/target &&
        echo appended >> {tmp_path}/target &&
        vumount -t vufs -o ro {src} {tmp_path}/dst2 2>/dev/null; mkdir {tmp_path}/dst2
        vumount -t vufs -o ro {src} {tmp_path}/dst2 && echo x > {tmp_path}/dst2/y; echo st=$?
        touch {tmp_path}/dst2/f; echo st=$?""")
    assert r.stdout.decode().split("\n")[:4] == ["in source", "a file", "st=1", "st=1"]
    assert r.stderr.decode().count("Read-only file system") == 2
    assert (src / "new").read_text() == "written\n"  # seen by the host
    assert (tmp_path / "file").read_text() == "a file\nappended\n"
    assert (tmp_path / "target").read_text() == "hidden\n"


def test_cow(tmp_path, guest_mode):
    tree, upper = tmp_path / "tree", tmp_path / "upper"
    make_tree(tree)
    upper.mkdir()
    before = tree_listing(tree)
    script = f"""
        vumount -t vufs -o cow {upper} {tree} && cd {tree} &&
        tar cf - docs | (mkdir copy && cd copy && tar xf -) && diff -r docs copy/docs &&
        rm -rf sub && chmod 600 a && echo new > n && mv other renamed && echo more >> a &&
        ls && cat a && stat -c %a a && ls sub 2>&1 | wc -l"""
    r = sh(guest_mode, script)
    assert r.returncode == 0, r.stderr
    expected = ["a", "copy", "docs", "n", "renamed", "original", "a", "more", "600", "1"]
    assert r.stdout.decode().split() == expected
    assert tree_listing(tree) == before  # the real tree is untouched
    # upper holds only the changes: a, n, renamed, the copied docs, and whiteouts
    files = sorted(os.path.relpath(os.path.join(d, f), upper)
                   for d, _, fs in os.walk(upper) for f in fs)
    n_docs = len(os.listdir(tree / "docs"))
    assert len([f for f in files if f.startswith("copy/")]) == n_docs
    rest = [f for f in files if not f.startswith("copy/")]
    assert rest == [".-/.wh.other", ".-/.wh.sub", ".-/sub/.wh.deep", ".-/sub/.wh.s",
                    ".-/sub/deep/.wh.d", "a", "n", "renamed"]
    # a second session with the same upper layer sees the same view
    r2 = sh(guest_mode, f"vumount -t vufs -o cow {upper} {tree} && cd {tree} && ls && cat a")
    assert r2.stdout.decode().split() == expected[:8]


def test_merge_and_except(tmp_path, guest_mode):
    tree, layer = tmp_path / "tree", tmp_path / "layer"
    tree.mkdir()
    layer.mkdir()
    (tree / "both").write_text("real\n")
    (tree / "realonly").write_text("r\n")
    (layer / "both").write_text("layer\n")
    (layer / "layeronly").write_text("l\n")
    os.mkdir(tree / "hole")
    (tree / "hole" / "h").write_text("real hole\n")
    r = sh(guest_mode, f"""
        vumount -t vufs -o merge,except=hole {layer} {tree} && cd {tree} &&
        ls && cat both && ls hole && echo new > created""")
    assert r.stdout.decode().split() == ["both", "hole", "layeronly", "realonly", "layer",
                                         "h"]
    assert (layer / "created").exists() and not (tree / "created").exists()


def test_bad_vufs_options(tmp_path, guest_mode):
    r = sh(guest_mode, f"vumount -t vufs -o cow,bogus {tmp_path} {tmp_path}")
    assert r.returncode == 1
    assert r.stderr.decode().strip() == (
        "vumount: vufs on %s: unknown mount option 'bogus': Invalid argument" % tmp_path)


def test_mincow_copies_up_only_what_the_user_may_not_write(as_user):
    work = as_user.work
    tree, upper = work / "tree", work / "upper"
    for d in (tree, upper):
        d.mkdir()
    (tree / "writable").write_text("w\n")
    (tree / "readonly").write_text("r\n")
    os.chmod(tree / "readonly", 0o444)
    subprocess.run(["chown", "-R", "nobody", str(tree), str(upper)], check=True)
    os.chmod(tree / "readonly", 0o444)
    r = as_user(["bash", "-c", f"vu_insmod vufs && vumount -t vufs -o mincow {upper} {tree} "
                 f"&& echo W >> {tree}/writable && chmod u+w {tree}/readonly && "
                 f"echo R >> {tree}/readonly && cat {tree}/readonly"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"r\nR\n"
    assert (tree / "writable").read_text() == "w\nW\n"  # changed in place
    assert (tree / "readonly").read_text() == "r\n"  # the real one is untouched
    assert sorted(os.listdir(upper)) == ["readonly"]  # only it was copied up


ROOT_PROGRAMS = ("bash", "ls", "cat", "head", "apt-get", "env", "id", "pwd", "readlink")


def make_rootfs(top):
    """A root tree assembled from the host's binaries and the libraries they need."""
    import shutil
    import subprocess
    root = top / "rootfs"
    for d in ("etc", "proc", "dev", "tmp", "root", "usr/bin"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    for name in ROOT_PROGRAMS:
        path = shutil.which(name, path="/usr/bin:/bin")
        files = [path] + re.findall(r"(/\S+) \(0x", subprocess.run(
            ["ldd", path], capture_output=True, text=True).stdout)
        for f in files:
            dest = root / f.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not dest.exists():
                shutil.copy2(f, dest)
    for link, target in (("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")):
        if not (root / link).exists() and (root / target).exists():
            os.symlink(target, root / link)
    shutil.copy2("/usr/lib/os-release", root / "etc" / "os-release")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n"
                                         "nobody:x:65534:65534:nobody:/:/bin/sh\n")
    subprocess.run(["chmod", "-R", "a+rX", str(top)], check=True)
    os.chmod(root / "tmp", 0o1777)
    return root


def test_private_root_as_unprivileged_user(as_user):
    root = make_rootfs(as_user.work / "priv")
    script = f"""
        vu_insmod vufs && vumount -t vufs /proc /proc && vumount -t vufs /dev /dev &&
        vumount -t vufs -o bind {root} / &&
        ls / && head -1 /etc/os-release && apt-get --version | head -1 &&
        cd /usr/bin && pwd && readlink /proc/self/cwd /proc/self/exe &&
        echo private > /tmp/made-inside && cat /tmp/made-inside &&
        {{ [ -e {as_user.work} ] || echo "no host tree"; }} && id -un
    """
    r = as_user(["bash", "-c", script])
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode().splitlines()
    assert out[:out.index("usr") + 1] == sorted(os.listdir(root))
    rest = out[out.index("usr") + 1:]
    assert rest[0] == 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"'
    assert rest[1].startswith("apt ")
    assert rest[2:5] == ["/usr/bin", "/usr/bin", "/usr/bin/readlink"]
    assert rest[5] == "private"
    assert rest[6:] == ["no host tree", "nobody"]
    # the write landed in the tree, not in the host's /tmp
    assert (root / "tmp" / "made-inside").read_text() == "private\n"
    assert not os.path.exists("/tmp/made-inside")


def test_move_and_rbind(tmp_path):
    for d in ("src", "a", "b", "tree", "tree/sub", "copy"):
        (tmp_path / d).mkdir()
    (tmp_path / "src" / "f").write_text("bound\n")
    script = f"""
        vu_insmod vufs vufuse && cd {tmp_path} &&
        vumount -t vufs src a && vumount -M a b && cat b/f && {{ cat a/f 2>/dev/null || echo moved; }} &&
        vumount -t vufusememfs none tree/sub && echo inner > tree/sub/g &&
        vumount -R tree copy && cat copy/sub/g && vuumount copy/sub && cat tree/sub/g &&
        grep -c " {tmp_path}/b " /proc/mounts
    """
    r = run("umvu", ["bash", "-c", script])
    assert r.stdout.decode().split() == ["bound", "moved", "inner", "inner", "1"], \
        r.stderr.decode()
