/*
 * ngx_stream_vmess_module: the one internal header of the glue.
 *
 * It declares the configuration, the session ctx, the module's own relay
 * (UDP command and Mux.Cool) and every call one glue file makes into
 * another; src/README says which file owns which phase.  No glue file
 * uses another's statics.
 */

#ifndef NGX_STREAM_VMESS_MODULE_H
#define NGX_STREAM_VMESS_MODULE_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "vmess.h"


/* a free bit of c->buffered: the filter still holds data of a direction */
#define NGX_STREAM_VMESS_BUFFERED       0x20

/* the bufs of the inbound filter and of the module's own relay */
#define NGX_STREAM_VMESS_TAG            (ngx_buf_tag_t) &ngx_stream_vmess_module

/* a destination as text: an IP address and a port, never a socket path */
#if (NGX_HAVE_INET6)
#define NGX_STREAM_VMESS_ADDR_STRLEN                                        \
    (NGX_INET6_ADDRSTRLEN + sizeof("[]:65535") - 1)
#else
#define NGX_STREAM_VMESS_ADDR_STRLEN                                        \
    (NGX_INET_ADDRSTRLEN + sizeof(":65535") - 1)
#endif

/* the legacy index's hashes are remade this often, seconds */
#define NGX_STREAM_VMESS_LEGACY_REFRESH 10

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
#define NGX_STREAM_VMESS_ST_EXPIRED     8
#define NGX_STREAM_VMESS_ST_N           9

/* where a user comes from (ngx_stream_vmess_user_sh_t.from) */
#define NGX_STREAM_VMESS_FROM_CONF      0x01    /* a "vmess_user" */
#define NGX_STREAM_VMESS_FROM_FILE      0x02    /* a user file's line */
#define NGX_STREAM_VMESS_FROM_API       0x04    /* added since the reload */

/* the directions of the per-user counters */
#define NGX_STREAM_VMESS_UP             0   /* client to destination */
#define NGX_STREAM_VMESS_DOWN           1

/* chunk plaintext per sealed response chunk */
#define NGX_STREAM_VMESS_SEAL_MAX       16384

/* WebSocket: room in front of each encoder buffer for a pong (2 + 125)
 * and a frame header; room behind it for a close frame (1000) */
#define NGX_STREAM_VMESS_WS_HEADROOM    136
#define NGX_STREAM_VMESS_WS_TAILROOM    4

/* the module's own relay: free room in front of an upstream read */
#define NGX_STREAM_VMESS_OWN_HEADROOM   16

/* how a sub-session's upstream side ended (ngx_stream_vmess_own_ops_t) */
#define NGX_STREAM_VMESS_SUB_TIMEDOUT   0
#define NGX_STREAM_VMESS_SUB_EOF        1
#define NGX_STREAM_VMESS_SUB_RECV_ERROR 2
#define NGX_STREAM_VMESS_SUB_FAILED     3


typedef struct {
    u_char                          id[16];
    ngx_str_t                       uuid;       /* canonical text */
    ngx_str_t                       name;       /* email, else uuid */
    ngx_uint_t                      alter_ids;
    ngx_uint_t                      in_file;    /* of the server's first
                                                   "vmess_user_file" */
} ngx_stream_vmess_user_conf_t;


/* "vmess_websocket", "vmess_httpupgrade": an HTTP upgrade on a path */

typedef struct {
    ngx_str_t                       path;
    ngx_str_t                       host;
    ngx_str_t                       real_ip_header;
    size_t                          max_frame;
    ngx_str_t                       file;       /* where it was set */
    ngx_uint_t                      line;
    unsigned                        raw:1;      /* httpupgrade: no frames */
} ngx_stream_vmess_ws_conf_t;


typedef struct ngx_stream_vmess_server_sh_s  ngx_stream_vmess_server_sh_t;


/*
 * The per-user counters (ngx_stream_vmess_stats.c).  In the zone: a node
 * per user (inbound or outbound) and per server, never freed while the
 * zone lives, so a worker of an older configuration may still count.
 */

