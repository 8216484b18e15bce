/*
 * vmess-client: the types, constants and cross-file calls of the client,
 * load generator and test targets (one role per file, see main.c).
 */

#ifndef VMESS_CLIENT_H
#define VMESS_CLIENT_H

#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/socket.h>

#include <openssl/evp.h>

#include "vmess.h"


/* --small-buffers: SO_RCVBUF and SO_SNDBUF of a session */
#define CLIENT_SMALL_SOCKBUF    65536

/* exit codes, also session results */
#define CLIENT_OK               0
#define CLIENT_FAIL             1
#define CLIENT_REFUSED          2
/* a session step that has not finished yet; never an exit code */
#define CLIENT_AGAIN            (-1)

#define CLIENT_OUT_SIZE         (256 * 1024)
#define CLIENT_IN_SIZE          (256 * 1024)
#define CLIENT_PLAIN_SIZE       VMESS_CHUNK_MAX
#define CLIENT_ERRORS_SHOWN     10
#define CLIENT_UDP_WINDOW       32      /* datagrams in flight */
#define CLIENT_FIRST_DATA_MS    100     /* raw: wait for stdin, as v2ray */
#define CLIENT_THREAD_STACK     (512 * 1024)
#define CLIENT_HOLD_IN_FLIGHT   128     /* hold: sessions moving at once */
#define CLIENT_HOLD_POLL_MS     100     /* hold: deadline check interval */
#define CLIENT_FDS_SPARE        16      /* stdio, pipes beside the sockets */

/* an odd size, so chunk edges drift over the pattern */
#define PATTERN_SIZE            1048573
/* the head repeated after the end: any piece up to this is contiguous */
#define PATTERN_TAIL            65536

#define SERVE_BUF_SIZE          (128 * 1024)   /* echo, per connection */
#define SERVE_IO_SIZE           (256 * 1024)
#define SERVE_UDP_BUFFER        (4 * 1024 * 1024)

/* client_die() exits: what the compiler saw when all was one file */
#if defined(__GNUC__)
#define CLIENT_NORETURN         __attribute__((noreturn))
#else
#define CLIENT_NORETURN
#endif


typedef enum {
    MODE_ECHO = 0,
    MODE_UPLOAD,
    MODE_DOWNLOAD,
    MODE_HANDSHAKES,
    MODE_RAW,
    MODE_UDP_ECHO,
    MODE_HOLD,
    MODE_PROBE,
    MODE_SERVE_ECHO,
    MODE_SERVE_SINK,
    MODE_SERVE_SOURCE,
    MODE_SERVE_UDP_ECHO
} client_mode_e;


typedef struct {
    client_mode_e               mode;
    const char                 *mode_name;     /* as typed: echo, udp-echo */
    const char                 *listen;        /* serve-* address */

    struct sockaddr_storage     server;
    socklen_t                   server_len;

    uint8_t                     id[16];
    unsigned                    have_id:1;

    uint8_t                     addr_type;
    uint8_t                     addr_len;
    uint8_t                     addr[255];
    uint16_t                    port;

    uint8_t                     security;
    uint8_t                     options;
    uint8_t                     command;
    unsigned                    legacy:1;
    unsigned                    bytes_set:1;
    unsigned                    quiet:1;
    unsigned                    verbose:1;
    unsigned                    plain:1;       /* no VMess */
    unsigned                    unchecked:1;   /* bytes counted only */
    unsigned                    small_buffers:1;
    unsigned                    probe_header:1; /* probe: a sealed one */
    uint16_t                    alter_ids;

    uint64_t                    bytes;
    uint64_t                    sessions;
    unsigned                    parallel;
    size_t                      chunk;
    int64_t                     time_offset;
    int                         timeout_ms;
    unsigned                    in_flight;     /* hold */
    int                         hold_ms;       /* hold */
    int                         answer_ms;     /* hold; 0: all must echo */
    int                         stall_ms;      /* download: reads nothing */
    const char                 *replay_file;
    const char                 *send_header;
    const char                 *httpupgrade;   /* the path */
    const char                 *http_host;
    unsigned                    upgrade_key:1;
    unsigned                    early:1;       /* no wait for the 101 */
} client_conf_t;


/* --send-header: the bytes to send and, from F.keys, their body keys */
typedef struct {
    uint8_t                    *data;
    size_t                      len;
    unsigned                    have_keys:1;
    unsigned                    legacy:1;
    vmess_request_t             req;
} client_header_file_t;


typedef struct {
    int                         fd;
    uint64_t                    index;

    vmess_request_t             req;
    vmess_session_t             keys;
    vmess_body_t                writer;
    vmess_body_t                reader;
    unsigned                    codecs:1;      /* writer/reader usable */
    unsigned                    stdin_source:1;
    unsigned                    input_eof:1;   /* no more payload */
    unsigned                    response_header:1;
    unsigned                    end_sent:1;
    unsigned                    complete:1;    /* all expected came */
    unsigned                    done:1;        /* raw: response ended */
    unsigned                    hash:1;
    unsigned                    keep_open:1;   /* hold: no end marker yet */

    size_t                      overhead;      /* per sealed chunk */
    size_t                      out_pos;
    size_t                      out_len;
    size_t                      in_len;

    uint8_t                     prefix[8];     /* upload/download count */
    size_t                      prefix_len;
    uint64_t                    start;         /* pattern offset */
    uint64_t                    to_send;
    uint64_t                    sent;
    uint64_t                    to_receive;
    uint64_t                    received;
    uint8_t                     ack[8];
    size_t                      ack_len;

    uint64_t                    dgrams;
    uint64_t                    dgrams_sent;
    uint64_t                    dgrams_received;
    uint8_t                    *dgram_seen;    /* bitmap */

    double                      seconds;
    double                      started;       /* hold: this round's */
    double                      progressed;    /* hold: last byte moved */
    char                        error[256];
} client_session_t;


