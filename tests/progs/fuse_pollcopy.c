/* A FUSE daemon (libfuse3, low level) that answers POLL and
 * COPY_FILE_RANGE, the two requests no packaged daemon answers: four files in its
 * root, all in memory.
 *   a        65536 bytes, byte i = (i * 7 + 3) & 255
 *   b        empty at the start, written by clients
 *   ready    readable (POLLIN) once armed, always writable; a read consumes the arming
 *            and gives "ready\n" (nothing when not armed)
 *   trigger  a write arms "ready" and wakes its pollers (fuse_lowlevel_notify_poll)
 * Each COPY_FILE_RANGE is a line on stderr with its names, offsets and length
 * (tests/test_fuse.py compares them with the kernel's). Usage: fuse_pollcopy
 * MOUNTPOINT (foreground). */
#define FUSE_USE_VERSION 34
#include <errno.h>
#include <fuse_lowlevel.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NFILES 4
static const char *names[NFILES] = { "a", "b", "ready", "trigger" };
static char *data[NFILES];
static size_t size[NFILES];
static int armed;
static struct fuse_pollhandle *waiting;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

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
        st->st_size = size[ino - 2];
        st->st_blocks = (size[ino - 2] + 511) / 512;
    }
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    for (int i = 0; i < NFILES && parent == 1; i++) {
        if (!strcmp(name, names[i])) {
            e.ino = i + 2;
            pthread_mutex_lock(&lock);
            fill(e.ino, &e.attr);
            pthread_mutex_unlock(&lock);
            fuse_reply_entry(req, &e);  /* (timeouts 0: every size asked again) */
            return;
        }
    }
    fuse_reply_err(req, ENOENT);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct stat st;
    (void)fi;
    if (ino < 1 || ino > NFILES + 1) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    pthread_mutex_lock(&lock);
    fill(ino, &st);
    pthread_mutex_unlock(&lock);
    fuse_reply_attr(req, &st, 0);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    if (to_set & FUSE_SET_ATTR_SIZE && ino > 1) {
        pthread_mutex_lock(&lock);
        char *grown = realloc(data[ino - 2], attr->st_size ? attr->st_size : 1);
        if (grown) {
            if ((size_t)attr->st_size > size[ino - 2])
                memset(grown + size[ino - 2], 0, attr->st_size - size[ino - 2]);
            data[ino - 2] = grown;
            size[ino - 2] = attr->st_size;
        }
        pthread_mutex_unlock(&lock);
    }
    op_getattr(req, ino, fi);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    if (ino == 4 || ino == 5)
        fi->direct_io = 1;  /* (no page cache: every read asks) */
    fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t want, off_t off,
                    struct fuse_file_info *fi)
{
    (void)fi;
    pthread_mutex_lock(&lock);
    if (ino == 4) {
        int was = armed;
        armed = 0;
        pthread_mutex_unlock(&lock);
        fuse_reply_buf(req, was ? "ready\n" : NULL, was ? 6 : 0);
        return;
    }
    size_t have = size[ino - 2];
    size_t n = (size_t)off >= have ? 0 : have - off < want ? have - off : want;
    char *copy = malloc(n ? n : 1);
    memcpy(copy, data[ino - 2] + off, n);
    pthread_mutex_unlock(&lock);
    fuse_reply_buf(req, copy, n);
    free(copy);
}

static int store(fuse_ino_t ino, const char *buf, size_t n, off_t off)
{
    size_t end = off + n;
    if (end > size[ino - 2]) {
        char *grown = realloc(data[ino - 2], end);
        if (!grown)
            return -ENOSPC;
        memset(grown + size[ino - 2], 0, end - size[ino - 2]);
        data[ino - 2] = grown;
        size[ino - 2] = end;
    }
    memmove(data[ino - 2] + off, buf, n);
    return 0;
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t n, off_t off,
                     struct fuse_file_info *fi)
{
    (void)fi;
    pthread_mutex_lock(&lock);
    if (ino == 5) {
        armed = 1;
        if (waiting) {
            fuse_lowlevel_notify_poll(waiting);
            fuse_pollhandle_destroy(waiting);
            waiting = NULL;
        }
        pthread_mutex_unlock(&lock);
        fuse_reply_write(req, n);
        return;
    }
    int err = ino == 4 ? -EPERM : store(ino, buf, n, off);
    pthread_mutex_unlock(&lock);
    if (err)
        fuse_reply_err(req, -err);
    else
        fuse_reply_write(req, n);
}