typedef struct {
    ngx_rbtree_node_t               node;       /* key: id prefix */
    ngx_queue_t                     queue;      /* every user, oldest first */
    u_char                          id[16];
    ngx_uint_t                      outbound;   /* a "proxy_vmess_user" */
    u_char                         *name;       /* email, else uuid */
    size_t                          name_len;
    ngx_atomic_t                    bytes[2];   /* payload, UP and DOWN */
    ngx_atomic_t                    sessions;
    ngx_atomic_t                    active;
    ngx_atomic_t                    last_seen;

    /* set through the API; checked when a session of the user begins */
    ngx_atomic_t                    disabled;
    ngx_atomic_t                    quota;      /* bytes up + down, or 0 */
    ngx_atomic_t                    expire;     /* Unix time, or 0 */
    ngx_atomic_t                    kill;       /* raised: sessions end */

    /* where the user comes from (NGX_STREAM_VMESS_FROM_*), its server for
     * FILE and API users, and whether the API removed it */
    ngx_uint_t                      from;
    ngx_stream_vmess_server_sh_t   *server;
    ngx_uint_t                      alter_ids;
    ngx_atomic_t                    removed;
} ngx_stream_vmess_user_sh_t;


struct ngx_stream_vmess_server_sh_s {
    ngx_queue_t                     queue;
    ngx_atomic_t                    status[NGX_STREAM_VMESS_ST_N];
    u_char                         *file;       /* "vmess_user_file", */
    size_t                          file_len;   /* NUL-ended, or NULL */
    size_t                          name_len;
    u_char                          name[1];    /* first listen address */
};


typedef struct {
    ngx_rbtree_t                    rbtree;
    ngx_rbtree_node_t               sentinel;
    ngx_queue_t                     users;
    ngx_queue_t                     servers;
    ngx_atomic_t                    generation; /* API users changed */
} ngx_stream_vmess_stats_sh_t;


/* a session of a user in one worker, for ending it from the API */

typedef struct {
    ngx_queue_t                     queue;      /* in the slot's live */
    ngx_connection_t               *connection; /* the client's */
} ngx_stream_vmess_live_t;


/* a user's counters in one worker, added to the zone's now and then */

typedef struct {
    ngx_stream_vmess_user_sh_t     *sh;
    ngx_queue_t                     dirty;      /* while pending */
    ngx_queue_t                     live;       /* its sessions here */
    ngx_queue_t                     busy;       /* while live is not empty */
    ngx_atomic_uint_t               killed;     /* sh->kill acted upon */
    uint64_t                        pending[2];
    u_char                         *id;
    ngx_str_t                      *name;
    ngx_uint_t                      outbound;
} ngx_stream_vmess_stat_t;


/*
 * The users the API added to a server, as one worker knows them
 * (ngx_stream_vmess_runtime.c): rebuilt when the zone's generation moves;
 * each session of one of them holds the table it was found in.
 */

typedef struct {
    ngx_pool_t                     *pool;
    vmess_user_t                   *users;
    ngx_stream_vmess_user_conf_t   *confs;
    ngx_stream_vmess_stat_t        *stats;
    ngx_uint_t                      nusers;
    vmess_legacy_index_t           *legacy_index;   /* "vmess_legacy on" */
    time_t                          legacy_updated;
    ngx_uint_t                      refs;       /* the server's, sessions' */
} ngx_stream_vmess_runtime_t;


typedef struct {
    ngx_shm_zone_t                 *shm_zone;
    ngx_array_t                    *dynamics;   /* dynamic_t *, every
                                                   "vmess_dynamic_port" */
    ngx_array_t                     stats;      /* ngx_stream_vmess_stat_t *
                                                   of every user */
    ngx_array_t                     servers;    /* srv confs with counters */
} ngx_stream_vmess_main_conf_t;


typedef struct ngx_stream_vmess_dynamic_s  ngx_stream_vmess_dynamic_t;


