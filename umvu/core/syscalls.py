"""The declarative x86_64 system call table: one row per system call.

Each row: number, name, *choice*, argument kinds.

choice: how the core picks the module responsible for a call (VUOS's choice functions)
    path    the (dirfd-relative) path argument          fd      the fd argument
    path2   two paths (rename, link)                     fd2     two fds (dup2, splice...)
    socket  the address family                           ioctl   fd and request number
    mount   mount type / target                          umount  target path
    mmap    the fd of a file mapping                     std     the syscall number
    sockaddr  the fd argument, or an AF_UNIX path in the address (bind, connect)
    proc    process life (clone, exec, exit): core-tracked, never a module's
    none    memory, scheduling, signals...: always the kernel's

argument kinds: fd dirfd path str buf_in buf_out size int uint flags mode off ptr
    pid uid gid sig addr  (``buf_in:N``/``buf_out:N`` name the size argument index;
    ``kind/name`` gives the argument a name of its own, see below)

how the path is resolved (after the arguments; the default follows a last symlink):
    =nofollow    the last symlink is not followed (lstat, unlink, mkdir, rename...)
    =follow:N    followed only with AT_SYMLINK_FOLLOW in argument N (linkat)
    =at:N        argument N holds AT_* flags: AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH
    =oflags:N    argument N holds O_* flags (O_NOFOLLOW; O_CREAT|O_EXCL follows nothing)
    =how:N       argument N points to a struct open_how (openat2)
    =creat       O_CREAT|O_WRONLY|O_TRUNC (creat)
    =entry       it makes or removes the last component (the parent must exist)
    =writes      it changes the file system (an open does by its flags): where the kernel
                 would serve it, umvu makes it itself on what it checked (hostcalls.py)

Virtual system calls (numbers Linux does not use, as in VUOS) are rows with negative
numbers.

Handlers get the arguments by name: ``sc.bind(raw)`` is the raw tuple with one attribute
an argument, named by its kind (the second of a kind gets a ``2``: ``renameat`` has
``dirfd, path, dirfd2, path2``) or by the name its row gives it (``fd/in_fd``). Kinds the kernel takes as int are signed 32-bit
(fd dirfd int flags mode pid uid gid sig), ``off`` is signed 64-bit, the rest (sizes,
pointers, addresses, uint) are as the registers hold them. ``args.changed(mode=0)``
gives the registers with named arguments replaced.
"""
from __future__ import annotations

from operator import itemgetter


