/*
 * ngx_stream_vmess_module: WebSocket transport types
 * (ngx_stream_vmess_ws.c).
 */

#ifndef NGX_STREAM_VMESS_WS_H
#define NGX_STREAM_VMESS_WS_H

#include <ngx_config.h>
#include <ngx_core.h>


/* room in front of each encoder buffer: a pong (2 + 125), a frame header */
#define NGX_STREAM_VMESS_WS_HEADROOM    136
/* room behind it: a close frame (1000) after the VMess end chunk */
#define NGX_STREAM_VMESS_WS_TAILROOM    4


typedef struct {
    ngx_str_t                       path;
    ngx_str_t                       host;
    ngx_str_t                       real_ip_header;
    size_t                          max_frame;
} ngx_stream_vmess_ws_conf_t;


typedef struct {
    u_char                         *w;          /* preread: unframed end */
    ngx_str_t                       early;

    ngx_uint_t                      state;
    u_char                          hdr[14];
    ngx_uint_t                      hlen;
    ngx_uint_t                      need;
    uint64_t                        left;       /* payload left in frame */
    size_t                          max_frame;
    u_char                          mask[4];
    ngx_uint_t                      mpos;
    ngx_uint_t                      opcode;

    u_char                          ctl[125];   /* control frame payload */
    size_t                          ctl_len;
    u_char                          reply[125]; /* queued pong or close */
    size_t                          reply_len;
    ngx_uint_t                      reply_opcode;

    unsigned                        fin:1;
    unsigned                        control:1;
    unsigned                        in_message:1;
    unsigned                        closed:1;
    unsigned                        close_sent:1;
    unsigned                        proxy_protocol_seen:1;
} ngx_stream_vmess_ws_t;


#endif /* NGX_STREAM_VMESS_WS_H */
