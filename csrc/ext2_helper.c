/* umvu: helpers around libext2fs for the vufuseext2 submodule.
 *
 * Each helper does one file-system operation from start to end: it reads the
 * inodes it needs, changes them, and writes them back, so no stale inode copy
 * survives between calls (libext2fs file handles and xattr handles keep their
 * own copies).  Errors are returned as errcode_t and mapped to errno in Python.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <et/com_err.h>
#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>

#include "ext2_helper.h"
#include "ext2_internal.h"

static void set_ids(inode_t *in, uint32_t uid, uint32_t gid)
{
    in->i_uid = uid & 0xffff;
    ext2fs_set_i_uid_high(*in, uid >> 16);
    in->i_gid = gid & 0xffff;
    ext2fs_set_i_gid_high(*in, gid >> 16);
}

static int filetype_of(uint32_t mode)
{
    switch (mode & S_IFMT) {
    case S_IFREG: return EXT2_FT_REG_FILE;
    case S_IFDIR: return EXT2_FT_DIR;
    case S_IFCHR: return EXT2_FT_CHRDEV;
    case S_IFBLK: return EXT2_FT_BLKDEV;
    case S_IFIFO: return EXT2_FT_FIFO;
    case S_IFSOCK: return EXT2_FT_SOCK;
    case S_IFLNK: return EXT2_FT_SYMLINK;
    }
    return EXT2_FT_UNKNOWN;
}

/* ext2fs_link, growing a linear directory when it is full (an htree directory
 * grows by itself in ext2fs_link) */
static errcode_t link_expand(ext2_filsys fs, ext2_ino_t dir, const char *name,
                             ext2_ino_t ino, int ft)
{
    errcode_t err = ext2fs_link(fs, dir, name, ino, ft);
    if (err == EXT2_ET_DIR_NO_SPACE) {
        struct ext2_inode din;
        if (ext2fs_read_inode(fs, dir, &din) || (din.i_flags & EXT2_INDEX_FL))
            return err;
        err = ext2fs_expand_dir(fs, dir);
        if (!err)
            err = ext2fs_link(fs, dir, name, ino, ft);
    }
    return err;
}

/* a directory's mtime and ctime (after an entry was added or removed) and
 * its link count (delta for a subdirectory's "..") */
static errcode_t touch_dir(ext2_filsys fs, ext2_ino_t dir, int64_t now_ns, int links)
{
    inode_t in;
    errcode_t err = rd(fs, dir, &in);
    if (err)
        return err;
    SET_T(fs, &in, mtime, now_ns);
    SET_T(fs, &in, ctime, now_ns);
    if (links > 0 && in.i_links_count >= 1) {
        /* dir_nlink: past UE2_LINK_MAX a directory counts 1 */
        if (in.i_links_count + 1 >= UE2_LINK_MAX || in.i_links_count == 1)
            in.i_links_count = 1;
        else
            in.i_links_count++;
    } else if (links < 0 && in.i_links_count > 2) {
        in.i_links_count--;
    }
    return wr(fs, dir, &in);
}

long ue2_open_with(const char *name, const char *io_options, int rw, io_manager manager,
                   void **ret_fs)
{
    ext2_filsys fs = NULL;
    int flags = EXT2_FLAG_64BITS | (rw ? EXT2_FLAG_RW : 0);
    errcode_t err;

    add_error_table(&et_ext2_error_table);
    err = ext2fs_open2(name, io_options && *io_options ? io_options : NULL, flags, 0, 0,
                       manager, &fs);
    if (err)
        return err;
    err = ext2fs_check_desc(fs);
    if (!err)
        err = ext2fs_read_bitmaps(fs);
    if (err) {
        ext2fs_free(fs);
        return err;
    }
    *ret_fs = fs;
    return 0;
}

long ue2_open(const char *name, const char *io_options, int rw, void **ret_fs)
{
    return ue2_open_with(name, io_options, rw, unix_io_manager, ret_fs);
}

