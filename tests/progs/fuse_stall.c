/* A FUSE daemon (libfuse3, low level) whose one file's reads get no answer of their
 * own: one file /f of 4096 bytes. A READ waits until the kernel (or umvu) sends
 * INTERRUPT for it; then the daemon answers it EINTR, as a daemon that supports
 * interruption does, or with "-o late" the data after all ("late!"), as one that
 * finishes what it started. Each READ and INTERRUPT is a line on stderr
 * (tests/test_fuse.py). Usage: fuse_stall [-o late] MOUNTPOINT (foreground). */
#define FUSE_USE_VERSION 34
#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int late;
static fuse_req_t stalled;

static void fill(fuse_ino_t ino, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = ino;
    if (ino == 1) {
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = 2;
    } else {
        st->st_mode = S_IFREG | 0644;
        st->st_nlink = 1;
        st->st_size = 4096;
    }
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fuse_entry_param e;
    if (parent != 1 || strcmp(name, "f")) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    memset(&e, 0, sizeof e);
    e.ino = 2;
    e.attr_timeout = e.entry_timeout = 60;
    fill(2, &e.attr);
    fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct stat st;
    (void)fi;
    fill(ino, &st);
    fuse_reply_attr(req, &st, 60);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    fi->direct_io = 1;
    fuse_reply_open(req, fi);
}

static void interrupted(fuse_req_t req, void *data)
{
    (void)data;
    fprintf(stderr, "fuse_stall: INTERRUPT\n");
    fflush(stderr);
    if (req == stalled) {
        stalled = NULL;
        if (late)
            fuse_reply_buf(req, "late!", 5);
        else
            fuse_reply_err(req, EINTR);
    }
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    (void)ino; (void)size; (void)off; (void)fi;
    fprintf(stderr, "fuse_stall: READ\n");
    fflush(stderr);
    stalled = req;
    fuse_req_interrupt_func(req, interrupted, NULL);  /* (may call it at once) */
}

static const struct fuse_lowlevel_ops ops = {
    .lookup = op_lookup, .getattr = op_getattr, .open = op_open, .read = op_read,
};

int main(int argc, char **argv)
{
    const char *mnt = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc && !strcmp(argv[i + 1], "late"))
            late = 1, i++;
        else
            mnt = argv[i];
    }
    if (!mnt) {
        fprintf(stderr, "usage: fuse_stall [-o late] MOUNTPOINT\n");
        return 2;
    }
    char *args_v[] = { argv[0], NULL };
    struct fuse_args args = FUSE_ARGS_INIT(1, args_v);
    struct fuse_session *se = fuse_session_new(&args, &ops, sizeof ops, NULL);
    if (!se || fuse_session_mount(se, mnt))
        return 1;
    fprintf(stderr, "fuse_stall: mounted\n");
    int ret = fuse_session_loop(se);
    fuse_session_unmount(se);
    fuse_session_destroy(se);
    return ret ? 1 : 0;
}
