/* umvu: extended attributes of an ext2/3/4 image (libext2fs), for vufuseext2.
 * As in ext2_helper.c, each helper opens what it needs and closes it again; a change
 * sets the inode's ctime. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>

#include "ext2_helper.h"
#include "ext2_internal.h"

static errcode_t xattr_handle(ext2_filsys fs, ext2_ino_t ino, struct ext2_xattr_handle **h)
{
    errcode_t err = ext2fs_xattrs_open(fs, ino, h);
    if (err)
        return err;
    err = ext2fs_xattrs_read(*h);
    if (err)
        ext2fs_xattrs_close(h);
    return err;
}

long ue2_xattr_get(void *p, uint32_t ino, const char *key, void **value, size_t *len)
{
    struct ext2_xattr_handle *h;
    errcode_t err = xattr_handle(FS(p), ino, &h);
    if (err)
        return err;
    err = ext2fs_xattr_get(h, key, value, len);
    ext2fs_xattrs_close(&h);
    return err;
}

static errcode_t xattr_ctime(ext2_filsys fs, ext2_ino_t ino, int64_t now_ns)
{
    inode_t in;
    errcode_t err = rd(fs, ino, &in);
    if (err)
        return err;
    SET_T(fs, &in, ctime, now_ns);
    return wr(fs, ino, &in);
}

long ue2_xattr_set(void *p, uint32_t ino, const char *key, const void *value,
                   size_t len, int64_t now_ns)
{
    struct ext2_xattr_handle *h;
    errcode_t err = xattr_handle(FS(p), ino, &h);
    if (err)
        return err;
    err = ext2fs_xattr_set(h, key, value, len);  /* (writes the attributes) */
    errcode_t err2 = ext2fs_xattrs_close(&h);
    if (err || err2)
        return err ? err : err2;
    return xattr_ctime(FS(p), ino, now_ns);
}

long ue2_xattr_remove(void *p, uint32_t ino, const char *key, int64_t now_ns)
{
    struct ext2_xattr_handle *h;
    void *v = NULL;
    size_t vlen = 0;
    errcode_t err = xattr_handle(FS(p), ino, &h);
    if (err)
        return err;
    /* libext2fs removes a missing key quietly: the kernel says ENODATA */
    err = ext2fs_xattr_get(h, key, &v, &vlen);
    if (!err) {
        ext2fs_free_mem(&v);
        err = ext2fs_xattr_remove(h, key);
    }
    errcode_t err2 = ext2fs_xattrs_close(&h);
    if (err || err2)
        return err ? err : err2;
    return xattr_ctime(FS(p), ino, now_ns);
}

static int list_key(char *name, char *value, size_t value_len, void *priv)
{
    struct listing *l = priv;
    size_t n = strlen(name) + 1;
    (void)value; (void)value_len;
    if (listing_room(l, n, 4096) < 0)
        return XATTR_ABORT;
    memcpy(l->buf + l->len, name, n);
    l->len += n;
    return 0;
}

long ue2_xattr_list(void *p, uint32_t ino, char **buf, size_t *len)
{
    struct ext2_xattr_handle *h;
    struct listing l = {0};
    errcode_t err = xattr_handle(FS(p), ino, &h);
    if (err)
        return err;
    err = ext2fs_xattrs_iterate(h, list_key, &l);
    ext2fs_xattrs_close(&h);
    return listing_done(&l, err, buf, len);
}