long ue2_info(void *p, struct ue2_info *info)
{
    ext2_filsys fs = FS(p);
    struct ext2_super_block *sb = fs->super;
    memset(info, 0, sizeof *info);
    info->block_size = fs->blocksize;
    info->inode_size = EXT2_INODE_SIZE(sb);
    info->inodes_count = sb->s_inodes_count;
    info->free_inodes = sb->s_free_inodes_count;
    info->state = sb->s_state;
    info->errors = sb->s_error_count;
    info->feature_compat = sb->s_feature_compat;
    info->feature_incompat = sb->s_feature_incompat;
    info->feature_ro_compat = sb->s_feature_ro_compat;
    info->blocks_count = ext2fs_blocks_count(sb);
    info->free_blocks = ext2fs_free_blocks_count(sb);
    info->r_blocks = ext2fs_r_blocks_count(sb);
    info->needs_recovery = ext2fs_has_feature_journal_needs_recovery(sb);
    info->has_journal = ext2fs_has_feature_journal(sb);
    memcpy(info->volume_name, sb->s_volume_name, 16);
    return 0;
}

/* a read-write mount: the image says "not cleanly unmounted" until ue2_close */
long ue2_mark_mounted(void *p)
{
    ext2_filsys fs = FS(p);
    fs->super->s_mnt_count++;
    fs->super->s_mtime = time(NULL);
    fs->super->s_state &= ~EXT2_VALID_FS;
    ext2fs_mark_super_dirty(fs);
    return ext2fs_flush(fs);
}

/* how: 0 = drop without writing anything, 1 = close (a rw mount: cleanly) */
long ue2_close(void *p, int how)
{
    ext2_filsys fs = FS(p);
    if (!how) {
        ext2fs_free(fs);
        return 0;
    }
    if (fs->flags & EXT2_FLAG_RW) {
        fs->super->s_state |= EXT2_VALID_FS;
        if (fs->super->s_error_count)
            fs->super->s_state |= EXT2_ERROR_FS;
        fs->super->s_wtime = time(NULL);
        ext2fs_mark_super_dirty(fs);
    }
    errcode_t err = ext2fs_close2(fs, 0);
    if (err)
        ext2fs_free(fs);
    return err;
}

long ue2_flush(void *p)
{
    ext2_filsys fs = FS(p);
    if (!(fs->flags & EXT2_FLAG_RW))
        return 0;
    return ext2fs_flush(fs);
}

long ue2_getattr(void *p, uint32_t ino, struct ue2_attr *a)
{
    ext2_filsys fs = FS(p);
    inode_t in;
    errcode_t err = rd(fs, ino, &in);
    if (err)
        return err;
    memset(a, 0, sizeof *a);
    a->ino = ino;
    a->mode = in.i_mode;
    a->uid = inode_uid(in);
    a->gid = inode_gid(in);
    a->nlink = in.i_links_count;
    a->flags = in.i_flags;
    a->generation = in.i_generation;
    a->size = EXT2_I_SIZE(&in);
    a->blocks = ext2fs_get_stat_i_blocks(fs, (struct ext2_inode *)&in);
    if (S_ISCHR(in.i_mode) || S_ISBLK(in.i_mode)) {
        uint32_t b0 = in.i_block[0], b1 = in.i_block[1];
        if (b0)
            a->rdev = makedev((b0 >> 8) & 255, b0 & 255);
        else
            a->rdev = makedev((b1 & 0xfff00) >> 8, (b1 & 0xff) | ((b1 >> 12) & 0xfff00));
    }
    a->atime_ns = GET_T(fs, &in, atime);
    a->mtime_ns = GET_T(fs, &in, mtime);
    a->ctime_ns = GET_T(fs, &in, ctime);
    if (FITS(fs, &in, i_crtime_extra))
        a->crtime_ns = get_time(in.i_crtime, in.i_crtime_extra, 1);
    return 0;
}

long ue2_setattr(void *p, uint32_t ino, const struct ue2_attr *a, int which)
{
    ext2_filsys fs = FS(p);
    inode_t in;
    errcode_t err = rd(fs, ino, &in);
    if (err)
        return err;
    if (which & UE2_SET_MODE)
        in.i_mode = (in.i_mode & S_IFMT) | (a->mode & 07777);
    if (which & (UE2_SET_UID | UE2_SET_GID))
        set_ids(&in, which & UE2_SET_UID ? a->uid : inode_uid(in),
                which & UE2_SET_GID ? a->gid : inode_gid(in));
    if (which & UE2_SET_ATIME)
        SET_T(fs, &in, atime, a->atime_ns);
    if (which & UE2_SET_MTIME)
        SET_T(fs, &in, mtime, a->mtime_ns);
    if (which & UE2_SET_CTIME)
        SET_T(fs, &in, ctime, a->ctime_ns);
    return wr(fs, ino, &in);
}

