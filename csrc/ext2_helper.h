/* umvu: helpers around libext2fs for the vufuseext2 submodule (cffi cdef'd).
 * Every function returns 0 or an errcode_t (an errno value, or a libext2fs
 * EXT2_ET_* code); the Python side maps them to errno in one place. */

struct ue2_attr {
    uint32_t ino, mode, uid, gid, nlink, flags, generation;
    uint64_t size, blocks;       /* blocks: 512-byte units, as stat */
    uint64_t rdev;               /* makedev() encoding */
    int64_t atime_ns, mtime_ns, ctime_ns, crtime_ns;
};

struct ue2_info {
    uint32_t block_size, inode_size, inodes_count, free_inodes, state, errors;
    uint32_t feature_compat, feature_incompat, feature_ro_compat;
    uint64_t blocks_count, free_blocks, r_blocks;
    int needs_recovery, has_journal;
    char volume_name[17];
};

/* which fields ue2_setattr writes */
#define UE2_SET_MODE 1
#define UE2_SET_UID 2
#define UE2_SET_GID 4
#define UE2_SET_ATIME 8
#define UE2_SET_MTIME 16
#define UE2_SET_CTIME 32

long ue2_open(const char *name, const char *io_options, int rw, void **ret_fs);
/* a device of another module (no host file): its bytes read and written by callbacks
 * (ext2_devio.c): each returns the bytes done, or -1 */
typedef long (*ue2_dev_read)(void *ctx, void *buf, size_t size, uint64_t offset);
typedef long (*ue2_dev_write)(void *ctx, const void *buf, size_t size, uint64_t offset);
long ue2_open_dev(const char *name, int rw, ue2_dev_read rd, ue2_dev_write wr, void *ctx,
                  void **ret_fs);
long ue2_info(void *fs, struct ue2_info *info);
long ue2_mark_mounted(void *fs);
long ue2_close(void *fs, int rw);
long ue2_flush(void *fs);
long ue2_getattr(void *fs, uint32_t ino, struct ue2_attr *a);
long ue2_setattr(void *fs, uint32_t ino, const struct ue2_attr *a, int which);
long ue2_lookup(void *fs, uint32_t dir, const char *name, int len, uint32_t *ino);
long ue2_dir_list(void *fs, uint32_t dir, char **buf, size_t *len);
long ue2_dir_is_empty(void *fs, uint32_t dir, int *empty);
long ue2_read(void *fs, uint32_t ino, char *buf, size_t size, uint64_t offset, size_t *got);
long ue2_read_raw(void *fs, uint32_t ino, char *buf, size_t size, int image_fd,
                  uint64_t image_offset, int *done);
long ue2_write(void *fs, uint32_t ino, const char *buf, size_t size, uint64_t offset,
               size_t *written, int64_t now_ns);
long ue2_truncate(void *fs, uint32_t ino, uint64_t size, int64_t now_ns);
long ue2_seek_data(void *fs, uint32_t ino, uint64_t offset, int whence, uint64_t *result);
long ue2_readlink(void *fs, uint32_t ino, char *buf, size_t size, size_t *got);
long ue2_mknode(void *fs, uint32_t parent, const char *name, uint32_t mode,
                uint32_t uid, uint32_t gid, uint64_t rdev, int64_t now_ns, uint32_t *ino);
long ue2_mkdir(void *fs, uint32_t parent, const char *name, uint32_t mode,
               uint32_t uid, uint32_t gid, int64_t now_ns, uint32_t *ino);
long ue2_symlink(void *fs, uint32_t parent, const char *name, const char *target,
                 uint32_t uid, uint32_t gid, int64_t now_ns, uint32_t *ino);
long ue2_link(void *fs, uint32_t dir, const char *name, uint32_t ino, int64_t now_ns);
long ue2_unlink(void *fs, uint32_t dir, const char *name, uint32_t ino, int is_dir,
                int free_now, int64_t now_ns, uint32_t *links_left);
long ue2_free_inode(void *fs, uint32_t ino);
long ue2_rename(void *fs, uint32_t old_parent, const char *old_name, uint32_t new_parent,
                const char *new_name, uint32_t ino, int64_t now_ns);
long ue2_xattr_get(void *fs, uint32_t ino, const char *key, void **value, size_t *len);
long ue2_xattr_set(void *fs, uint32_t ino, const char *key, const void *value,
                   size_t len, int64_t now_ns);
long ue2_xattr_remove(void *fs, uint32_t ino, const char *key, int64_t now_ns);
long ue2_xattr_list(void *fs, uint32_t ino, char **buf, size_t *len);
void ue2_free(void *p);
const char *ue2_strerror(long err);
