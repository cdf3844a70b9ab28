/* umvu: a libext2fs io manager over a device of another module (a partition of a
 * vudevqcow2 or vudevvdi disk: no host file holds its bytes), whose reads and writes
 * are callbacks into Python (umvu/submodules/ext2fs.py). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <et/com_err.h>
#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>

#include "ext2_helper.h"
#include "ext2_internal.h"

struct dev_priv {
    ue2_dev_read rd;
    ue2_dev_write wr;
    void *ctx;
};

static struct dev_priv opening; /* (the callbacks for the channel being opened) */
static struct struct_io_manager dev_manager;

static errcode_t dev_open(const char *name, int flags, io_channel *channel)
{
    io_channel io = calloc(1, sizeof *io);
    struct dev_priv *p = malloc(sizeof *p);
    char *copy = strdup(name ? name : "");
    if (!io || !p || !copy) {
        free(io);
        free(p);
        free(copy);
        return EXT2_ET_NO_MEMORY;
    }
    *p = opening;
    io->magic = EXT2_ET_MAGIC_IO_CHANNEL;
    io->manager = &dev_manager;
    io->name = copy;
    io->block_size = 1024;
    io->refcount = 1;
    io->flags = flags;
    io->private_data = p;
    *channel = io;
    return 0;
}

static errcode_t dev_close(io_channel io)
{
    if (--io->refcount > 0)
        return 0;
    free(io->private_data);
    free(io->name);
    free(io);
    return 0;
}

static errcode_t dev_set_blksize(io_channel io, int blksize)
{
    io->block_size = blksize;
    return 0;
}

static errcode_t dev_xfer(io_channel io, unsigned long long block, int count, void *data,
                          int writing)
{
    struct dev_priv *p = io->private_data;
    size_t size = count < 0 ? (size_t)-count : (size_t)count * io->block_size;
    uint64_t offset = (uint64_t)block * io->block_size;
    long r = writing ? p->wr(p->ctx, data, size, offset) : p->rd(p->ctx, data, size, offset);
    if (r < 0 || (size_t)r != size) {
        if (!writing && r >= 0)
            memset((char *)data + r, 0, size - r);
        return writing ? EXT2_ET_SHORT_WRITE : EXT2_ET_SHORT_READ;
    }
    return 0;
}

static errcode_t dev_read_blk(io_channel io, unsigned long block, int count, void *data)
{
    return dev_xfer(io, block, count, data, 0);
}

static errcode_t dev_write_blk(io_channel io, unsigned long block, int count,
                               const void *data)
{
    return dev_xfer(io, block, count, (void *)data, 1);
}

static errcode_t dev_read_blk64(io_channel io, unsigned long long block, int count,
                                void *data)
{
    return dev_xfer(io, block, count, data, 0);
}

static errcode_t dev_write_blk64(io_channel io, unsigned long long block, int count,
                                 const void *data)
{
    return dev_xfer(io, block, count, (void *)data, 1);
}

static errcode_t dev_write_byte(io_channel io, unsigned long offset, int count,
                                const void *data)
{
    struct dev_priv *p = io->private_data;
    long r = p->wr(p->ctx, data, (size_t)count, offset);
    return r == count ? 0 : EXT2_ET_SHORT_WRITE;
}

static errcode_t dev_flush(io_channel io)
{
    (void)io;
    return 0; /* (the device syncs when the file system is closed) */
}

static errcode_t dev_set_option(io_channel io, const char *option, const char *arg)
{
    (void)io;
    (void)option;
    (void)arg;
    return EXT2_ET_INVALID_ARGUMENT;
}

static struct struct_io_manager dev_manager = {
    .magic = EXT2_ET_MAGIC_IO_MANAGER,
    .name = "umvu device I/O manager",
    .open = dev_open,
    .close = dev_close,
    .set_blksize = dev_set_blksize,
    .read_blk = dev_read_blk,
    .write_blk = dev_write_blk,
    .flush = dev_flush,
    .write_byte = dev_write_byte,
    .set_option = dev_set_option,
    .read_blk64 = dev_read_blk64,
    .write_blk64 = dev_write_blk64,
};

long ue2_open_dev(const char *name, int rw, ue2_dev_read rd, ue2_dev_write wr, void *ctx,
                  void **ret_fs)
{
    opening = (struct dev_priv){ rd, wr, ctx };
    return ue2_open_with(name, NULL, rw, &dev_manager, ret_fs);
}