static void op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                    struct fuse_pollhandle *ph)
{
    (void)fi;
    unsigned revents = POLLOUT;
    pthread_mutex_lock(&lock);
    if (ino != 4 || armed)
        revents |= POLLIN;
    if (ino == 4 && ph) {
        if (waiting)
            fuse_pollhandle_destroy(waiting);
        waiting = ph;
        ph = NULL;
    }
    pthread_mutex_unlock(&lock);
    if (ph)
        fuse_pollhandle_destroy(ph);
    fuse_reply_poll(req, revents);
}

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
                               struct fuse_file_info *fi_in, fuse_ino_t ino_out,
                               off_t off_out, struct fuse_file_info *fi_out, size_t len,
                               int flags)
{
    (void)fi_in; (void)fi_out;
    fprintf(stderr, "fuse_pollcopy: COPY_FILE_RANGE %s %lld %s %lld %zu %d\n",
            names[ino_in - 2], (long long)off_in, names[ino_out - 2], (long long)off_out,
            len, flags);
    fflush(stderr);
    if (ino_in > 3 || ino_out > 3) {
        fuse_reply_err(req, EOPNOTSUPP);
        return;
    }
    pthread_mutex_lock(&lock);
    size_t have = size[ino_in - 2];
    size_t n = (size_t)off_in >= have ? 0 : have - off_in < len ? have - off_in : len;
    char *copy = malloc(n ? n : 1);
    memcpy(copy, data[ino_in - 2] + off_in, n);
    int err = store(ino_out, copy, n, off_out);
    pthread_mutex_unlock(&lock);
    free(copy);
    if (err)
        fuse_reply_err(req, -err);
    else
        fuse_reply_write(req, n);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t want, off_t off,
                       struct fuse_file_info *fi)
{
    char buf[1024];
    size_t used = 0;
    (void)fi;
    if (ino != 1) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    for (int i = off; i < NFILES + 2; i++) {
        struct stat st;
        memset(&st, 0, sizeof st);
        st.st_ino = i < 2 ? 1 : i;
        st.st_mode = i < 2 ? S_IFDIR : S_IFREG;
        const char *name = i == 0 ? "." : i == 1 ? ".." : names[i - 2];
        size_t n = fuse_add_direntry(req, buf + used, sizeof buf - used, name, &st, i + 1);
        if (used + n > want || used + n > sizeof buf)
            break;
        used += n;
    }
    fuse_reply_buf(req, buf, used);
}

static const struct fuse_lowlevel_ops ops = {
    .lookup = op_lookup, .getattr = op_getattr, .setattr = op_setattr, .open = op_open,
    .read = op_read, .write = op_write, .poll = op_poll,
    .copy_file_range = op_copy_file_range, .readdir = op_readdir,
};

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuse_pollcopy MOUNTPOINT\n");
        return 2;
    }
    size[0] = 65536;
    data[0] = malloc(size[0]);
    for (size_t i = 0; i < size[0]; i++)
        data[0][i] = (char)((i * 7 + 3) & 255);
    for (int i = 1; i < NFILES; i++)
        data[i] = malloc(1);
    char *args_v[] = { argv[0], NULL };
    struct fuse_args args = FUSE_ARGS_INIT(1, args_v);
    struct fuse_session *se = fuse_session_new(&args, &ops, sizeof ops, NULL);
    if (!se || fuse_session_mount(se, argv[1]))
        return 1;
    int ret = fuse_session_loop(se);
    fuse_session_unmount(se);
    fuse_session_destroy(se);
    return ret ? 1 : 0;
}