typedef struct {
    ngx_flag_t                      enable;
    ngx_flag_t                      legacy;
    ngx_flag_t                      allow_private;
    ngx_array_t                    *rules;      /* "vmess_allow", "_deny" */
    ngx_flag_t                      strict_nonce;
    ngx_flag_t                      stats_enable;   /* "vmess_stats" */
    ngx_uint_t                      security;
    ngx_uint_t                      mux_sessions;
    ngx_msec_t                      mux_timeout;
    ngx_msec_t                      mux_stall_timeout;
    ngx_msec_t                      udp_timeout;
    ngx_stream_content_handler_pt   content_handler;    /* proxy_pass */

    ngx_array_t                    *user_confs;
    ngx_str_t                       fallback;
    ngx_stream_vmess_ws_conf_t     *ws;         /* "vmess_websocket" */
    ngx_stream_vmess_ws_conf_t     *httpupgrade;
    ngx_stream_vmess_dynamic_t     *dynamic;    /* "vmess_dynamic_port" */

    /* a server on the ports of a "vmess_dynamic_port": its users are that
     * list's IDs of periods detour_period - 2 .. detour_period */
    ngx_stream_vmess_dynamic_t     *detour;
    int64_t                         detour_period;

    /* built at merge time for "vmess on" servers */
    vmess_user_t                   *users;
    ngx_uint_t                      nusers;
    vmess_legacy_index_t           *legacy_index;
    time_t                          legacy_updated;
    size_t                          drain_base;
    size_t                          drain_max;
    ngx_stream_vmess_stat_t        *stats;      /* per user, or NULL */
    ngx_stream_vmess_server_sh_t   *server_sh;
    ngx_str_t                       label;      /* first listen address */
    ngx_str_t                       user_file;  /* the first one, or empty */
    ngx_stream_vmess_runtime_t     *runtime;    /* this worker's API users */
    ngx_atomic_uint_t               generation; /* of runtime */

    /* where "vmess on" was set, for errors found at merge time */
    ngx_str_t                       file;
    ngx_uint_t                      line;
} ngx_stream_vmess_srv_conf_t;


/* "vmess_dynamic_port": where a server sends its clients' next sessions */

struct ngx_stream_vmess_dynamic_s {
    ngx_array_t                     ports;      /* in_port_t */
    ngx_str_t                       secret;
    time_t                          refresh;    /* seconds */
    ngx_uint_t                      alter_ids;
    ngx_stream_vmess_srv_conf_t    *server;     /* the one that sends it */
    ngx_str_t                       file;
    ngx_uint_t                      line;
};


/* "proxy_vmess": the outbound */

typedef struct {
    ngx_str_t                       name;
    ngx_uint_t                      security;   /* wire nibble */
    ngx_uint_t                      options;
} ngx_stream_vmess_proxy_sec_t;


typedef struct {
    ngx_flag_t                      enable;
    ngx_str_t                       uuid;
    ngx_stream_vmess_proxy_sec_t   *sec;        /* "proxy_vmess_security" */
    ngx_stream_complex_value_t     *target;
    vmess_user_t                   *user;
    ngx_stream_vmess_stat_t        *stat;       /* with a "vmess_zone" */
} ngx_stream_vmess_proxy_srv_conf_t;


/* one direction of a filter: own links to its input, own output bufs */

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


/* the WebSocket transport of a session, after the 101 */

typedef struct {
    u_char                         *w;          /* preread: unframed end */
    ngx_str_t                       early;
    vmess_ws_t                      frames;     /* the client's frames,
                                                   our queued reply */

    unsigned                        close_sent:1;
    unsigned                        proxy_protocol_seen:1;
} ngx_stream_vmess_ws_t;


typedef struct ngx_stream_vmess_own_s  ngx_stream_vmess_own_t;


typedef struct {
    ngx_stream_session_t           *session;
    ngx_uint_t                      state;
    ngx_uint_t                      status;
    ngx_msec_t                      start;

    ngx_uint_t                      user;       /* in vscf->users */
    vmess_user_t                   *vuser;      /* the user found */
    ngx_stream_vmess_runtime_t     *runtime;    /* holding vuser, or NULL */
    ngx_stream_vmess_stat_t        *user_stat;  /* vuser's slot, or NULL */
    ngx_stream_vmess_stat_t        *stat;       /* the same, counting */
    ngx_stream_vmess_live_t         live;
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
    unsigned                        upgraded:1; /* a 101 was sent */

    ngx_str_t                       target;     /* host:port, IP literal */
    ngx_str_t                       host;       /* as sent */
    in_port_t                       port;
    u_char                          port_text[6];
    ngx_sockaddr_t                  sockaddr;
    socklen_t                       socklen;
    ngx_resolver_ctx_t             *rctx;
    in_port_t                       dynamic_port;   /* sent to the client */

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
    ngx_stream_vmess_own_t         *own;        /* UDP/mux session */
} ngx_stream_vmess_ctx_t;


/*
 * The module's own relay (ngx_stream_vmess_upstream.c): one client
 * connection and its sub-sessions, each with an upstream connection of
 * ours.  The UDP command has one sub-session, Mux.Cool many; what differs
 * between them is behind ops.
 */