_TABLE = """
0 read fd fd buf_out:2 size
1 write fd fd buf_in:2 size
2 open path path flags mode =oflags:1
3 close fd fd
4 stat path path ptr
5 fstat fd fd ptr
6 lstat path path ptr =nofollow
7 poll std ptr uint int
8 lseek fd fd off int
9 mmap mmap addr size int flags fd off
10 mprotect none addr size int
11 munmap std addr size
12 brk none addr
13 rt_sigaction none sig ptr ptr size
14 rt_sigprocmask none int ptr ptr size
15 rt_sigreturn none
16 ioctl ioctl fd uint ptr
17 pread64 fd fd buf_out:2 size off
18 pwrite64 fd fd buf_in:2 size off
19 readv fd fd ptr int
20 writev fd fd ptr int
21 access path path mode
22 pipe none ptr
23 select std int ptr ptr ptr ptr
24 sched_yield none
25 mremap std addr size size flags addr
26 msync std addr size flags
27 mincore none addr size ptr
28 madvise none addr size int
29 shmget none int size flags
30 shmat none int addr flags
31 shmctl none int int ptr
32 dup fd fd
33 dup2 fd2 fd fd
34 pause none
35 nanosleep std ptr ptr
36 getitimer std int ptr
37 alarm std uint
38 setitimer std int ptr ptr
39 getpid none
40 sendfile fd2 fd/out_fd fd/in_fd ptr/in_off size
41 socket socket int int int
42 connect sockaddr fd ptr size
43 accept fd fd ptr ptr
44 sendto fd fd buf_in:2 size flags ptr size
45 recvfrom fd fd buf_out:2 size flags ptr ptr
46 sendmsg fd fd ptr flags
47 recvmsg fd fd ptr flags
48 shutdown fd fd int
49 bind sockaddr fd ptr size
50 listen fd fd int
51 getsockname fd fd ptr ptr
52 getpeername fd fd ptr ptr
53 socketpair socket int int int ptr
54 setsockopt fd fd int int ptr size
55 getsockopt fd fd int int ptr ptr
56 clone proc flags addr ptr ptr addr
57 fork proc
58 vfork proc
59 execve proc path ptr ptr
60 exit proc int
61 wait4 none pid ptr flags ptr
62 kill none pid sig
63 uname std ptr
64 semget none int int flags
65 semop none int ptr size
66 semctl none int int int ptr
67 shmdt none addr
68 msgget none int flags
69 msgsnd none int ptr size flags
70 msgrcv none int ptr size int flags
71 msgctl none int int ptr
72 fcntl fd fd int ptr
73 flock fd fd int
74 fsync fd fd
75 fdatasync fd fd
76 truncate path path off =writes
77 ftruncate fd fd off
78 getdents fd fd ptr size
79 getcwd std buf_out:1 size
80 chdir path path
81 fchdir fd fd
82 rename path2 path path =nofollow =writes
83 mkdir path path mode =nofollow =entry =writes
84 rmdir path path =nofollow =entry =writes
85 creat path path mode =creat
86 link path2 path path =nofollow =writes
87 unlink path path =nofollow =entry =writes
88 symlink path str path =nofollow =entry =writes
89 readlink path path buf_out:2 size =nofollow
90 chmod path path mode =writes
91 fchmod fd fd mode
92 chown path path uid gid =writes
93 fchown fd fd uid gid
94 lchown path path uid gid =nofollow =writes
95 umask std mode
96 gettimeofday std ptr ptr
97 getrlimit none int ptr
98 getrusage none int ptr
99 sysinfo std ptr
100 times none ptr
101 ptrace std int pid addr ptr
102 getuid std
103 syslog std int ptr int
104 getgid std
105 setuid std uid
106 setgid std gid
107 geteuid std
108 getegid std
109 setpgid none pid pid
110 getppid none
111 getpgrp none
112 setsid none
113 setreuid std uid uid
114 setregid std gid gid
115 getgroups std int ptr
116 setgroups std int ptr
117 setresuid std uid uid uid
118 getresuid std ptr ptr ptr
119 setresgid std gid gid gid
120 getresgid std ptr ptr ptr
121 getpgid none pid
122 setfsuid std uid
123 setfsgid std gid
124 getsid none pid
125 capget std ptr ptr
126 capset std ptr ptr
127 rt_sigpending none ptr size
128 rt_sigtimedwait none ptr ptr ptr size
129 rt_sigqueueinfo none pid sig ptr
130 rt_sigsuspend none ptr size
131 sigaltstack none ptr ptr
132 utime path path ptr =writes
133 mknod path path mode uint =nofollow =entry =writes
134 uselib path path
135 personality none uint
136 ustat none uint ptr
137 statfs path path ptr
138 fstatfs fd fd ptr
139 sysfs none int ptr ptr
140 getpriority none int int
141 setpriority none int int int
142 sched_setparam none pid ptr
143 sched_getparam none pid ptr
144 sched_setscheduler none pid int ptr
145 sched_getscheduler none pid
146 sched_get_priority_max none int
147 sched_get_priority_min none int
148 sched_rr_get_interval none pid ptr
149 mlock none addr size
150 munlock none addr size
151 mlockall none flags
152 munlockall none
153 vhangup none
154 modify_ldt none int ptr size
155 pivot_root path2 path path
156 _sysctl none ptr
157 prctl none int uint uint uint uint
158 arch_prctl none int addr
159 adjtimex std ptr
160 setrlimit none int ptr
161 chroot path path
162 sync std
163 acct path path
164 settimeofday std ptr ptr
165 mount mount str/source path/target str/fstype flags ptr/data
166 umount2 umount path/target flags
167 swapon path path flags
168 swapoff path path
169 reboot none int int uint ptr
170 sethostname std str size
171 setdomainname std str size
172 iopl none int
173 ioperm none uint uint int
174 create_module none str size
175 init_module none ptr size str
176 delete_module none str flags
177 get_kernel_syms none ptr
178 query_module none str int ptr size ptr
179 quotactl path int path int ptr
180 nfsservctl none int ptr ptr
181 getpmsg none
182 putpmsg none
183 afs_syscall none
184 tuxcall none
185 security none
186 gettid none
187 readahead fd fd off size
188 setxattr path path str buf_in:3 size flags =writes
189 lsetxattr path path str buf_in:3 size flags =nofollow =writes
190 fsetxattr fd fd str buf_in:3 size flags
191 getxattr path path str buf_out:3 size
192 lgetxattr path path str buf_out:3 size =nofollow
193 fgetxattr fd fd str buf_out:3 size
194 listxattr path path buf_out:2 size
195 llistxattr path path buf_out:2 size =nofollow
196 flistxattr fd fd buf_out:2 size
197 removexattr path path str =writes
198 lremovexattr path path str =nofollow =writes
199 fremovexattr fd fd str
200 tkill none pid sig
201 time std ptr
202 futex none ptr int int ptr ptr int
203 sched_setaffinity none pid size ptr
204 sched_getaffinity none pid size ptr
205 set_thread_area none ptr
206 io_setup none uint ptr
207 io_destroy none uint
208 io_getevents none uint int int ptr ptr
209 io_submit none uint int ptr
210 io_cancel none uint ptr ptr
211 get_thread_area none ptr
212 lookup_dcookie none uint ptr size
213 epoll_create none int
214 epoll_ctl_old none
215 epoll_wait_old none
216 remap_file_pages none addr size int size flags
217 getdents64 fd fd ptr size
218 set_tid_address none ptr
219 restart_syscall none
220 semtimedop none int ptr size ptr
221 fadvise64 fd fd off size int
222 timer_create std int ptr ptr
223 timer_settime std int flags ptr ptr
224 timer_gettime std int ptr
225 timer_getoverrun none int
226 timer_delete none int
227 clock_settime std int ptr
228 clock_gettime std int ptr
229 clock_getres std int ptr
230 clock_nanosleep std int flags ptr ptr
231 exit_group proc int
232 epoll_wait std fd ptr int int
233 epoll_ctl std fd int fd ptr
234 tgkill none pid pid sig
235 utimes path path ptr =writes
236 vserver none
237 mbind none addr size int ptr uint flags
238 set_mempolicy none int ptr uint
239 get_mempolicy none ptr ptr uint addr flags
240 mq_open none str flags mode ptr
241 mq_unlink none str
242 mq_timedsend none int ptr size uint ptr
243 mq_timedreceive none int ptr size ptr ptr
244 mq_notify none int ptr
245 mq_getsetattr none int ptr ptr
246 kexec_load none uint uint ptr flags
247 waitid none int pid ptr flags ptr
248 add_key none str str ptr size int
249 request_key none str str str int
250 keyctl none int uint uint uint uint
251 ioprio_set none int int int
252 ioprio_get none int int
253 inotify_init none
254 inotify_add_watch path fd path uint
255 inotify_rm_watch none fd int
256 migrate_pages none pid uint ptr ptr
257 openat path dirfd path flags mode =oflags:2
258 mkdirat path dirfd path mode =nofollow =entry =writes
259 mknodat path dirfd path mode uint =nofollow =entry =writes
260 fchownat path dirfd path uid gid flags =at:4 =writes
261 futimesat path dirfd path ptr =writes
262 newfstatat path dirfd path ptr flags =at:3
263 unlinkat path dirfd path flags =nofollow =entry =writes
264 renameat path2 dirfd path dirfd path =nofollow =writes
265 linkat path2 dirfd path dirfd path flags =follow:4 =writes
266 symlinkat path str dirfd path =nofollow =entry =writes
267 readlinkat path dirfd path buf_out:3 size =nofollow
268 fchmodat path dirfd path mode =writes
269 faccessat path dirfd path mode
270 pselect6 std int ptr ptr ptr ptr ptr
271 ppoll std ptr uint ptr ptr size
272 unshare none flags
273 set_robust_list none ptr size
274 get_robust_list none pid ptr ptr
275 splice fd2 fd/in_fd ptr/in_off fd/out_fd ptr/out_off size flags
276 tee fd2 fd/in_fd fd/out_fd size flags
277 sync_file_range fd fd off off flags
278 vmsplice fd fd ptr size flags
279 move_pages none pid size ptr ptr ptr flags
280 utimensat path dirfd path ptr flags =at:3 =writes
281 epoll_pwait std fd ptr int int ptr size
282 signalfd none fd ptr size
283 timerfd_create std int flags
284 eventfd none uint
285 fallocate fd fd int/mode off/offset off/len
286 timerfd_settime std fd flags ptr ptr
287 timerfd_gettime std fd ptr
288 accept4 fd fd ptr ptr flags
289 signalfd4 none fd ptr size flags
290 eventfd2 none uint flags
291 epoll_create1 none flags
292 dup3 fd2 fd fd flags
293 pipe2 none ptr flags
294 inotify_init1 none flags
295 preadv fd fd ptr int off off
296 pwritev fd fd ptr int off off
297 rt_tgsigqueueinfo none pid pid sig ptr
298 perf_event_open none ptr pid int fd flags
299 recvmmsg fd fd ptr uint flags ptr
300 fanotify_init none flags flags
301 fanotify_mark path fd flags uint dirfd path
302 prlimit64 none pid int ptr ptr
303 name_to_handle_at path dirfd path ptr ptr flags =at:4
304 open_by_handle_at fd fd ptr flags
305 clock_adjtime std int ptr
306 syncfs fd fd
307 sendmmsg fd fd ptr uint flags
308 setns none fd int
309 getcpu none ptr ptr ptr
310 process_vm_readv none pid ptr uint ptr uint flags
311 process_vm_writev none pid ptr uint ptr uint flags
312 kcmp none pid pid int uint uint
313 finit_module none fd str flags
314 sched_setattr none pid ptr flags
315 sched_getattr none pid ptr uint flags
316 renameat2 path2 dirfd path dirfd path flags =nofollow =writes
317 seccomp none int flags ptr
318 getrandom none buf_out:1 size flags
319 memfd_create none str flags
320 kexec_file_load none fd fd size str flags
321 bpf none int ptr size
322 execveat proc dirfd path ptr ptr flags
323 userfaultfd none flags
324 membarrier none int flags int
325 mlock2 none addr size flags
326 copy_file_range fd2 fd/in_fd ptr/in_off fd/out_fd ptr/out_off size flags
327 preadv2 fd fd ptr int off off flags
328 pwritev2 fd fd ptr int off off flags
329 pkey_mprotect none addr size int int
330 pkey_alloc none flags uint
331 pkey_free none int
332 statx path dirfd path flags uint ptr =at:2
333 io_pgetevents none uint int int ptr ptr ptr
334 rseq none ptr uint flags uint
335 uretprobe none
424 pidfd_send_signal none fd sig ptr flags
425 io_uring_setup none uint ptr
426 io_uring_enter none fd uint uint flags ptr size
427 io_uring_register none fd uint ptr uint
428 open_tree path dirfd path flags =at:2
429 move_mount path2 dirfd path dirfd path flags =nofollow
430 fsopen none str flags
431 fsconfig none fd uint str ptr int
432 fsmount none fd flags flags
433 fspick path dirfd path flags
434 pidfd_open none pid flags
435 clone3 proc ptr size
436 close_range fd uint uint flags
437 openat2 path dirfd path ptr size =how:2
438 pidfd_getfd none fd int flags
439 faccessat2 path dirfd path mode flags =at:3
440 process_madvise none fd ptr size int flags
441 epoll_pwait2 std fd ptr int ptr ptr size
442 mount_setattr path dirfd path flags ptr size =at:2
443 quotactl_fd fd fd uint int ptr
444 landlock_create_ruleset none ptr size flags
445 landlock_add_rule none fd int ptr flags
446 landlock_restrict_self none fd flags
447 memfd_secret none flags
448 process_mrelease none fd flags
449 futex_waitv none ptr uint flags ptr int
450 set_mempolicy_home_node none addr size uint flags
451 cachestat fd fd ptr ptr flags
452 fchmodat2 path dirfd path mode flags =at:3 =writes
453 map_shadow_stack none addr size flags
454 futex_wake none ptr uint int flags
455 futex_wait none ptr uint uint flags ptr int
456 futex_requeue none ptr flags int int
457 statmount none ptr ptr size flags
458 listmount none ptr ptr size flags
459 lsm_get_self_attr none uint ptr ptr flags
460 lsm_set_self_attr none uint ptr size flags
461 lsm_list_modules none ptr ptr flags
462 mseal none addr size flags
463 setxattrat path dirfd path flags str ptr size =at:2 =writes
464 getxattrat path dirfd path flags str ptr size =at:2
465 listxattrat path dirfd path flags buf_out:4 size =at:2
466 removexattrat path dirfd path flags str =at:2 =writes
467 open_tree_attr path dirfd path flags ptr size
468 file_getattr path dirfd path ptr size flags =at:5
469 file_setattr path dirfd path ptr size flags =at:5
-1 vu_insmod virtual str/module flags
-2 vu_rmmod virtual str/module
-3 vu_lsmod virtual buf_out:1 size
-4 vuctl virtual int/op ptr/arg size/arg_size uint uint
-5 msocket virtual path int int int
"""