long ue2_lookup(void *p, uint32_t dir, const char *name, int len, uint32_t *ino)
{
    ext2_ino_t found = 0;
    errcode_t err = ext2fs_lookup(FS(p), dir, name, len, NULL, &found);
    *ino = found;
    return err;
}


static int list_one(ext2_ino_t dir, int entry, struct ext2_dir_entry *d, int offset,
                    int blocksize, char *buf, void *priv)
{
    struct listing *l = priv;
    int nlen = ext2fs_dirent_name_len(d);
    (void)dir; (void)entry; (void)offset; (void)blocksize; (void)buf;
    if (!d->inode)
        return 0;
    if (listing_room(l, 6 + nlen, 65536) < 0)
        return DIRENT_ABORT;
    /* record: inode (4 bytes, host order), name length, file type, name */
    memcpy(l->buf + l->len, &d->inode, 4);
    l->buf[l->len + 4] = (char)nlen;
    l->buf[l->len + 5] = (char)ext2fs_dirent_file_type(d);
    memcpy(l->buf + l->len + 6, d->name, nlen);
    l->len += 6 + nlen;
    l->count++;
    return 0;
}

long ue2_dir_list(void *p, uint32_t dir, char **buf, size_t *len)
{
    struct listing l = {0};
    errcode_t err = ext2fs_dir_iterate2(FS(p), dir, 0, NULL, list_one, &l);
    return listing_done(&l, err, buf, len);
}

static int count_one(ext2_ino_t dir, int entry, struct ext2_dir_entry *d, int offset,
                     int blocksize, char *buf, void *priv)
{
    int *others = priv;
    (void)dir; (void)offset; (void)blocksize; (void)buf;
    if (d->inode && entry != DIRENT_DOT_FILE && entry != DIRENT_DOT_DOT_FILE) {
        *others = 1;
        return DIRENT_ABORT;
    }
    return 0;
}

long ue2_dir_is_empty(void *p, uint32_t dir, int *empty)
{
    int others = 0;
    errcode_t err = ext2fs_dir_iterate2(FS(p), dir, 0, NULL, count_one, &others);
    *empty = !others;
    return err;
}

long ue2_read(void *p, uint32_t ino, char *buf, size_t size, uint64_t offset, size_t *got)
{
    ext2_filsys fs = FS(p);
    ext2_file_t f;
    unsigned int n = 0;
    errcode_t err = ext2fs_file_open(fs, ino, 0, &f);
    *got = 0;
    if (err)
        return err;
    /* never past i_size (libext2fs reads all of an inline data area) */
    __u64 lsize = 0;
    err = ext2fs_file_get_lsize(f, &lsize);
    if (!err && offset >= lsize)
        size = 0;
    else if (!err && size > lsize - offset)
        size = lsize - offset;
    if (!err)
        err = ext2fs_file_llseek(f, offset, EXT2_SEEK_SET, NULL);
    while (!err && *got < size) {
        size_t want = size - *got;
        if (want > (1U << 30))
            want = 1U << 30;
        err = ext2fs_file_read(f, buf + *got, (unsigned int)want, &n);
        if (err || n == 0)
            break;
        *got += n;
    }
    if (!err && *got < size) {
        /* inline data shorter than i_size (mke2fs -d makes such sparse files): the
         * rest reads as a hole, as on the kernel */
        memset(buf + *got, 0, size - *got);
        *got = size;
    }
    errcode_t err2 = ext2fs_file_close(f);
    return err ? err : err2;
}

/* ue2_read_raw: the first size bytes of a file, read straight from the image (image_fd,
 * the file system at image_offset) run by run of its block map, one pread per run of
 * contiguous blocks instead of libext2fs' block by block. Only on a read-only file
 * system (nothing of it is cached unwritten in libext2fs) and for files whose data is in
 * blocks: otherwise *done = 0 and nothing is read (ue2_read then). Unmapped blocks and
 * uninitialized extents read as zeros. */
