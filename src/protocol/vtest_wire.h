/* virglrenderer's vtest protocol (version 3), the subset apir-server serves and the guest's
 * vtest transport speaks. Values are virglrenderer's (src/vtest/vtest_protocol.h).
 *
 * Every message: u32 length, u32 command id, then length 32-bit words of data (for
 * CREATE_RENDERER the length counts bytes). All little-endian (host order: same machine). */
#ifndef APIR_VTEST_WIRE_H
#define APIR_VTEST_WIRE_H

#include <stdint.h>

#define VTEST_WIRE_PROTOCOL_VERSION 3
#define VTEST_WIRE_HDR_WORDS 2
#define VTEST_WIRE_HDR_LEN 0
#define VTEST_WIRE_HDR_ID 1

enum vtest_wire_cmd {
    VTEST_CMD_RESOURCE_UNREF = 3,          /* u32 res_id; no reply */
    VTEST_CMD_RESOURCE_BUSY_WAIT = 7,      /* u32 handle, u32 flags -> u32 busy */
    VTEST_CMD_CREATE_RENDERER = 8,         /* length in BYTES: client name; no reply */
    VTEST_CMD_PING_PROTOCOL_VERSION = 10,  /* no data -> empty reply of the same id */
    VTEST_CMD_PROTOCOL_VERSION = 11,       /* u32 version -> u32 version (the lower) */
    VTEST_CMD_GET_PARAM = 15,              /* u32 param -> u32 valid, u32 value */
    VTEST_CMD_GET_CAPSET = 16,             /* u32 id, u32 version -> u32 valid, capset words */
    VTEST_CMD_CONTEXT_INIT = 17,           /* u32 capset id; no reply */
    VTEST_CMD_RESOURCE_CREATE_BLOB = 18,   /* 6 words -> u32 res_id, then an fd (SCM_RIGHTS) */
    VTEST_CMD_SYNC_CREATE = 19,            /* u32 value lo, hi -> u32 sync id */
    VTEST_CMD_SYNC_UNREF = 20,             /* u32 sync id; no reply */
    VTEST_CMD_SYNC_READ = 21,              /* u32 sync id -> u32 value lo, hi */
    VTEST_CMD_SYNC_WRITE = 22,             /* u32 sync id, value lo, hi; no reply */
    VTEST_CMD_SUBMIT_CMD2 = 24,            /* see below; no reply */
};

#define VTEST_PROTOCOL_VERSION_WORDS 1
#define VTEST_GET_PARAM_WORDS 1
#define VTEST_GET_CAPSET_WORDS 2
#define VTEST_CONTEXT_INIT_WORDS 1
#define VTEST_RESOURCE_UNREF_WORDS 1
#define VTEST_BUSY_WAIT_WORDS 2
#define VTEST_SYNC_CREATE_WORDS 2
#define VTEST_SYNC_UNREF_WORDS 1
#define VTEST_SYNC_READ_WORDS 1
#define VTEST_SYNC_WRITE_WORDS 3

/* RESOURCE_CREATE_BLOB request words */
#define VTEST_BLOB_WORDS 6
#define VTEST_BLOB_TYPE 0
#define VTEST_BLOB_FLAGS 1
#define VTEST_BLOB_SIZE_LO 2
#define VTEST_BLOB_SIZE_HI 3
#define VTEST_BLOB_ID_LO 4
#define VTEST_BLOB_ID_HI 5
#define VTEST_BLOB_TYPE_GUEST 1
#define VTEST_BLOB_TYPE_HOST3D 2
#define VTEST_BLOB_TYPE_HOST3D_GUEST 3
#define VTEST_BLOB_FLAG_MAPPABLE (1u << 0)
#define VTEST_BLOB_FLAG_SHAREABLE (1u << 1)
#define VTEST_BLOB_FLAG_CROSS_DEVICE (1u << 2)

/* SUBMIT_CMD2 data: u32 batch_count, batch_count batches of 8 words, then the command words
 * and sync entries the batches point at. Offsets and sizes are in words from the start of
 * the data (the batch_count word is word 0). A sync entry is 3 words: id, value lo, hi. */
#define VTEST_SUBMIT_BATCH_WORDS 8
struct vtest_submit_batch {
    uint32_t flags;
    uint32_t cmd_offset;
    uint32_t cmd_size;
    uint32_t sync_offset;
    uint32_t sync_count;
    uint32_t ring_idx;
    uint32_t num_in_syncobj;
    uint32_t num_out_syncobj;
};
#define VTEST_SUBMIT_FLAG_RING_IDX (1u << 0)
#define VTEST_SYNC_ENTRY_WORDS 3
/* APIR extension: APIR command buffers are byte-sized, vtest batches are word-sized. The
 * number of padding bytes (0..3) added at the end of the batch travels in these flag bits,
 * so the component sees the exact command bytes. */
#define VTEST_SUBMIT_FLAG_APIR_PAD_SHIFT 24
#define VTEST_SUBMIT_FLAG_APIR_PAD_MASK (3u << VTEST_SUBMIT_FLAG_APIR_PAD_SHIFT)

#endif