typedef struct ngx_stream_vmess_sub_s  ngx_stream_vmess_sub_t;

typedef struct {
    /* the plaintext in own->plain, to the upstreams: NGX_OK when used up,
     * NGX_AGAIN when paused, NGX_ERROR to close the session */
    ngx_int_t                     (*input)(ngx_stream_vmess_own_t *own);
    /* len bytes read from sub's upstream at data, with OWN_HEADROOM free
     * bytes in front, to the client */
    ngx_int_t                     (*output)(ngx_stream_vmess_sub_t *sub,
                                            u_char *data, size_t len);
    /* sub's upstream side ended: NGX_STREAM_VMESS_SUB_* */
    void                          (*ended)(ngx_stream_vmess_sub_t *sub,
                                           ngx_uint_t how);
} ngx_stream_vmess_own_ops_t;


struct ngx_stream_vmess_sub_s {
    ngx_queue_t                     queue;
    ngx_stream_vmess_own_t         *own;
    ngx_pool_t                     *pool;
    ngx_peer_connection_t           peer;
    ngx_resolver_ctx_t             *rctx;
    ngx_buf_t                      *out;        /* to the upstream */
    ngx_event_t                     stall;      /* timer: out is full */
    ngx_str_t                       host;
    ngx_str_t                       name;       /* addr:port */
    in_port_t                       port;
    ngx_sockaddr_t                  sockaddr;
    socklen_t                       socklen;
    ngx_uint_t                      id;
    unsigned                        udp:1;
    unsigned                        connected:1;
    unsigned                        end:1;      /* client sent End */
    unsigned                        drop:1;     /* current datagram lost */
};


struct ngx_stream_vmess_own_s {
    ngx_stream_session_t           *session;
    ngx_stream_vmess_ctx_t         *ctx;
    ngx_stream_vmess_srv_conf_t    *conf;
    const ngx_stream_vmess_own_ops_t  *ops;
    ngx_buf_t                      *plain;      /* one opened chunk */
    u_char                         *rbuf;       /* upstream reads */
    ngx_queue_t                     subs;
    ngx_uint_t                      nsubs;
    ngx_uint_t                      opened;     /* $vmess_mux_sessions */
    /* datagrams dropped: the client's output full, send() EAGAIN, sent
     * while the target was resolved, over VMESS_UDP_PAYLOAD_MAX */
    ngx_uint_t                      dropped_client;
    ngx_uint_t                      dropped_target;
    ngx_uint_t                      dropped_early;
    ngx_uint_t                      dropped_over;
    ngx_stream_vmess_sub_t         *cur;        /* owner of frame data */
    ngx_stream_vmess_sub_t         *paused;     /* its buffer is full */
    ngx_uint_t                      ended_id;   /* the last one we ended */
    vmess_mux_reader_t              reader;
    vmess_mux_frame_t               frame;
    ngx_stream_vmess_dir_t          out;        /* to the client */
    ngx_msec_t                      timeout;
    unsigned                        mux:1;
    unsigned                        blocked:1;  /* no output buffer */
    unsigned                        finishing:1;
    unsigned                        error:1;
    unsigned                        drops_logged:1;
    unsigned                        ended:1;    /* ended_id is set */
};