struct raw_run {
    ext2_filsys fs;
    char *buf;
    size_t size;
    int fd;
    uint64_t base;
    blk64_t start_l, start_p, len;  /* the run being gathered (len 0: none) */
    errcode_t err;
};

static errcode_t raw_flush(struct raw_run *r)
{
    uint64_t bs = r->fs->blocksize;
    if (!r->len)
        return 0;
    uint64_t at = r->start_l * bs;
    blk64_t len = r->len;
    r->len = 0;
    if (at >= r->size)
        return 0;
    if (r->start_p + len > ext2fs_blocks_count(r->fs->super) || r->start_p == 0)
        return EXT2_ET_BAD_BLOCK_NUM;
    size_t want = len * bs;
    if (want > r->size - at)
        want = r->size - at;
    size_t got = 0;
    while (got < want) {
        ssize_t n = pread(r->fd, r->buf + at + got, want - got,
                          (off_t)(r->base + r->start_p * bs + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        if (n == 0)
            return EXT2_ET_SHORT_READ;
        got += (size_t)n;
    }
    return 0;
}

static errcode_t raw_block(struct raw_run *r, blk64_t lblk, blk64_t pblk, blk64_t count)
{
    if (r->len && lblk == r->start_l + r->len && pblk == r->start_p + r->len) {
        r->len += count;
        return 0;
    }
    errcode_t err = raw_flush(r);
    r->start_l = lblk;
    r->start_p = pblk;
    r->len = count;
    return err;
}

static int raw_iter(ext2_filsys fs, blk64_t *blocknr, e2_blkcnt_t blockcnt,
                    blk64_t ref_blk, int ref_offset, void *priv)
{
    struct raw_run *r = priv;
    (void)ref_blk; (void)ref_offset;
    if (blockcnt < 0)
        return 0;
    if ((uint64_t)blockcnt * fs->blocksize >= r->size)
        return BLOCK_ABORT;
    r->err = raw_block(r, (blk64_t)blockcnt, *blocknr, 1);
    return r->err ? BLOCK_ABORT : 0;
}

long ue2_read_raw(void *p, uint32_t ino, char *buf, size_t size, int image_fd,
                  uint64_t image_offset, int *done)
{
    ext2_filsys fs = FS(p);
    struct ext2_inode inode;
    struct raw_run r = { fs, buf, size, image_fd, image_offset, 0, 0, 0, 0 };
    errcode_t err;
    *done = 0;
    if (fs->flags & EXT2_FLAG_RW || image_fd < 0)
        return 0;
    err = ext2fs_read_inode(fs, ino, &inode);
    if (err)
        return err;
    if (inode.i_flags & (EXT4_INLINE_DATA_FL | EXT4_ENCRYPT_FL) ||
        !LINUX_S_ISREG(inode.i_mode) || size > EXT2_I_SIZE(&inode))
        return 0;
    memset(buf, 0, size);
    if (inode.i_flags & EXT4_EXTENTS_FL) {
        ext2_extent_handle_t h;
        struct ext2fs_extent e;
        err = ext2fs_extent_open2(fs, ino, &inode, &h);
        if (err)
            return err;
        err = ext2fs_extent_get(h, EXT2_EXTENT_ROOT, &e);
        while (!err) {
            if (e.e_flags & EXT2_EXTENT_FLAGS_LEAF &&
                !(e.e_flags & EXT2_EXTENT_FLAGS_UNINIT) && e.e_len) {
                if ((uint64_t)e.e_lblk * fs->blocksize >= size)
                    break;
                err = raw_block(&r, e.e_lblk, e.e_pblk, e.e_len);
                if (err)
                    break;
            }
            err = ext2fs_extent_get(h, EXT2_EXTENT_NEXT, &e);
        }
        if (err == EXT2_ET_EXTENT_NO_NEXT || err == EXT2_ET_EXTENT_NO_DOWN)
            err = 0;
        ext2fs_extent_free(h);
    } else {
        err = ext2fs_block_iterate3(fs, ino, BLOCK_FLAG_READ_ONLY | BLOCK_FLAG_DATA_ONLY,
                                    NULL, raw_iter, &r);
        if (!err)
            err = r.err;
    }
    if (!err)
        err = raw_flush(&r);
    if (!err)
        *done = 1;
    return err;
}

long ue2_write(void *p, uint32_t ino, const char *buf, size_t size, uint64_t offset,
               size_t *written, int64_t now_ns)
{
    ext2_filsys fs = FS(p);
    ext2_file_t f;
    unsigned int n = 0;
    inode_t in;
    errcode_t err = ext2fs_file_open(fs, ino, EXT2_FILE_WRITE, &f);
    *written = 0;
    if (err)
        return err;
    err = ext2fs_file_llseek(f, offset, EXT2_SEEK_SET, NULL);
    while (!err && *written < size) {
        err = ext2fs_file_write(f, buf + *written, (unsigned int)(size - *written), &n);
        if (err || n == 0)
            break;
        *written += n;
    }
    errcode_t err2 = ext2fs_file_close(f);
    if (!err)
        err = err2;
    if (*written) {  /* partial writes count, as on the kernel */
        errcode_t err3 = rd(fs, ino, &in);
        if (!err3) {
            SET_T(fs, &in, mtime, now_ns);
            SET_T(fs, &in, ctime, now_ns);
            /* (set-user-ID goes on a write by someone other than root: vufuse's
             * _kill_privs, as the kernel's file_remove_privs) */
            err3 = wr(fs, ino, &in);
        }
        return err3;
    }
    return err;
}

long ue2_truncate(void *p, uint32_t ino, uint64_t size, int64_t now_ns)
{
    ext2_filsys fs = FS(p);
    ext2_file_t f;
    inode_t in;
    errcode_t err = ext2fs_file_open(fs, ino, EXT2_FILE_WRITE, &f);
    if (err)
        return err;
    err = ext2fs_file_set_size2(f, size);
    errcode_t err2 = ext2fs_file_close(f);
    if (err || err2)
        return err ? err : err2;
    err = rd(fs, ino, &in);
    if (err)
        return err;
    SET_T(fs, &in, mtime, now_ns);
    SET_T(fs, &in, ctime, now_ns);
    return wr(fs, ino, &in);
}

long ue2_readlink(void *p, uint32_t ino, char *buf, size_t size, size_t *got)
{
    ext2_filsys fs = FS(p);
    inode_t in;
    errcode_t err = rd(fs, ino, &in);
    *got = 0;
    if (err)
        return err;
    if (!S_ISLNK(in.i_mode))
        return EINVAL;
    uint64_t len = EXT2_I_SIZE(&in);
    if (len > size)
        len = size;
    if (ext2fs_is_fast_symlink((struct ext2_inode *)&in)) {
        if (len > sizeof in.i_block)
            return EXT2_ET_INODE_CORRUPTED;
        memcpy(buf, in.i_block, len);
        *got = len;
        return 0;
    }
    return ue2_read(p, ino, buf, len, 0, got);
}

static errcode_t new_inode_common(ext2_filsys fs, ext2_ino_t ino, inode_t *in,
                                  uint32_t mode, uint32_t uid, uint32_t gid, int64_t now_ns)
{
    in->i_mode = mode;
    set_ids(in, uid, gid);
    if (EXT2_INODE_SIZE(fs->super) > EXT2_GOOD_OLD_INODE_SIZE && !in->i_extra_isize)
        in->i_extra_isize = sizeof(inode_t) - EXT2_GOOD_OLD_INODE_SIZE;
    SET_T(fs, in, atime, now_ns);
    SET_T(fs, in, mtime, now_ns);
    SET_T(fs, in, ctime, now_ns);
    if (FITS(fs, in, i_crtime_extra))
        put_time(&in->i_crtime, &in->i_crtime_extra, 1, now_ns);
    (void)ino;
    return 0;
}

/* a regular file, device node, fifo or socket named name in parent */
long ue2_mknode(void *p, uint32_t parent, const char *name, uint32_t mode,
                uint32_t uid, uint32_t gid, uint64_t rdev, int64_t now_ns, uint32_t *ret_ino)
{
    ext2_filsys fs = FS(p);
    ext2_ino_t ino;
    inode_t in;
    errcode_t err;

    if (!S_ISREG(mode) && !S_ISCHR(mode) && !S_ISBLK(mode) && !S_ISFIFO(mode) &&
        !S_ISSOCK(mode))
        return EINVAL;
    err = ext2fs_new_inode(fs, parent, mode, NULL, &ino);
    if (err)
        return err;
    memset(&in, 0, sizeof in);
    in.i_links_count = 1;
    new_inode_common(fs, ino, &in, mode, uid, gid, now_ns);
    if (S_ISCHR(mode) || S_ISBLK(mode)) {
        unsigned int ma = major(rdev), mi = minor(rdev);
        if (ma < 256 && mi < 256)
            in.i_block[0] = (ma << 8) | mi;
        else
            in.i_block[1] = (mi & 0xff) | (ma << 8) | ((mi & ~0xffU) << 12);
    }
    if (S_ISREG(mode) && ext2fs_has_feature_extents(fs->super)) {
        ext2_extent_handle_t h;
        /* an empty extent tree in i_block, as the kernel makes */
        err = ext2fs_extent_open2(fs, ino, (struct ext2_inode *)&in, &h);
        if (err)
            return err;
        ext2fs_extent_free(h);
    }
    err = ext2fs_write_new_inode(fs, ino, (struct ext2_inode *)&in);
    if (err)
        return err;
    ext2fs_inode_alloc_stats2(fs, ino, +1, 0);
    err = link_expand(fs, parent, name, ino, filetype_of(mode));
    if (err) {
        in.i_links_count = 0;
        in.i_dtime = time(NULL);
        wr(fs, ino, &in);
        ext2fs_inode_alloc_stats2(fs, ino, -1, 0);
        return err;
    }
    *ret_ino = ino;
    return touch_dir(fs, parent, now_ns, 0);
}

/* give a node made by a libext2fs helper its owner, mode and times */
static errcode_t adopt(ext2_filsys fs, ext2_ino_t ino, uint32_t mode, uint32_t uid,
                       uint32_t gid, int64_t now_ns)
{
    inode_t in;
    errcode_t err = rd(fs, ino, &in);
    if (err)
        return err;
    new_inode_common(fs, ino, &in, (in.i_mode & S_IFMT) | (mode & 07777), uid, gid,
                     now_ns);
    return wr(fs, ino, &in);
}

long ue2_mkdir(void *p, uint32_t parent, const char *name, uint32_t mode,
               uint32_t uid, uint32_t gid, int64_t now_ns, uint32_t *ret_ino)
{
    ext2_filsys fs = FS(p);
    ext2_ino_t ino = 0;
    errcode_t err = ext2fs_mkdir(fs, parent, 0, name);
    if (err == EXT2_ET_DIR_NO_SPACE) {
        err = ext2fs_expand_dir(fs, parent);
        if (!err)
            err = ext2fs_mkdir(fs, parent, 0, name);
    }
    if (err)
        return err;
    err = ext2fs_lookup(fs, parent, name, strlen(name), NULL, &ino);
    if (err)
        return err;
    err = adopt(fs, ino, S_IFDIR | mode, uid, gid, now_ns);
    if (err)
        return err;
    *ret_ino = ino;
    return touch_dir(fs, parent, now_ns, 0);  /* ext2fs_mkdir counted the link */
}

long ue2_symlink(void *p, uint32_t parent, const char *name, const char *target,
                 uint32_t uid, uint32_t gid, int64_t now_ns, uint32_t *ret_ino)
{
    ext2_filsys fs = FS(p);
    ext2_ino_t ino = 0;
    errcode_t err = ext2fs_symlink(fs, parent, 0, name, target);
    if (err == EXT2_ET_DIR_NO_SPACE) {
        err = ext2fs_expand_dir(fs, parent);
        if (!err)
            err = ext2fs_symlink(fs, parent, 0, name, target);
    }
    if (err)
        return err;
    err = ext2fs_lookup(fs, parent, name, strlen(name), NULL, &ino);
    if (err)
        return err;
    err = adopt(fs, ino, S_IFLNK | 0777, uid, gid, now_ns);
    if (err)
        return err;
    *ret_ino = ino;
    return touch_dir(fs, parent, now_ns, 0);
}

long ue2_link(void *p, uint32_t dir, const char *name, uint32_t ino, int64_t now_ns)
{
    ext2_filsys fs = FS(p);
    inode_t in;
    errcode_t err = rd(fs, ino, &in);
    if (err)
        return err;
    if (S_ISDIR(in.i_mode))
        return EPERM;
    if (in.i_links_count >= UE2_LINK_MAX)
        return EMLINK;
    err = link_expand(fs, dir, name, ino, filetype_of(in.i_mode));
    if (err)
        return err;
    err = rd(fs, ino, &in);
    if (err)
        return err;
    in.i_links_count++;
    SET_T(fs, &in, ctime, now_ns);
    err = wr(fs, ino, &in);
    if (err)
        return err;
    return touch_dir(fs, dir, now_ns, 0);
}

long ue2_free_inode(void *p, uint32_t ino)
{
    ext2_filsys fs = FS(p);
    inode_t in;
    errcode_t err = rd(fs, ino, &in);
    if (err)
        return err;
    if (in.i_links_count)
        return 0;
    err = ext2fs_free_ext_attr(fs, ino, &in);
    if (err)
        return err;
    if (ext2fs_inode_has_valid_blocks2(fs, (struct ext2_inode *)&in)) {
        err = ext2fs_punch(fs, ino, (struct ext2_inode *)&in, NULL, 0, ~0ULL);
        if (err)
            return err;
    }
    /* ext2fs_punch and ext2fs_free_ext_attr wrote their changes: reread */
    err = rd(fs, ino, &in);
    if (err)
        return err;
    in.i_dtime = time(NULL);
    ext2fs_inode_alloc_stats2(fs, ino, -1, S_ISDIR(in.i_mode));
    return wr(fs, ino, &in);
}

/* remove the entry name -> ino from dir; the inode loses a link and, with no
 * link left and free_now, its blocks */
long ue2_unlink(void *p, uint32_t dir, const char *name, uint32_t ino, int is_dir,
                int free_now, int64_t now_ns, uint32_t *links_left)
{
    ext2_filsys fs = FS(p);
    inode_t in;
    errcode_t err = ext2fs_unlink(fs, dir, name, ino, 0);
    if (err)
        return err;
    err = touch_dir(fs, dir, now_ns, is_dir ? -1 : 0);
    if (err)
        return err;
    err = rd(fs, ino, &in);
    if (err)
        return err;
    if (is_dir)
        in.i_links_count = 0;
    else if (in.i_links_count)
        in.i_links_count--;
    SET_T(fs, &in, ctime, now_ns);
    err = wr(fs, ino, &in);
    if (err)
        return err;
    *links_left = in.i_links_count;
    if (!in.i_links_count && free_now)
        return ue2_free_inode(p, ino);
    return 0;
}

struct dotdot {
    ext2_ino_t parent;
    int done;
};

static int set_dotdot_one(ext2_ino_t dir, int entry, struct ext2_dir_entry *d, int offset,
                          int blocksize, char *buf, void *priv)
{
    struct dotdot *dd = priv;
    (void)dir; (void)offset; (void)blocksize; (void)buf;
    if (entry != DIRENT_DOT_DOT_FILE)
        return 0;
    d->inode = dd->parent;
    dd->done = 1;
    return DIRENT_CHANGED | DIRENT_ABORT;
}

/* move the entry old_name -> ino of old_parent to new_name in new_parent (the
 * caller removed what new_name named); a directory gets its ".." and both
 * parents their link counts */
long ue2_rename(void *p, uint32_t old_parent, const char *old_name, uint32_t new_parent,
                const char *new_name, uint32_t ino, int64_t now_ns)
{
    ext2_filsys fs = FS(p);
    inode_t in;
    errcode_t err = rd(fs, ino, &in);
    if (err)
        return err;
    int is_dir = S_ISDIR(in.i_mode);
    err = link_expand(fs, new_parent, new_name, ino, filetype_of(in.i_mode));
    if (err)
        return err;
    err = ext2fs_unlink(fs, old_parent, old_name, ino, 0);
    if (err)
        return err;
    if (is_dir && old_parent != new_parent) {
        struct dotdot dd = {new_parent, 0};
        err = ext2fs_dir_iterate2(fs, ino, DIRENT_FLAG_INCLUDE_EMPTY, NULL,
                                  set_dotdot_one, &dd);
        if (!err && !dd.done)
            err = EXT2_ET_DIR_CORRUPTED;
        if (err)
            return err;
        err = touch_dir(fs, old_parent, now_ns, -1);
        if (!err)
            err = touch_dir(fs, new_parent, now_ns, 1);
    } else {
        err = touch_dir(fs, old_parent, now_ns, 0);
        if (!err && new_parent != old_parent)
            err = touch_dir(fs, new_parent, now_ns, 0);
    }
    if (err)
        return err;
    err = rd(fs, ino, &in);
    if (err)
        return err;
    SET_T(fs, &in, ctime, now_ns);
    return wr(fs, ino, &in);
}

void ue2_free(void *p)
{
    free(p);
}

const char *ue2_strerror(long err)
{
    return error_message(err);
}

/* lseek's SEEK_DATA (3) and SEEK_HOLE (4) from offset, as the kernel's ext4 answers them:
 * blocks mapped to written data are data, unmapped blocks and unwritten extents holes,
 * the end of the file a hole. ENXIO at or past the end, or when no data follows. */
struct seek_state {
    uint64_t bs, off, hole_at, found;
    int whence, done;
};

static int seek_run(struct seek_state *s, uint64_t lblk, uint64_t len)
{
    uint64_t start = lblk * s->bs, end = (lblk + len) * s->bs;
    if (end <= s->off)
        return 0;
    if (s->whence == 3) {
        s->found = start > s->off ? start : s->off;
        s->done = 1;
        return 1;
    }
    if (start > s->hole_at) {
        s->found = s->hole_at;
        s->done = 1;
        return 1;
    }
    s->hole_at = end;
    return 0;
}

static int seek_iter(ext2_filsys fs, blk64_t *blocknr, e2_blkcnt_t blockcnt,
                     blk64_t ref_blk, int ref_offset, void *priv)
{
    (void)fs; (void)blocknr; (void)ref_blk; (void)ref_offset;
    if (blockcnt < 0)
        return 0;
    return seek_run(priv, (uint64_t)blockcnt, 1) ? BLOCK_ABORT : 0;
}

long ue2_seek_data(void *p, uint32_t ino, uint64_t offset, int whence, uint64_t *result)
{
    ext2_filsys fs = FS(p);
    struct ext2_inode inode;
    errcode_t err = ext2fs_read_inode(fs, ino, &inode);
    if (err)
        return err;
    uint64_t size = EXT2_I_SIZE(&inode);
    if (offset >= size)
        return ENXIO;
    struct seek_state s = { fs->blocksize, offset, offset, 0, whence, 0 };
    if (inode.i_flags & EXT4_INLINE_DATA_FL) {
        s.found = whence == 3 ? offset : size;  /* all of it data */
        s.done = 1;
    } else if (inode.i_flags & EXT4_EXTENTS_FL) {
        ext2_extent_handle_t h;
        struct ext2fs_extent e;
        err = ext2fs_extent_open2(fs, ino, &inode, &h);
        if (err)
            return err;
        err = ext2fs_extent_get(h, EXT2_EXTENT_ROOT, &e);
        while (!err) {
            if (e.e_flags & EXT2_EXTENT_FLAGS_LEAF &&
                !(e.e_flags & EXT2_EXTENT_FLAGS_UNINIT) && e.e_len &&
                seek_run(&s, e.e_lblk, e.e_len))
                break;
            err = ext2fs_extent_get(h, EXT2_EXTENT_NEXT, &e);
        }
        if (err == EXT2_ET_EXTENT_NO_NEXT || err == EXT2_ET_EXTENT_NO_DOWN)
            err = 0;
        ext2fs_extent_free(h);
    } else {
        err = ext2fs_block_iterate3(fs, ino, BLOCK_FLAG_READ_ONLY | BLOCK_FLAG_DATA_ONLY,
                                    NULL, seek_iter, &s);
    }
    if (err)
        return err;
    if (!s.done) {
        if (whence == 3)
            return ENXIO;
        s.found = s.hole_at;
    }
    if (s.found >= size) {
        if (whence == 3)
            return ENXIO;
        s.found = size;
    }
    *result = s.found;
    return 0;
}