typedef struct {
    pthread_t                   thread;

    /* made once per thread: no allocation per chunk or per session */
    uint8_t                    *out;
    uint8_t                    *in;
    uint8_t                    *plain;
    uint8_t                    *staging;
    uint8_t                    *scratch;
    uint8_t                     pad[64];
    vmess_user_t                user;
    unsigned                    user_ready:1;
    EVP_MD_CTX                 *sha;

    client_session_t           *s;             /* the one it runs */
    client_session_t            session;       /* its own (threads) */

    /* this thread's totals */
    uint64_t                    ok;
    uint64_t                    failed;
    uint64_t                    refused;
    uint64_t                    bytes;
    uint64_t                    dgrams;
    char                        sha_hex[65];
    char                        first_error[256];
} client_worker_t;


/* hold: every session, and the slots (buffers) of the ones moving */
typedef struct {
    client_session_t           *sessions;      /* conf.sessions */
    client_worker_t            *slots;         /* conf.in_flight */
    struct pollfd              *pfds;          /* one per slot */
    uint64_t                    held;
    uint64_t                    unanswered;
    uint64_t                    refused;
    uint64_t                    closed;        /* after the second round */
    uint64_t                    bytes;
} client_hold_t;


typedef enum {
    SERVE_PREFIX = 0,
    SERVE_BODY,
    SERVE_ACK,
    SERVE_FINISHED
} serve_state_e;


typedef struct {
    int                         fd;
    serve_state_e               state;
    unsigned                    eof:1;
    uint8_t                    *buf;           /* echo: bytes to return */
    size_t                      head;
    size_t                      tail;
    uint8_t                     prefix[8];
    size_t                      prefix_len;
    uint64_t                    count;         /* n from the prefix */
    uint64_t                    done;          /* discarded or sent */
} serve_conn_t;


/* options.c */
int client_parse_args(int argc, char **argv);
int client_split_host_port(const char *s, char *host, size_t cap,
    const char **port);
int client_save_header_file(const char *name, const uint8_t *data,
    size_t len, const vmess_request_t *req);

/* util.c */
void client_die(const char *fmt, ...) CLIENT_NORETURN;
void client_random(void *buf, size_t len);
double client_now(void);
double client_cpu_seconds(void);
void client_put_be64(uint8_t *p, uint64_t v);
uint64_t client_get_be64(const uint8_t *p);
void client_pattern_init(void);
uint64_t client_raise_nofile(void);
void client_buffer_compact(uint8_t *buf, size_t size, size_t *pos,
    size_t *len);
void client_signal(int signo, void (*handler)(int signo));
int client_fail(client_worker_t *w, const char *fmt, ...);

/* run.c */
int client_run(void);
int client_worker_init(client_worker_t *w);
void client_worker_free(client_worker_t *w);

/* session.c */
int client_session(client_worker_t *w, uint64_t index);
int client_session_start(client_worker_t *w, uint64_t index);
int client_session_io(client_worker_t *w, int *progress);
int client_seal_request(client_worker_t *w, size_t *len);
void client_session_close(client_worker_t *w);
int client_seal(client_worker_t *w, const uint8_t *data, size_t len);
int client_complete(client_worker_t *w);
int client_timeout(client_worker_t *w);

/* udp.c */
int client_seal_datagram(client_worker_t *w, uint64_t j);
int client_output_datagram(client_worker_t *w, const uint8_t *data,
    size_t len);

/* httpupgrade.c */
int client_httpupgrade(client_worker_t *w);

/* raw.c */
int client_raw_header(client_worker_t *w);
int client_read_stdin(client_worker_t *w);
int client_raw_output(client_worker_t *w, const uint8_t *data, size_t len);

/* check.c */
int client_check_count(client_worker_t *w, const uint8_t *data, size_t len);
int client_check_pattern(client_worker_t *w, const uint8_t *data,
    size_t len);

/* probe.c */
int client_probe(client_worker_t *w, uint64_t index);

/* hold.c */
int client_hold(void);

/* serve.c, serve_echo.c, serve_count.c */
int serve_main(void);
int serve_echo_io(serve_conn_t *c, short revents);
int serve_udp(int fd);
int serve_sink_io(serve_conn_t *c, short revents, uint8_t *scratch);
int serve_source_io(serve_conn_t *c, short revents, uint8_t *scratch);


extern client_conf_t          conf;
extern client_header_file_t   header_file;
extern uint8_t               *pattern;


#endif /* VMESS_CLIENT_H */
