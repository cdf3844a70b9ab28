# Search permission on every directory of a path (tests/test_file_semantics.py)
as() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }
mkdir -m 700 d && echo x > d/f && mkdir d/sub && echo y > d/sub/g
mkdir -m 711 e && echo z > e/h && chmod 644 e/h && mkdir -m 755 e/deep && echo w > e/deep/i
mkdir -m 755 p && mkdir -m 700 p/q && mkdir -m 777 p/q/r
for f in d/f d/sub/g d/nothing e/h e/deep/i e/nothing p/q/r p/q/r/new; do
    as python3 -c 'import os, sys
for what, fn in (("stat", os.stat), ("open", lambda p: os.close(os.open(p, os.O_RDONLY))),
                 ("mkdir", lambda p: os.mkdir(p + ".d")), ("list", os.listdir)):
    try:
        fn(sys.argv[1])
        print(sys.argv[1], what, 0)
    except OSError as e:
        print(sys.argv[1], what, e.strerror)' $f
done
as ls e 2>&1; echo ls=$?
