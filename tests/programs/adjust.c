/* Growing and shrinking the packet: adjust_head/tail/meta, load/store bytes. Results go to res[]. */
#include "common.h"

__s64 res[16];

SEC("xdp")
int push_header(struct xdp_md *ctx)
{
	res[0] = bpf_xdp_adjust_head(ctx, -4);
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *p = data;
	if ((void *)(p + 4) > data_end)
		return XDP_ABORTED;
	res[1] = p[0] | p[1] | p[2] | p[3]; /* zero-filled */
	p[0] = 0xde; p[1] = 0xad; p[2] = 0xbe; p[3] = 0xef;
	res[2] = bpf_xdp_get_buff_len(ctx);
	res[3] = bpf_xdp_adjust_head(ctx, -1000); /* beyond the headroom: -EINVAL */
	return XDP_TX;
}

SEC("xdp")
int pop_header(struct xdp_md *ctx)
{
	res[0] = bpf_xdp_adjust_head(ctx, 14);
	res[1] = bpf_xdp_adjust_head(ctx, 100000); /* past the end: -EINVAL */
	return XDP_PASS;
}

SEC("xdp")
int grow_tail(struct xdp_md *ctx)
{
	res[0] = bpf_xdp_adjust_tail(ctx, 8);
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *tail = data + 60; /* the test's packets are 60 bytes: the 8 new ones follow */
	if ((void *)(tail + 8) > data_end)
		return XDP_ABORTED;
	res[1] = tail[0] | tail[7];                   /* zero-filled */
	res[2] = bpf_xdp_adjust_tail(ctx, 100000);    /* beyond the frame: -EINVAL */
	res[3] = bpf_xdp_adjust_tail(ctx, -4);
	res[4] = bpf_xdp_get_buff_len(ctx);
	return XDP_PASS;
}

SEC("xdp")
int set_meta(struct xdp_md *ctx)
{
	res[0] = bpf_xdp_adjust_meta(ctx, -8);
	void *meta = (void *)(long)ctx->data_meta;
	void *data = (void *)(long)ctx->data;
	__u32 *m = meta;
	if ((void *)(m + 2) > data)
		return XDP_ABORTED;
	m[0] = 0x11223344;
	m[1] = 0x55667788;
	/* before the next calls: they make every packet pointer stale, as in the kernel */
	res[3] = (long)data - (long)meta;
	res[1] = bpf_xdp_adjust_meta(ctx, -6);  /* not a multiple of 4: -EACCES */
	res[2] = bpf_xdp_adjust_meta(ctx, -240); /* into the xdp_frame header: -EINVAL */
	return XDP_PASS;
}

SEC("xdp")
int load_store(struct xdp_md *ctx)
{
	__u8 buf[4];
	res[0] = bpf_xdp_load_bytes(ctx, 2, buf, 4);
	res[1] = buf[0] | (buf[1] << 8) | (buf[2] << 16) | ((__u32)buf[3] << 24);
	res[2] = bpf_xdp_store_bytes(ctx, 0, buf, 4);
	res[3] = bpf_xdp_load_bytes(ctx, 62, buf, 4); /* runs past the end: -EINVAL */
	return XDP_PASS;
}