CHOICES = {"path", "path2", "fd", "fd2", "socket", "sockaddr", "ioctl", "mount", "umount",
           "mmap", "std", "proc", "none", "virtual"}
RULES = {"nofollow", "follow", "at", "oflags", "how", "creat", "entry", "writes"}
ARG_KINDS = {"fd", "dirfd", "path", "str", "buf_in", "buf_out", "size", "int", "uint",
             "flags", "mode", "off", "ptr", "pid", "uid", "gid", "sig", "addr"}


class Syscall:
    """One row: ``args`` are kinds; ``sizes[i]`` is the index of buffer i's size arg;
    the resolution rules: ``follow`` (True, False, or the index of the argument whose
    AT_SYMLINK_FOLLOW bit says), ``at_flags`` (index of the AT_* flags argument or None),
    ``oflags`` (("oflags"|"how"|"creat", index) or None), ``entry``."""
    __slots__ = ("nr", "name", "choice", "args", "sizes", "follow", "at_flags", "oflags",
                 "entry", "writes", "paths", "given", "_bound")

    def __init__(self, nr: int, name: str, choice: str, args: tuple, sizes: tuple,
                 rules: dict | None = None, given: tuple | None = None):
        self.nr, self.name, self.choice, self.args, self.sizes = nr, name, choice, args, sizes
        self.given = given or (None,) * len(args)  # names the row gives (kind/name)
        rules = rules or {}
        self.follow = False if "nofollow" in rules else rules.get("follow", True)
        self.at_flags = rules.get("at")
        self.oflags = next(((k, rules[k]) for k in ("oflags", "how", "creat") if k in rules),
                           None)
        self.entry = "entry" in rules
        self.writes = "writes" in rules
        # (index of each path argument, index of its dirfd or None)
        self.paths = tuple((i, i - 1 if i and args[i - 1] == "dirfd" else None)
                           for i, k in enumerate(args) if k == "path")
        self._bound = None

    def names(self) -> tuple[str, ...]:
        """The arguments' names: each its kind, the second of a kind with a 2."""
        seen: dict[str, int] = {}
        out = []
        for kind, given in zip(self.args, self.given):
            if given is not None:
                out.append(given)
                continue
            seen[kind] = seen.get(kind, 0) + 1
            out.append(kind if seen[kind] == 1 else "%s%d" % (kind, seen[kind]))
        return tuple(out)

    def bind(self, raw) -> tuple:
        """raw (the six registers) as this call's arguments: a tuple that also has an
        attribute an argument (see the module docstring)."""
        cls = self._bound
        if cls is None:
            cls = self._bound = _bound_class(self)
        return cls(raw)

    def __repr__(self) -> str:
        return "Syscall(%d, %s, %s, %s)" % (self.nr, self.name, self.choice, self.args)

    def path_args(self) -> tuple[int, ...]:
        return tuple(i for i, k in enumerate(self.args) if k == "path")


