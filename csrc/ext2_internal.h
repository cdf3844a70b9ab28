/* umvu: what the libext2fs helpers (ext2_helper.c, ext2_xattr.c) share: the large
 * inode, reading and writing it whole, its nanosecond times, and growing listings. */
#ifndef UMVU_EXT2_INTERNAL_H
#define UMVU_EXT2_INTERNAL_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>

typedef struct ext2_inode_large inode_t;

#define UE2_LINK_MAX 65000  /* the kernel's EXT4_LINK_MAX */

#define FS(p) ((ext2_filsys)(p))

/* ext2fs_open2 by manager, then the checks and bitmaps every open needs */
long ue2_open_with(const char *name, const char *io_options, int rw, io_manager manager,
                   void **ret_fs);

static inline errcode_t rd(ext2_filsys fs, ext2_ino_t ino, inode_t *in)
{
    memset(in, 0, sizeof *in);
    return ext2fs_read_inode_full(fs, ino, (struct ext2_inode *)in, sizeof *in);
}

static inline errcode_t wr(ext2_filsys fs, ext2_ino_t ino, inode_t *in)
{
    return ext2fs_write_inode_full(fs, ino, (struct ext2_inode *)in, sizeof *in);
}

/* does the large-inode field ending at offset end exist in this inode? */
static inline int fits(ext2_filsys fs, const inode_t *in, size_t end)
{
    return EXT2_INODE_SIZE(fs->super) > EXT2_GOOD_OLD_INODE_SIZE &&
           EXT2_GOOD_OLD_INODE_SIZE + (size_t)in->i_extra_isize >= end;
}
#define FITS(fs, in, field) \
    fits(fs, in, offsetof(inode_t, field) + sizeof(((inode_t *)0)->field))

static inline int64_t get_time(uint32_t lo, uint32_t extra, int has_extra)
{
    int64_t sec = (int32_t)lo;
    int64_t nsec = 0;
    if (has_extra) {
        sec += (int64_t)(extra & EXT4_EPOCH_MASK) << 32;
        nsec = extra >> EXT4_EPOCH_BITS;
        if (nsec > 999999999)
            nsec = 0;
    }
    return sec * 1000000000LL + nsec;
}

static inline void put_time(uint32_t *lo, uint32_t *extra, int has_extra, int64_t ns)
{
    int64_t sec = ns / 1000000000LL, nsec = ns % 1000000000LL;
    if (nsec < 0) {
        nsec += 1000000000LL;
        sec -= 1;
    }
    *lo = (uint32_t)sec;
    if (has_extra)
        *extra = ((uint32_t)nsec << EXT4_EPOCH_BITS) |
                 (uint32_t)(((sec - (int32_t)sec) >> 32) & EXT4_EPOCH_MASK);
}

#define SET_T(fs, in, f, ns) \
    put_time(&(in)->i_##f, &(in)->i_##f##_extra, FITS(fs, in, i_##f##_extra), ns)
#define GET_T(fs, in, f) \
    get_time((in)->i_##f, (in)->i_##f##_extra, FITS(fs, in, i_##f##_extra))


struct listing {
    char *buf;
    size_t len, cap;
    errcode_t err;
    int count;
};

/* room for n more bytes in l (it at least doubles, from first bytes): 0, or -1 with
 * l->err set (ENOMEM) */
static inline int listing_room(struct listing *l, size_t n, size_t first)
{
    if (l->len + n <= l->cap)
        return 0;
    size_t cap = l->cap ? l->cap * 2 : first;
    if (cap < l->len + n)
        cap = l->len + n;
    char *nb = realloc(l->buf, cap);
    if (!nb) {
        l->err = ENOMEM;
        return -1;
    }
    l->buf = nb;
    l->cap = cap;
    return 0;
}

/* hand a finished listing to the caller, or free it on error */
static inline errcode_t listing_done(struct listing *l, errcode_t err, char **buf, size_t *len)
{
    if (!err)
        err = l->err;
    if (err) {
        free(l->buf);
        return err;
    }
    *buf = l->buf;
    *len = l->len;
    return 0;
}

#endif