/* ngx_stream_vmess_users.c: "vmess_user", "vmess_user_file" */
char *ngx_stream_vmess_user(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_stream_vmess_user_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_stream_vmess_init_users(ngx_conf_t *cf,
    ngx_stream_vmess_srv_conf_t *vscf);
char *ngx_stream_vmess_users_alloc(ngx_conf_t *cf,
    ngx_stream_vmess_srv_conf_t *vscf, ngx_uint_t n);
char *ngx_stream_vmess_legacy_index(ngx_conf_t *cf,
    ngx_stream_vmess_srv_conf_t *vscf);

/* ngx_stream_vmess_runtime.c: users added through the API */
ngx_int_t ngx_stream_vmess_runtime_find(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf,
    int64_t now, int64_t *timestamp, ngx_uint_t legacy);

/* ngx_stream_vmess_zone.c: the replay filter */
char *ngx_stream_vmess_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_stream_vmess_replay_check(ngx_shm_zone_t *shm_zone,
    const u_char *authid, time_t timestamp);

ngx_stream_vmess_stats_sh_t *ngx_stream_vmess_zone_stats(
    ngx_shm_zone_t *shm_zone, ngx_slab_pool_t **shpool);

/* ngx_stream_vmess_stats.c: the per-user counters */
ngx_int_t ngx_stream_vmess_stats_register(ngx_conf_t *cf,
    ngx_stream_vmess_srv_conf_t *vscf);
ngx_int_t ngx_stream_vmess_stats_outbound(ngx_conf_t *cf, u_char *id,
    ngx_str_t *uuid, ngx_stream_vmess_stat_t **stat);
ngx_int_t ngx_stream_vmess_stats_init_zone(ngx_slab_pool_t *shpool,
    ngx_stream_vmess_stats_sh_t *sh, ngx_uint_t fresh,
    ngx_stream_vmess_main_conf_t *vmcf);
const char *ngx_stream_vmess_stats_refused(ngx_stream_vmess_stat_t *st);
void ngx_stream_vmess_stats_start(ngx_stream_vmess_stat_t *st,
    ngx_stream_vmess_live_t *live, ngx_connection_t *c);
void ngx_stream_vmess_stats_add(ngx_stream_vmess_stat_t *st, ngx_uint_t dir,
    size_t n);
void ngx_stream_vmess_stats_end(ngx_stream_vmess_stat_t *st,
    ngx_stream_vmess_live_t *live);
void ngx_stream_vmess_stats_status(ngx_stream_vmess_srv_conf_t *vscf,
    ngx_uint_t status);
uint64_t ngx_stream_vmess_stats_read(ngx_atomic_t *counter,
    ngx_uint_t reset);

/* ngx_stream_vmess_api_format.c: the HTTP API's answers and POST body */

/* one user's JSON object, but the email (escaped: up to 6x its length) */
#define NGX_STREAM_VMESS_API_USER_JSON                                      \
    sizeof("{\"uuid\":\"00000000-0000-0000-0000-000000000000\","           \
           "\"user\":\"\",\"outbound\":false,"                              \
           "\"uplink_bytes\":,\"downlink_bytes\":,"                         \
           "\"sessions_total\":,\"sessions_active\":,\"last_seen\":,"       \
           "\"enabled\":false,\"quota_bytes\":,\"expire\":},")             \
    + 7 * NGX_INT64_LEN

/* what a POST sets: -1 (or empty) leaves a field as it is */
typedef struct {
    ngx_int_t                       enabled;
    ngx_int_t                       kill;
    int64_t                         quota;
    int64_t                         expire;
    int64_t                         alter_id;   /* POST users: a new user */
    ngx_str_t                       id;
    ngx_str_t                       email;
} ngx_stream_vmess_api_set_t;


/* POST users (add) and DELETE users/ID (remove), under the zone's mutex */
typedef struct {
    ngx_pool_t                     *pool;
    ngx_log_t                      *log;
    ngx_stream_vmess_stats_sh_t    *sh;
    ngx_slab_pool_t                *shpool;
    ngx_stream_vmess_api_set_t     *set;        /* add: the body */
    u_char                          uid[16];    /* add: set->id parsed */
    ngx_str_t                       server;     /* add: "?server=", or "" */
    ngx_str_t                       id;         /* remove: UUID or email */
    ngx_uint_t                      kill;       /* remove: "?kill=1" */
    ngx_stream_vmess_user_sh_t     *user;       /* added or removed */
    const char                     *error;      /* NGX_DECLINED, NGX_BUSY,
                                                   NGX_ABORT: why */
} ngx_stream_vmess_api_change_t;

/* what one request reads, under the zone's mutex */
typedef struct {
    ngx_pool_t                     *pool;       /* of the answer */
    ngx_stream_vmess_stats_sh_t    *sh;
    ngx_str_t                       id;         /* one user, or empty */
    ngx_uint_t                      reset;
    ngx_uint_t                      found;
} ngx_stream_vmess_api_read_t;

const char *ngx_stream_vmess_api_parse(u_char *p, u_char *last,
    ngx_stream_vmess_api_set_t *set);
ngx_stream_vmess_user_sh_t *ngx_stream_vmess_api_find(
    ngx_stream_vmess_stats_sh_t *sh, ngx_str_t *id);
ngx_int_t ngx_stream_vmess_api_users(ngx_stream_vmess_api_read_t *rd,
    ngx_buf_t **out);
ngx_int_t ngx_stream_vmess_api_add(ngx_stream_vmess_api_change_t *ch);
ngx_int_t ngx_stream_vmess_api_remove(ngx_stream_vmess_api_change_t *ch);
u_char *ngx_stream_vmess_api_user_json(u_char *p,
    ngx_stream_vmess_user_sh_t *u, ngx_uint_t reset);
ngx_int_t ngx_stream_vmess_api_servers(ngx_stream_vmess_api_read_t *rd,
    ngx_buf_t **out);
ngx_int_t ngx_stream_vmess_api_metrics(ngx_stream_vmess_api_read_t *rd,
    ngx_buf_t **out);

/* ngx_stream_vmess_dynamic.c: "vmess_dynamic_port" and its detour
 * servers */
char *ngx_stream_vmess_dynamic_port(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_stream_vmess_dynamic_detour(ngx_conf_t *cf,
    ngx_stream_vmess_srv_conf_t *vscf);
ngx_int_t ngx_stream_vmess_dynamic_init(ngx_conf_t *cf);
ngx_int_t ngx_stream_vmess_dynamic_refresh(ngx_log_t *log,
    ngx_stream_vmess_srv_conf_t *vscf, time_t now);
ngx_uint_t ngx_stream_vmess_dynamic_expired(ngx_stream_vmess_srv_conf_t *vscf,
    ngx_uint_t user, time_t now);
ngx_int_t ngx_stream_vmess_dynamic_command(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, vmess_switch_account_t *cmd);

/* ngx_stream_vmess_variables.c */
ngx_int_t ngx_stream_vmess_add_variables(ngx_conf_t *cf);
ngx_str_t *ngx_stream_vmess_status_name(ngx_uint_t status);

/* ngx_stream_vmess_preread.c: the preread and log phases */
ngx_int_t ngx_stream_vmess_preread_handler(ngx_stream_session_t *s);
ngx_int_t ngx_stream_vmess_log_handler(ngx_stream_session_t *s);
ngx_uint_t ngx_stream_vmess_security_mask(ngx_str_t *name);
ngx_str_t *ngx_stream_vmess_security_name(ngx_uint_t mask);

/* ngx_stream_vmess_destination.c: the destination, resolved and checked */
ngx_int_t ngx_stream_vmess_target_host(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, vmess_request_t *req, u_char *host,
    size_t len);
ngx_int_t ngx_stream_vmess_destination_addr(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf,
    vmess_request_t *req);
ngx_int_t ngx_stream_vmess_target(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf);

/* ngx_stream_vmess_refuse.c: input that did not authenticate */
ngx_int_t ngx_stream_vmess_refuse(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf,
    ngx_uint_t status, ngx_uint_t level, ngx_str_t *reason);

/* ngx_stream_vmess_policy.c: destinations */
char *ngx_stream_vmess_policy_rule(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_uint_t ngx_stream_vmess_denied_addr(ngx_stream_vmess_srv_conf_t *vscf,
    struct sockaddr *sa);
ngx_int_t ngx_stream_vmess_literal_addr(ngx_pool_t *pool, ngx_uint_t type,
    const u_char *addr, ngx_str_t *host, ngx_sockaddr_t *sockaddr,
    socklen_t *socklen);
ngx_resolver_ctx_t *ngx_stream_vmess_resolve_start(ngx_stream_session_t *s,
    ngx_pool_t *pool, ngx_str_t *name, ngx_resolver_handler_pt handler,
    void *data);
void ngx_stream_vmess_resolved_addr(ngx_resolver_ctx_t *rctx,
    ngx_stream_vmess_srv_conf_t *vscf, ngx_sockaddr_t *sockaddr,
    socklen_t *socklen);
ngx_int_t ngx_stream_vmess_destination(ngx_log_t *log, ngx_pool_t *pool,
    ngx_sockaddr_t *sockaddr, socklen_t socklen, in_port_t port,
    ngx_stream_vmess_srv_conf_t *vscf, ngx_str_t *name);

/* ngx_stream_vmess_ws.c, ngx_stream_vmess_ws_frame.c: WebSocket and
 * HTTPUpgrade */
char *ngx_stream_vmess_transport(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_stream_vmess_ws_preread(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf);
ngx_int_t ngx_stream_vmess_ws_unframe(ngx_stream_session_t *s,
    ngx_stream_vmess_ws_t *ws, u_char *p, u_char *last, u_char **w);
ngx_int_t ngx_stream_vmess_ws_input(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_buf_t *b);
void ngx_stream_vmess_ws_wrap(ngx_stream_vmess_ctx_t *ctx, ngx_buf_t *b);

/* ngx_stream_vmess_buf.c: own bufs and input links of a direction */
ngx_chain_t *ngx_stream_vmess_get_buf(ngx_stream_session_t *s,
    ngx_stream_vmess_dir_t *d, size_t size, ngx_uint_t max,
    ngx_buf_tag_t tag);
void ngx_stream_vmess_put_buf(ngx_stream_vmess_dir_t *d, ngx_chain_t *cl);
ngx_int_t ngx_stream_vmess_add_input(ngx_stream_session_t *s,
    ngx_stream_vmess_dir_t *d, ngx_chain_t *in);
void ngx_stream_vmess_consumed(ngx_stream_session_t *s,
    ngx_stream_vmess_dir_t *d);

/* ngx_stream_vmess_codec.c: the chunk codecs of a session */
ngx_int_t ngx_stream_vmess_codecs_init(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, vmess_session_t *sess, ngx_flag_t strict);
ngx_int_t ngx_stream_vmess_staging(ngx_pool_t *pool, vmess_body_t *body,
    u_char **staging);
ngx_int_t ngx_stream_vmess_response_header(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_buf_t *b);
int ngx_stream_vmess_seal_input(ngx_stream_session_t *s, vmess_body_t *body,
    u_char *pad, ngx_stream_vmess_dir_t *d, ngx_buf_t *b);
int ngx_stream_vmess_seal_last(vmess_body_t *body, u_char *pad,
    ngx_stream_vmess_dir_t *d, ngx_buf_t *b);
void ngx_stream_vmess_check_wrap(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, vmess_body_t *b);
ngx_int_t ngx_stream_vmess_chunk_error(ngx_stream_session_t *s, int rc,
    const char *dir);

/* ngx_stream_vmess_filter.c: the inbound filter */
ngx_int_t ngx_stream_vmess_filter_init(ngx_conf_t *cf);

/* ngx_stream_vmess_proxy.c, ngx_stream_vmess_proxy_filter.c: the
 * outbound ("proxy_vmess") */
ngx_int_t ngx_stream_vmess_proxy_init(ngx_conf_t *cf, ngx_uint_t upper);
ngx_int_t ngx_stream_vmess_proxy_filter_init(ngx_conf_t *cf,
    ngx_uint_t upper);

/* ngx_stream_vmess_content.c: the content phase */
void ngx_stream_vmess_content_handler(ngx_stream_session_t *s);

/* ngx_stream_vmess_udp.c, ngx_stream_vmess_mux.c: the own relay's modes */
void ngx_stream_vmess_udp_start(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf);
void ngx_stream_vmess_mux_start(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf);
ngx_int_t ngx_stream_vmess_mux_sessions_variable(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data);

/* ngx_stream_vmess_upstream.c: the own relay */
ngx_stream_vmess_own_t *ngx_stream_vmess_own_create(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf,
    const ngx_stream_vmess_own_ops_t *ops);
void ngx_stream_vmess_own_run(ngx_stream_vmess_own_t *own);
ngx_int_t ngx_stream_vmess_own_send(ngx_stream_vmess_own_t *own,
    u_char *data, size_t len, ngx_uint_t end);
void ngx_stream_vmess_own_finalize(ngx_stream_vmess_own_t *own,
    ngx_uint_t rc);
ngx_stream_vmess_sub_t *ngx_stream_vmess_sub_create(
    ngx_stream_vmess_own_t *own, ngx_uint_t id, ngx_uint_t udp);
ngx_int_t ngx_stream_vmess_sub_connect(ngx_stream_vmess_sub_t *sub);
ngx_int_t ngx_stream_vmess_sub_flush(ngx_stream_vmess_sub_t *sub);
void ngx_stream_vmess_sub_close(ngx_stream_vmess_sub_t *sub);
ngx_uint_t ngx_stream_vmess_udp_dropped(ngx_stream_vmess_own_t *own);


extern ngx_module_t  ngx_stream_vmess_module;
extern ngx_module_t  ngx_stream_vmess_proxy_module;

#endif /* NGX_STREAM_VMESS_MODULE_H */
