/*
 * ngx_stream_vmess_module: types shared by the glue files.
 */

#ifndef NGX_STREAM_VMESS_MODULE_H
#define NGX_STREAM_VMESS_MODULE_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "vmess.h"
#include "ngx_stream_vmess_ws.h"


/* a free bit of c->buffered: the filter still holds data of a direction */
#define NGX_STREAM_VMESS_BUFFERED       0x20

/* a destination as text: an IP address and a port, never a socket path */
#if (NGX_HAVE_INET6)
#define NGX_STREAM_VMESS_ADDR_STRLEN                                        \
    (NGX_INET6_ADDRSTRLEN + sizeof("[]:65535") - 1)
#else
#define NGX_STREAM_VMESS_ADDR_STRLEN                                        \
    (NGX_INET_ADDRSTRLEN + sizeof(":65535") - 1)
#endif

/* allowed securities, "vmess_security" */
#define NGX_STREAM_VMESS_SEC_CFB        0x01
#define NGX_STREAM_VMESS_SEC_GCM        0x02
#define NGX_STREAM_VMESS_SEC_CHACHA     0x04
#define NGX_STREAM_VMESS_SEC_NONE       0x08    /* 5, chunk stream (0x01) */
#define NGX_STREAM_VMESS_SEC_ZERO       0x10    /* 5, raw (no 0x01) */
#define NGX_STREAM_VMESS_SEC_ALL        0x1f

/* session states */
#define NGX_STREAM_VMESS_AUTH           0   /* waiting for 16 bytes */
#define NGX_STREAM_VMESS_HEADER         1   /* user found, header pending */
#define NGX_STREAM_VMESS_RESOLVING      2
#define NGX_STREAM_VMESS_ACTIVE         3   /* header consumed, filter on */
#define NGX_STREAM_VMESS_FALLBACK       4   /* bytes pass untouched */
#define NGX_STREAM_VMESS_DRAIN          5
#define NGX_STREAM_VMESS_REFUSED        6
#define NGX_STREAM_VMESS_OWN            7   /* UDP/mux: relayed by us */

/* $vmess_status */
#define NGX_STREAM_VMESS_ST_NONE        0
#define NGX_STREAM_VMESS_ST_OK          1
#define NGX_STREAM_VMESS_ST_FALLBACK    2
#define NGX_STREAM_VMESS_ST_UNKNOWN     3
#define NGX_STREAM_VMESS_ST_REPLAY      4
#define NGX_STREAM_VMESS_ST_SKEW        5
#define NGX_STREAM_VMESS_ST_BAD_HEADER  6
#define NGX_STREAM_VMESS_ST_DENIED      7

/* chunk plaintext per sealed response chunk */
#define NGX_STREAM_VMESS_SEAL_MAX       16384


typedef struct {
    u_char                          id[16];
    ngx_str_t                       uuid;       /* canonical text */
    ngx_str_t                       name;       /* email, else uuid */
    ngx_uint_t                      alter_ids;
} ngx_stream_vmess_user_conf_t;


typedef struct {
    ngx_shm_zone_t                 *shm_zone;
} ngx_stream_vmess_main_conf_t;


typedef struct {
    ngx_flag_t                      enable;
    ngx_flag_t                      legacy;
    ngx_flag_t                      allow_private;
    ngx_flag_t                      strict_nonce;
    ngx_uint_t                      security;
    ngx_uint_t                      mux_sessions;
    ngx_msec_t                      mux_timeout;
    ngx_msec_t                      udp_timeout;
    ngx_stream_content_handler_pt   content_handler;    /* proxy_pass */

    ngx_array_t                    *user_confs;
    ngx_str_t                       fallback;
    ngx_stream_vmess_ws_conf_t     *ws;         /* "vmess_websocket" */

    /* built at merge time for "vmess on" servers */
    vmess_user_t                   *users;
    ngx_uint_t                      nusers;
    vmess_legacy_index_t           *legacy_index;
    time_t                          legacy_updated;
    size_t                          drain_base;
    size_t                          drain_max;

    /* where "vmess on" was set, for errors found at merge time */
    ngx_str_t                       file;
    ngx_uint_t                      line;
} ngx_stream_vmess_srv_conf_t;