_SIGNED32 = {"fd", "dirfd", "int", "flags", "mode", "pid", "uid", "gid", "sig"}


def _getter(kind: str, i: int):
    # (s32 and s64 of umvu.core.abi, inline: an attribute is one call)
    if kind in _SIGNED32:
        return property(lambda a: ((a[i] & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000)
    if kind == "off":
        return property(lambda a: a[i] - (1 << 64) if a[i] >= 1 << 63 else a[i])
    return property(itemgetter(i))


def _changed(args, **named) -> list:
    """The registers with the named arguments replaced (for Native(args=...))."""
    new = list(args)
    names = args.syscall.names()
    for name, value in named.items():
        new[names.index(name)] = value
    return new


def _bound_class(sc: Syscall) -> type:
    attrs = {name: _getter(kind, i)
             for i, (name, kind) in enumerate(zip(sc.names(), sc.args))}
    attrs["__slots__"] = ()
    attrs["syscall"] = sc
    attrs["changed"] = _changed
    return type("%s_args" % sc.name, (tuple,), attrs)


def _parse(text: str) -> tuple[dict[int, Syscall], dict[str, Syscall]]:
    by_nr: dict[int, Syscall] = {}
    by_name: dict[str, Syscall] = {}
    for line in text.strip().splitlines():
        nr_s, name, choice, *raw = line.split()
        kinds, sizes, given, rules = [], [], [], {}
        for a in raw:
            kind, _, size = a.partition(":")
            if kind.startswith("="):
                if kind[1:] not in RULES:
                    raise ValueError("bad syscall row: %s" % line)
                rules[kind[1:]] = int(size) if size else True
                continue
            kind, _, own_name = kind.partition("/")
            kinds.append(kind)
            sizes.append(int(size) if size else None)
            given.append(own_name or None)
        sc = Syscall(int(nr_s), name, choice, tuple(kinds), tuple(sizes), rules,
                     tuple(given))
        if sc.nr in by_nr or name in by_name:
            raise ValueError("duplicate syscall row: %s" % line)
        if choice not in CHOICES or not set(kinds) <= ARG_KINDS:
            raise ValueError("bad syscall row: %s" % line)
        by_nr[sc.nr] = sc
        by_name[name] = sc
    return by_nr, by_name


BY_NR, BY_NAME = _parse(_TABLE)
NBITS = 512  # filter bitmap size: every x86_64 number is below this


def number(name: str) -> int:
    return BY_NAME[name].nr


def name_of(nr: int) -> str:
    sc = BY_NR.get(nr)
    return sc.name if sc else "syscall_%d" % nr


def bitmap(numbers) -> bytes:
    """The filter bitmap for a set of non-negative syscall numbers."""
    bits = bytearray(NBITS // 8)
    for nr in numbers:
        if 0 <= nr < NBITS:
            bits[nr // 8] |= 1 << (nr % 8)
    return bytes(bits)