typedef struct {
    ngx_chain_t                    *in;         /* own links, unconsumed */
    ngx_chain_t                    *free;       /* own output buffers */
    ngx_chain_t                    *busy;
    ngx_uint_t                      nbufs;
    ngx_chain_t                    *held;       /* read, still referenced */
    u_char                         *pos;        /* read up to, in in */
    unsigned                        staging_busy:1; /* our copy (staging,
                                                       scratch) queued */
    unsigned                        last:1;     /* input had last_buf */
    unsigned                        last_sent:1;
    unsigned                        started:1;
    unsigned                        eof:1;      /* VMess end chunk seen */
    unsigned                        shut:1;     /* upstream half-closed */
} ngx_stream_vmess_dir_t;


typedef struct {
    ngx_stream_session_t           *session;
    ngx_uint_t                      state;
    ngx_uint_t                      status;
    ngx_msec_t                      start;

    ngx_uint_t                      user;
    int64_t                         timestamp;

    uint8_t                         command;
    uint8_t                         response_v;
    ngx_uint_t                      security;   /* NGX_STREAM_VMESS_SEC_* */

    unsigned                        has_user:1;
    unsigned                        legacy:1;
    unsigned                        in_resolver:1;
    unsigned                        resolve_failed:1;
    unsigned                        header_sent:1;
    unsigned                        dec_init:1;
    unsigned                        enc_init:1;
    unsigned                        wrap_logged:1;
    unsigned                        proxy_protocol:1;

    ngx_str_t                       target;     /* host:port, IP literal */
    ngx_str_t                       host;       /* as sent */
    in_port_t                       port;
    u_char                          port_text[6];
    ngx_sockaddr_t                  sockaddr;
    socklen_t                       socklen;
    ngx_resolver_ctx_t             *rctx;

    size_t                          drain_size;
    size_t                          drained;

    vmess_body_t                    dec;        /* client -> upstream */
    vmess_body_t                    enc;        /* upstream -> client */
    u_char                         *staging;
    u_char                         *scratch;    /* response from read-only
                                                   memory, sealed in a copy */
    u_char                          pad[64];

    ngx_stream_vmess_dir_t          dir[2];     /* 0: to upstream */

    ngx_stream_vmess_ws_t          *ws;         /* after the 101 */
    void                           *own;        /* UDP/mux session */
} ngx_stream_vmess_ctx_t;


ngx_int_t ngx_stream_vmess_filter_init(ngx_conf_t *cf);
ngx_chain_t *ngx_stream_vmess_get_buf(ngx_stream_session_t *s,
    ngx_stream_vmess_dir_t *d, size_t size, ngx_uint_t max,
    ngx_buf_tag_t tag);
void ngx_stream_vmess_consumed(ngx_stream_session_t *s,
    ngx_stream_vmess_dir_t *d);
ngx_int_t ngx_stream_vmess_proxy_init(ngx_conf_t *cf, ngx_uint_t upper);

char *ngx_stream_vmess_websocket(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_stream_vmess_ws_preread(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf);
ngx_int_t ngx_stream_vmess_ws_input(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_buf_t *b);
void ngx_stream_vmess_ws_wrap(ngx_stream_vmess_ctx_t *ctx, ngx_buf_t *b);

ngx_uint_t ngx_stream_vmess_private_addr(struct sockaddr *sa);

ngx_int_t ngx_stream_vmess_own_init(ngx_conf_t *cf);
ngx_int_t ngx_stream_vmess_mux_sessions_variable(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data);

char *ngx_stream_vmess_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_stream_vmess_replay_check(ngx_shm_zone_t *shm_zone,
    const u_char *authid, time_t timestamp);


extern ngx_module_t  ngx_stream_vmess_module;

#endif /* NGX_STREAM_VMESS_MODULE_H */
