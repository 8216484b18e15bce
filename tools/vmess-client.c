/*
 * vmess-client: a VMess client, load generator and set of test targets,
 * built on the protocol core in src/vmess.
 *
 * Client modes run sessions against a VMess server with plain sockets and
 * poll(2), one session at a time per thread (-c threads); hold runs many
 * sessions at once in one thread, a few of them moving at a time.  The
 * serve-* modes are small poll(2) targets for the test suite and
 * benchmarks.  The usage text below is the reference for the command line,
 * the output lines and the upload/download sub-protocol.
 *
 * POSIX 2008 only (MSG_NOSIGNAL, TCP_NODELAY, clock_gettime included).
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "vmess.h"


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


typedef enum {
    MODE_ECHO = 0,
    MODE_UPLOAD,
    MODE_DOWNLOAD,
    MODE_HANDSHAKES,
    MODE_RAW,
    MODE_UDP_ECHO,
    MODE_HOLD,
    MODE_SERVE_ECHO,
    MODE_SERVE_SINK,
    MODE_SERVE_SOURCE,
    MODE_SERVE_UDP_ECHO
} client_mode_e;


typedef struct {
    const char                 *name;
    client_mode_e               mode;
} client_mode_name_t;


typedef struct {
    const char                 *name;
    uint8_t                     security;
    uint8_t                     options;
} client_security_t;


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
    const char                 *replay_file;
    const char                 *send_header;
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


typedef struct {
    pthread_mutex_t             lock;
    uint64_t                    next;
    unsigned                    errors_shown;
} client_shared_t;


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


static int client_parse_args(int argc, char **argv);
static int client_parse_mode(const char *name, int udp);
static int client_parse_security(const char *name, int *options);
static int client_parse_size(const char *s, uint64_t max, uint64_t *out);
static int client_parse_port(const char *s, uint16_t *port);
static int client_split_host_port(const char *s, char *host, size_t cap,
    const char **port);
static int client_parse_server(const char *s);
static int client_parse_target(const char *s);
static int client_load_header_file(const char *name);
static int client_save_header_file(const char *name, const uint8_t *data,
    size_t len, const vmess_request_t *req);
static void client_die(const char *fmt, ...);
static void client_random(void *buf, size_t len);
static double client_now(void);
static void client_put_be64(uint8_t *p, uint64_t v);
static uint64_t client_get_be64(const uint8_t *p);
static void client_pattern_init(void);
static uint64_t client_raise_nofile(void);

static int client_run(void);
static int client_worker_init(client_worker_t *w);
static void client_worker_free(client_worker_t *w);
static void *client_thread(void *arg);
static void client_record(client_worker_t *w, int rc);
static int client_report(client_worker_t *workers, unsigned n,
    double seconds);

static int client_session(client_worker_t *w, uint64_t index);
static int client_session_plan(client_worker_t *w);
static int client_session_header(client_worker_t *w);
static int client_session_codecs(client_worker_t *w);
static int client_seal_request(client_worker_t *w, size_t *len);
static int client_legacy_id(client_worker_t *w, uint8_t id[16]);
static int client_session_connect(client_worker_t *w);
static int client_session_loop(client_worker_t *w);
static int client_session_io(client_worker_t *w, int *progress);
static void client_session_close(client_worker_t *w);
static int client_produce(client_worker_t *w);
static int client_seal(client_worker_t *w, const uint8_t *data, size_t len);
static int client_seal_end(client_worker_t *w);
static int client_read_stdin(client_worker_t *w);
static int client_input(client_worker_t *w);
static int client_output(client_worker_t *w, const uint8_t *data,
    size_t len);
static int client_complete(client_worker_t *w);
static int client_output_datagram(client_worker_t *w, const uint8_t *data,
    size_t len);
static size_t client_datagram_len(client_session_t *s, uint64_t j);
static uint64_t client_datagram_offset(client_session_t *s, uint64_t j);
static int client_closed(client_worker_t *w, int err);
static int client_timeout(client_worker_t *w);
static int client_fail(client_worker_t *w, const char *fmt, ...);

static int client_hold(void);
static void client_hold_round(client_hold_t *h, int first);
static void client_hold_start(client_hold_t *h, client_worker_t *w,
    int first, double now);
static void client_hold_io(client_hold_t *h, client_worker_t *w, int first,
    double now);
static void client_hold_end(client_hold_t *h, client_worker_t *w, int rc,
    int first);
static void client_hold_die(client_hold_t *h, client_session_t *s);
static void client_hold_signal(int signo);

static int serve_main(void);
static int serve_listen(int type, uint16_t *port);
static int serve_tcp(int lfd);
static int serve_accept(int lfd, serve_conn_t **conns, size_t *n,
    size_t *cap);
static short serve_events(serve_conn_t *c);
static int serve_io(serve_conn_t *c, short revents, uint8_t *scratch);
static int serve_echo_io(serve_conn_t *c, short revents);
static int serve_sink_io(serve_conn_t *c, short revents, uint8_t *scratch);
static int serve_source_io(serve_conn_t *c, short revents,
    uint8_t *scratch);
static size_t serve_prefix(serve_conn_t *c, const uint8_t *p, size_t n);
static int serve_udp(int fd);
static void serve_sigterm(int signo);


static const char  client_usage_text[] =
"usage: vmess-client [options] MODE\n"
"       vmess-client serve-echo|serve-sink|serve-source|serve-udp-echo"
" [HOST:]PORT\n"
"\n"
"client modes (one result line on stdout; exit 0 ok, 1 failure):\n"
"  echo        send -n bytes to an echo target, read them back, compare:\n"
"              echo ok bytes=N sha256=HEX seconds=S MiB/s=X\n"
"              with -c/-r: echo ok sessions=R bytes=TOTAL seconds=S MiB/s=X\n"
"  upload      send -n bytes to a sink target, wait for its count:\n"
"              upload ok bytes=N seconds=S MiB/s=X\n"
"  download    ask a source target for -n bytes, read and check them:\n"
"              download ok bytes=N seconds=S MiB/s=X\n"
"  handshakes  -r sessions (-c at a time), each echoing -n bytes\n"
"              (default 64): handshakes ok sessions=R seconds=S"
" per_second=X\n"
"  udp-echo    (or echo --udp) -n bytes as datagrams of --chunk bytes\n"
"              through a UDP echo target, each checked:\n"
"              udp-echo ok datagrams=K bytes=N seconds=S\n"
"  raw         one request: the payload is -n bytes, else stdin when it\n"
"              is not a terminal; the decoded response goes to stdout and\n"
"              a status line to stderr:\n"
"              raw ok bytes=N end=yes|no seconds=S (end: the end marker\n"
"              came).  Exit 0: a response header came;\n"
"              2: refused (closed, or --timeout passed, without a\n"
"              response header); 1: any other error\n"
"  hold        -c sessions open at once, in one thread: each connects and\n"
"              echoes -n bytes (default 64), checked, --in-flight at a\n"
"              time; once all have, it prints\n"
"              hold held=H sessions=N unanswered=U refused=R seconds=S\n"
"              and keeps them open and idle for --hold seconds or until\n"
"              SIGUSR1; then each echoes -n bytes more, checked, and\n"
"              closes: hold ok sessions=H bytes=TOTAL seconds=S\n"
"  Result lines start with MODE as typed (\"echo\" for echo --udp).\n"
"  Failures print \"MODE FAIL ...: reason\" on stdout; with several\n"
"  sessions each failed one also has a line on stderr.\n"
"\n"
"options:\n"
"  -s host:port      VMess server (default 127.0.0.1:10086)\n"
"  -u uuid           user id\n"
"  -t host:port      target the server connects to: a domain, an IPv4\n"
"                    address or an [IPv6] address\n"
"  -S security       aes-128-gcm (default), chacha20-poly1305, none, zero,\n"
"                    aes-128-cfb, or a wire number 0..15 (refusal tests)\n"
"  -o options        option byte in hex (default 0d for gcm and chacha,\n"
"                    05 none, 00 zero (sent as security 5), 01 aes-128-cfb)\n"
"  --padding         add options 0x08 and 0x04 (global padding)\n"
"  --auth-length     add option 0x10 (authenticated length)\n"
"  --legacy          legacy MD5 header instead of AEAD (no time jitter)\n"
"  --alter-id N      with --legacy: authenticate with a random one of N\n"
"                    alter IDs, as v2ray does\n"
"  --udp             command 2 (UDP): every chunk is one datagram\n"
"  --command N       request command (default 1 TCP; 3 is Mux.Cool, whose\n"
"                    frames raw mode passes through as they are)\n"
"  -n bytes          bytes to send (echo, upload, raw) or to expect\n"
"                    (download); suffixes k, m, g (x1024); default 1m\n"
"  -c N              sessions in parallel, one thread each (default 1);\n"
"                    hold: the sessions held open at once\n"
"  -r N              sessions in total (default: -c)\n"
"  --chunk N         plaintext bytes per chunk (default 16384; 2030 is\n"
"                    what v2ray sends); with --udp the datagram size\n"
"                    (default 1024)\n"
"  --time-offset S   shift the client clock by S seconds\n"
"  --timeout S       give up after S seconds without progress"
" (default 10)\n"
"  --replay-file F   save the first session's sealed header to F and its\n"
"                    body keys to F.keys\n"
"  --send-header F   raw: send the bytes of F instead of sealing a header;\n"
"                    the payload is sealed with F.keys when that exists,\n"
"                    else sent as it is (and the answer only counted)\n"
"  --in-flight N     hold: sessions connecting or echoing at a time\n"
"                    (default 128)\n"
"  --hold S          hold: seconds the sessions stay idle (default 60)\n"
"  --answer S        hold: a session without its echo S seconds after it\n"
"                    started, or closed before the response header, is\n"
"                    closed and counted (unanswered=, refused=) instead\n"
"                    of failing the run (v2ray drains a few genuine\n"
"                    sessions as replays)\n"
"  --plain           echo, upload, download, hold: plain TCP, the payload\n"
"                    without VMess, for the floor of a stream proxy (-u\n"
"                    and -t are not needed)\n"
"  --unchecked       download: count the bytes, do not compare them (the\n"
"                    bench's relay garbles them as a cipher would)\n"
"  -q                print nothing on success\n"
"  -v                per-session details on stderr\n"
"\n"
"targets for tests: print \"listening PORT\" when ready (port 0 picks a\n"
"free one), serve many connections with poll(2), exit 0 on SIGTERM.\n"
"They and hold raise their open-files limit to the hard limit:\n"
"  serve-echo        TCP echo\n"
"  serve-sink        reads the count n, discards n bytes, answers with the\n"
"                    same 8 count bytes, then discards the rest\n"
"  serve-source      reads the count n and sends n pattern bytes, then\n"
"                    half-closes\n"
"  serve-udp-echo    UDP echo\n"
"\n"
"upload/download sub-protocol: the session's first 8 payload bytes are\n"
"the count n as a big-endian 64-bit integer (not counted in bytes=N).\n"
"The pattern is the AES-128-CTR keystream of an all-zero key and IV,\n"
"1048573 bytes long, repeated; serve-source sends it from its start and\n"
"download checks it.  echo and udp-echo send the same pattern from a\n"
"random offset per session.\n";


static const client_mode_name_t  client_modes[] = {
    { "echo", MODE_ECHO },
    { "upload", MODE_UPLOAD },
    { "download", MODE_DOWNLOAD },
    { "handshakes", MODE_HANDSHAKES },
    { "raw", MODE_RAW },
    { "udp-echo", MODE_UDP_ECHO },
    { "hold", MODE_HOLD },
    { "serve-echo", MODE_SERVE_ECHO },
    { "serve-sink", MODE_SERVE_SINK },
    { "serve-source", MODE_SERVE_SOURCE },
    { "serve-udp-echo", MODE_SERVE_UDP_ECHO },
    { NULL, MODE_ECHO }
};


/* options as a v2ray client sends them; "zero" is none without chunks */
static const client_security_t  client_securities[] = {
    { "aes-128-gcm", VMESS_SEC_AES_128_GCM,
      VMESS_OPT_CHUNK_STREAM | VMESS_OPT_CHUNK_MASKING
      | VMESS_OPT_GLOBAL_PADDING },
    { "chacha20-poly1305", VMESS_SEC_CHACHA20_POLY1305,
      VMESS_OPT_CHUNK_STREAM | VMESS_OPT_CHUNK_MASKING
      | VMESS_OPT_GLOBAL_PADDING },
    { "none", VMESS_SEC_NONE,
      VMESS_OPT_CHUNK_STREAM | VMESS_OPT_CHUNK_MASKING },
    { "zero", VMESS_SEC_NONE, 0 },
    { "aes-128-cfb", VMESS_SEC_AES_128_CFB, VMESS_OPT_CHUNK_STREAM },
    { NULL, 0, 0 }
};


static client_conf_t          conf;
static client_header_file_t   header_file;
static client_shared_t        shared = { PTHREAD_MUTEX_INITIALIZER, 0, 0 };
static uint8_t               *pattern;
static volatile sig_atomic_t  client_hold_wake;     /* hold: SIGUSR1 */


int
main(int argc, char **argv)
{
    int  rc;

    rc = client_parse_args(argc, argv);
    if (rc != CLIENT_OK) {
        return rc;
    }

    /* a closed peer or stdout shows up as EPIPE, not as a signal */
    signal(SIGPIPE, SIG_IGN);

    client_pattern_init();

    if (conf.mode >= MODE_SERVE_ECHO) {
        (void) client_raise_nofile();
        return serve_main();
    }

    if (conf.mode == MODE_HOLD) {
        return client_hold();
    }

    return client_run();
}


static int
client_parse_args(int argc, char **argv)
{
    int          i, udp, options, hold_opts;
    char        *end;
    unsigned     extra;
    uint64_t     v;
    const char  *arg, *val, *server, *target, *uuid, *security, *opt;

    memset(&conf, 0, sizeof(client_conf_t));

    server = "127.0.0.1:10086";
    target = NULL;
    uuid = NULL;
    security = "aes-128-gcm";
    opt = NULL;
    extra = 0;
    udp = 0;
    hold_opts = 0;
    conf.command = VMESS_CMD_TCP;
    conf.parallel = 1;
    conf.timeout_ms = 10000;
    conf.in_flight = CLIENT_HOLD_IN_FLIGHT;
    conf.hold_ms = 60000;

    for (i = 1; i < argc; i++) {
        arg = argv[i];

        if (arg[0] != '-' || arg[1] == '\0') {
            if (conf.mode_name == NULL) {
                conf.mode_name = arg;

            } else if (conf.listen == NULL) {
                conf.listen = arg;

            } else {
                client_die("unexpected argument \"%s\"", arg);
            }

            continue;
        }

        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            fputs(client_usage_text, stdout);
            exit(CLIENT_OK);
        }

        if (strcmp(arg, "--padding") == 0) {
            extra |= VMESS_OPT_GLOBAL_PADDING | VMESS_OPT_CHUNK_MASKING;
            continue;
        }

        if (strcmp(arg, "--auth-length") == 0) {
            extra |= VMESS_OPT_AUTH_LENGTH;
            continue;
        }

        if (strcmp(arg, "--legacy") == 0) {
            conf.legacy = 1;
            continue;
        }

        if (strcmp(arg, "--udp") == 0) {
            udp = 1;
            continue;
        }

        if (strcmp(arg, "--plain") == 0) {
            conf.plain = 1;
            continue;
        }

        if (strcmp(arg, "--unchecked") == 0) {
            conf.unchecked = 1;
            continue;
        }

        if (strcmp(arg, "-q") == 0) {
            conf.quiet = 1;
            continue;
        }

        if (strcmp(arg, "-v") == 0) {
            conf.verbose = 1;
            continue;
        }

        /* everything else takes a value */

        if (i + 1 >= argc) {
            client_die("option %s needs a value", arg);
        }

        val = argv[++i];

        if (strcmp(arg, "-s") == 0) {
            server = val;

        } else if (strcmp(arg, "-u") == 0) {
            uuid = val;

        } else if (strcmp(arg, "-t") == 0) {
            target = val;

        } else if (strcmp(arg, "-S") == 0) {
            security = val;

        } else if (strcmp(arg, "-o") == 0) {
            opt = val;

        } else if (strcmp(arg, "-n") == 0) {
            if (client_parse_size(val, UINT64_MAX / 2, &conf.bytes) != 0) {
                client_die("bad byte count \"%s\"", val);
            }
            conf.bytes_set = 1;

        } else if (strcmp(arg, "-c") == 0) {
            if (client_parse_size(val, 100000, &v) != 0 || v == 0) {
                client_die("bad session count \"%s\"", val);
            }
            conf.parallel = (unsigned) v;

        } else if (strcmp(arg, "-r") == 0) {
            if (client_parse_size(val, UINT64_MAX / 2, &conf.sessions) != 0
                || conf.sessions == 0)
            {
                client_die("bad session count \"%s\"", val);
            }

        } else if (strcmp(arg, "--chunk") == 0) {
            if (client_parse_size(val, VMESS_CHUNK_MAX, &v) != 0 || v == 0) {
                client_die("bad chunk size \"%s\"", val);
            }
            conf.chunk = (size_t) v;

        } else if (strcmp(arg, "--alter-id") == 0) {
            if (client_parse_size(val, 65535, &v) != 0) {
                client_die("bad alter id count \"%s\"", val);
            }
            conf.alter_ids = (uint16_t) v;

        } else if (strcmp(arg, "--command") == 0) {
            if (client_parse_size(val, 255, &v) != 0) {
                client_die("bad command \"%s\"", val);
            }
            conf.command = (uint8_t) v;

        } else if (strcmp(arg, "--time-offset") == 0) {
            errno = 0;
            conf.time_offset = strtoll(val, &end, 10);
            if (errno != 0 || end == val || *end != '\0') {
                client_die("bad time offset \"%s\"", val);
            }

        } else if (strcmp(arg, "--timeout") == 0) {
            if (client_parse_size(val, 86400, &v) != 0 || v == 0) {
                client_die("bad timeout \"%s\"", val);
            }
            conf.timeout_ms = (int) v * 1000;

        } else if (strcmp(arg, "--in-flight") == 0) {
            if (client_parse_size(val, 100000, &v) != 0 || v == 0) {
                client_die("bad in-flight count \"%s\"", val);
            }
            conf.in_flight = (unsigned) v;
            hold_opts = 1;

        } else if (strcmp(arg, "--hold") == 0) {
            if (client_parse_size(val, 86400, &v) != 0) {
                client_die("bad hold time \"%s\"", val);
            }
            conf.hold_ms = (int) v * 1000;
            hold_opts = 1;

        } else if (strcmp(arg, "--answer") == 0) {
            if (client_parse_size(val, 86400, &v) != 0 || v == 0) {
                client_die("bad answer time \"%s\"", val);
            }
            conf.answer_ms = (int) v * 1000;
            hold_opts = 1;

        } else if (strcmp(arg, "--replay-file") == 0) {
            conf.replay_file = val;

        } else if (strcmp(arg, "--send-header") == 0) {
            conf.send_header = val;

        } else {
            client_die("unknown option %s", arg);
        }
    }

    if (conf.mode_name == NULL) {
        fputs(client_usage_text, stderr);
        return CLIENT_FAIL;
    }

    if (client_parse_mode(conf.mode_name, udp) != 0) {
        client_die("unknown mode \"%s\"", conf.mode_name);
    }

    if (conf.mode >= MODE_SERVE_ECHO) {
        if (conf.listen == NULL) {
            conf.listen = "127.0.0.1:0";
        }
        return CLIENT_OK;
    }

    if (conf.listen != NULL) {
        client_die("unexpected argument \"%s\"", conf.listen);
    }

    if (hold_opts && conf.mode != MODE_HOLD) {
        client_die("--in-flight, --hold and --answer work with hold only");
    }

    if (conf.plain && conf.mode != MODE_HOLD && conf.mode != MODE_ECHO
        && conf.mode != MODE_UPLOAD && conf.mode != MODE_DOWNLOAD)
    {
        client_die("--plain works with echo, upload, download and hold");
    }

    if (conf.unchecked && conf.mode != MODE_DOWNLOAD) {
        client_die("--unchecked works with download only");
    }

    if (conf.mode == MODE_HOLD && conf.sessions != 0) {
        client_die("hold: -c is the number of sessions (no -r)");
    }

    if (udp) {
        conf.command = VMESS_CMD_UDP;
    }

    if (conf.command == VMESS_CMD_UDP
        && conf.mode != MODE_UDP_ECHO && conf.mode != MODE_RAW)
    {
        client_die("--udp works with echo, udp-echo and raw");
    }

    if (conf.command != VMESS_CMD_TCP && conf.command != VMESS_CMD_UDP
        && conf.mode != MODE_RAW)
    {
        client_die("--command %u works with raw only", conf.command);
    }

    conf.security = (uint8_t) client_parse_security(security, &options);

    if (opt != NULL) {
        errno = 0;
        v = strtoul(opt, &end, 16);
        if (errno != 0 || end == opt || *end != '\0' || v > 0xff) {
            client_die("bad option byte \"%s\"", opt);
        }
        options = (int) v;
    }

    conf.options = (uint8_t) (options | extra);

    if (conf.chunk == 0) {
        conf.chunk = (conf.command == VMESS_CMD_UDP) ? 1024 : 16384;
    }

    if (!conf.bytes_set) {
        conf.bytes = (conf.mode == MODE_HANDSHAKES
                      || conf.mode == MODE_HOLD) ? 64
                     : (conf.mode == MODE_UDP_ECHO) ? 65536
                     : (conf.mode == MODE_RAW) ? 0 : 1048576;
    }

    if (conf.mode == MODE_UDP_ECHO
        && (conf.chunk < 4 || conf.bytes == 0
            || (conf.bytes % conf.chunk != 0 && conf.bytes % conf.chunk < 4)))
    {
        client_die("udp-echo needs --chunk >= 4, -n > 0 and no datagram"
                   " under 4 bytes (each carries its 4-byte index)");
    }

    if (conf.mode == MODE_HOLD && conf.bytes == 0) {
        client_die("hold needs -n > 0: the echo shows a session works");
    }

    if (conf.sessions == 0) {
        conf.sessions = conf.parallel;
    }

    if (conf.in_flight > conf.sessions) {
        conf.in_flight = (unsigned) conf.sessions;
    }

    if (conf.parallel > conf.sessions) {
        conf.parallel = (unsigned) conf.sessions;
    }

    if (conf.mode == MODE_RAW && conf.sessions != 1) {
        client_die("raw runs one session");
    }

    if (conf.send_header != NULL) {
        if (conf.mode != MODE_RAW) {
            client_die("--send-header works with raw only");
        }
        client_load_header_file(conf.send_header);
        return client_parse_server(server);
    }

    if (conf.plain) {
        return client_parse_server(server);
    }

    if (uuid == NULL) {
        client_die("-u uuid is required");
    }

    if (vmess_uuid_parse(uuid, strlen(uuid), conf.id) != VMESS_OK) {
        client_die("bad uuid \"%s\"", uuid);
    }

    conf.have_id = 1;

    if (conf.command != VMESS_CMD_MUX) {
        if (target == NULL) {
            client_die("-t host:port is required");
        }

        if (client_parse_target(target) != 0) {
            client_die("bad target \"%s\"", target);
        }
    }

    if (conf.alter_ids != 0 && !conf.legacy) {
        client_die("--alter-id needs --legacy (AEAD headers use the"
                   " primary id only)");
    }

    return client_parse_server(server);
}


static int
client_parse_mode(const char *name, int udp)
{
    const client_mode_name_t  *m;

    for (m = client_modes; m->name != NULL; m++) {
        if (strcmp(m->name, name) == 0) {
            conf.mode = m->mode;

            if (udp && m->mode == MODE_ECHO) {
                conf.mode = MODE_UDP_ECHO;
            }

            if (m->mode == MODE_UDP_ECHO) {
                conf.command = VMESS_CMD_UDP;
            }

            return 0;
        }
    }

    return -1;
}


/* returns the wire nibble and sets the default options for it */
static int
client_parse_security(const char *name, int *options)
{
    char                     *end;
    unsigned long             v;
    const client_security_t  *sec;

    for (sec = client_securities; sec->name != NULL; sec++) {
        if (strcmp(sec->name, name) == 0) {
            *options = sec->options;
            return sec->security;
        }
    }

    v = strtoul(name, &end, 10);
    if (end == name || *end != '\0' || v > 15) {
        client_die("unknown security \"%s\"", name);
    }

    /* a bare number: the options of the security it names, else 0x0d */
    *options = VMESS_OPT_CHUNK_STREAM | VMESS_OPT_CHUNK_MASKING
               | VMESS_OPT_GLOBAL_PADDING;

    for (sec = client_securities; sec->name != NULL; sec++) {
        if (sec->security == v) {
            *options = sec->options;
            break;
        }
    }

    return (int) v;
}


/* decimal with an optional k, m or g (x1024) suffix */
static int
client_parse_size(const char *s, uint64_t max, uint64_t *out)
{
    char      *end;
    uint64_t   v, unit;

    if (*s < '0' || *s > '9') {
        return -1;
    }

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0) {
        return -1;
    }

    switch (*end) {
    case '\0':
        unit = 1;
        break;
    case 'k': case 'K':
        unit = 1024;
        break;
    case 'm': case 'M':
        unit = 1024 * 1024;
        break;
    case 'g': case 'G':
        unit = 1024 * 1024 * 1024;
        break;
    default:
        return -1;
    }

    if (unit != 1 && end[1] != '\0') {
        return -1;
    }

    if (v > max / unit) {
        return -1;
    }

    *out = v * unit;

    return 0;
}


static int
client_parse_port(const char *s, uint16_t *port)
{
    char           *end;
    unsigned long   v;

    if (*s < '0' || *s > '9') {
        return -1;
    }

    errno = 0;
    v = strtoul(s, &end, 10);

    if (errno != 0 || *end != '\0' || v > 65535) {
        return -1;
    }

    *port = (uint16_t) v;

    return 0;
}


/* "host:port" or "[v6]:port"; host is copied without the brackets */
static int
client_split_host_port(const char *s, char *host, size_t cap,
    const char **port)
{
    size_t       len;
    const char  *colon, *close;

    if (s[0] == '[') {
        close = strchr(s, ']');
        if (close == NULL || close[1] != ':') {
            return -1;
        }

        s++;
        len = close - s;
        colon = close + 1;

    } else {
        colon = strrchr(s, ':');
        if (colon == NULL) {
            return -1;
        }

        len = colon - s;
    }

    if (len == 0 || len >= cap || colon[1] == '\0') {
        return -1;
    }

    memcpy(host, s, len);
    host[len] = '\0';
    *port = colon + 1;

    return 0;
}


static int
client_parse_server(const char *s)
{
    int               rc;
    char              host[256];
    const char       *port;
    struct addrinfo   hints, *res;

    if (client_split_host_port(s, host, sizeof(host), &port) != 0) {
        client_die("bad server address \"%s\"", s);
    }

    memset(&hints, 0, sizeof(struct addrinfo));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;

    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        client_die("server %s: %s", s, gai_strerror(rc));
    }

    memcpy(&conf.server, res->ai_addr, res->ai_addrlen);
    conf.server_len = res->ai_addrlen;
    freeaddrinfo(res);

    return CLIENT_OK;
}


static int
client_parse_target(const char *s)
{
    char         host[256];
    const char  *port;

    if (client_split_host_port(s, host, sizeof(host), &port) != 0
        || client_parse_port(port, &conf.port) != 0)
    {
        return -1;
    }

    if (s[0] == '[') {
        if (inet_pton(AF_INET6, host, conf.addr) != 1) {
            return -1;
        }

        conf.addr_type = VMESS_ADDR_IPV6;
        conf.addr_len = 16;
        return 0;
    }

    if (inet_pton(AF_INET, host, conf.addr) == 1) {
        conf.addr_type = VMESS_ADDR_IPV4;
        conf.addr_len = 4;
        return 0;
    }

    /* anything else goes as a domain: the server judges it */
    conf.addr_type = VMESS_ADDR_DOMAIN;
    conf.addr_len = (uint8_t) strlen(host);
    memcpy(conf.addr, host, conf.addr_len);

    return 0;
}


/* F.keys: "legacy=L security=S options=O command=C v=V key=HEX iv=HEX" */
static int
client_load_header_file(const char *name)
{
    int               i, n;
    long              size;
    FILE             *f;
    char              path[4096], key[33], iv[33];
    unsigned          legacy, security, options, command, v, byte;
    vmess_request_t  *req;

    f = fopen(name, "rb");
    if (f == NULL
        || fseek(f, 0, SEEK_END) != 0
        || (size = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) != 0)
    {
        client_die("%s: %s", name, strerror(errno));
    }

    header_file.data = malloc(size ? size : 1);
    if (header_file.data == NULL
        || fread(header_file.data, 1, size, f) != (size_t) size)
    {
        client_die("%s: cannot read", name);
    }

    header_file.len = size;
    fclose(f);

    snprintf(path, sizeof(path), "%s.keys", name);

    f = fopen(path, "r");
    if (f == NULL) {
        return CLIENT_OK;
    }

    n = fscanf(f, "legacy=%u security=%u options=%x command=%u v=%x "
               "key=%32s iv=%32s", &legacy, &security, &options, &command,
               &v, key, iv);
    fclose(f);

    if (n != 7 || strlen(key) != 32 || strlen(iv) != 32) {
        client_die("%s: not a keys file", path);
    }

    req = &header_file.req;
    req->version = 1;
    req->security = (uint8_t) security;
    req->options = (uint8_t) options;
    req->command = (uint8_t) command;
    req->response_v = (uint8_t) v;

    for (i = 0; i < 16; i++) {
        if (sscanf(key + 2 * i, "%2x", &byte) != 1) {
            client_die("%s: bad key", path);
        }
        req->body_key[i] = (uint8_t) byte;

        if (sscanf(iv + 2 * i, "%2x", &byte) != 1) {
            client_die("%s: bad iv", path);
        }
        req->body_iv[i] = (uint8_t) byte;
    }

    header_file.legacy = legacy ? 1 : 0;
    header_file.have_keys = 1;

    return CLIENT_OK;
}


static int
client_save_header_file(const char *name, const uint8_t *data, size_t len,
    const vmess_request_t *req)
{
    int    i;
    FILE  *f;
    char   path[4096];

    f = fopen(name, "wb");
    if (f == NULL) {
        return -1;
    }

    if (fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        return -1;
    }

    snprintf(path, sizeof(path), "%s.keys", name);

    f = fopen(path, "w");
    if (f == NULL) {
        return -1;
    }

    fprintf(f, "legacy=%u security=%u options=%02x command=%u v=%02x key=",
            conf.legacy, req->security, req->options, req->command,
            req->response_v);

    for (i = 0; i < 16; i++) {
        fprintf(f, "%02x", req->body_key[i]);
    }

    fprintf(f, " iv=");

    for (i = 0; i < 16; i++) {
        fprintf(f, "%02x", req->body_iv[i]);
    }

    fprintf(f, "\n");

    return fclose(f) == 0 ? 0 : -1;
}


static void
client_die(const char *fmt, ...)
{
    va_list  args;

    fputs("vmess-client: ", stderr);
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputs(" (see --help)\n", stderr);

    exit(CLIENT_FAIL);
}


static void
client_random(void *buf, size_t len)
{
    if (RAND_bytes(buf, (int) len) != 1) {
        fputs("vmess-client: RAND_bytes failed\n", stderr);
        exit(CLIENT_FAIL);
    }
}


static double
client_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static void
client_put_be64(uint8_t *p, uint64_t v)
{
    int  i;

    for (i = 7; i >= 0; i--) {
        p[i] = (uint8_t) v;
        v >>= 8;
    }
}


static uint64_t
client_get_be64(const uint8_t *p)
{
    int       i;
    uint64_t  v;

    v = 0;

    for (i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }

    return v;
}


/* the payload of every mode; see the usage text */
static void
client_pattern_init(void)
{
    int              len;
    uint8_t          zero[16];
    EVP_CIPHER_CTX  *ctx;

    pattern = calloc(PATTERN_SIZE + PATTERN_TAIL, 1);
    ctx = EVP_CIPHER_CTX_new();
    memset(zero, 0, sizeof(zero));

    if (pattern == NULL || ctx == NULL
        || !EVP_EncryptInit_ex(ctx, EVP_aes_128_ctr(), NULL, zero, zero)
        || !EVP_EncryptUpdate(ctx, pattern, &len, pattern, PATTERN_SIZE))
    {
        fputs("vmess-client: cannot make the pattern\n", stderr);
        exit(CLIENT_FAIL);
    }

    EVP_CIPHER_CTX_free(ctx);
    memcpy(pattern + PATTERN_SIZE, pattern, PATTERN_TAIL);
}


/*
 * hold and the targets keep a descriptor per connection: the soft limit
 * (often 1024) goes up to the hard one, which only privilege could raise.
 * Returns the limit in force.
 */
static uint64_t
client_raise_nofile(void)
{
    struct rlimit  rl, raised;

    if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
        return 0;
    }

    raised = rl;
    raised.rlim_cur = rl.rlim_max;

    if (rl.rlim_cur < rl.rlim_max && setrlimit(RLIMIT_NOFILE, &raised) == 0)
    {
        rl = raised;
    }

    return (uint64_t) rl.rlim_cur;
}


static int
client_run(void)
{
    int              rc;
    double           start, seconds;
    unsigned         i;
    pthread_attr_t   attr;
    client_worker_t *workers;

    workers = calloc(conf.parallel, sizeof(client_worker_t));
    if (workers == NULL) {
        fputs("vmess-client: out of memory\n", stderr);
        return CLIENT_FAIL;
    }

    for (i = 0; i < conf.parallel; i++) {
        if (client_worker_init(&workers[i]) != 0) {
            fputs("vmess-client: out of memory\n", stderr);
            return CLIENT_FAIL;
        }
    }

    start = client_now();

    if (conf.parallel == 1) {
        client_thread(&workers[0]);

    } else {
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, CLIENT_THREAD_STACK);

        for (i = 0; i < conf.parallel; i++) {
            rc = pthread_create(&workers[i].thread, &attr, client_thread,
                                &workers[i]);
            if (rc != 0) {
                fprintf(stderr, "vmess-client: thread %u: %s\n", i,
                        strerror(rc));
                exit(CLIENT_FAIL);
            }
        }

        for (i = 0; i < conf.parallel; i++) {
            pthread_join(workers[i].thread, NULL);
        }

        pthread_attr_destroy(&attr);
    }

    seconds = client_now() - start;

    rc = client_report(workers, conf.parallel, seconds);

    for (i = 0; i < conf.parallel; i++) {
        client_worker_free(&workers[i]);
    }

    free(workers);

    return rc;
}


static int
client_worker_init(client_worker_t *w)
{
    w->s = &w->session;
    w->out = malloc(CLIENT_OUT_SIZE);
    w->in = malloc(CLIENT_IN_SIZE);
    w->plain = malloc(CLIENT_PLAIN_SIZE);
    w->staging = malloc(VMESS_STAGING_SIZE);
    w->scratch = malloc(VMESS_CHUNK_MAX);
    w->sha = EVP_MD_CTX_new();

    if (w->out == NULL || w->in == NULL || w->plain == NULL
        || w->staging == NULL || w->scratch == NULL || w->sha == NULL)
    {
        return -1;
    }

    if (conf.have_id) {
        if (vmess_user_init(&w->user, conf.id, conf.alter_ids, NULL)
            != VMESS_OK)
        {
            return -1;
        }

        w->user_ready = 1;
    }

    return 0;
}


static void
client_worker_free(client_worker_t *w)
{
    if (w->user_ready) {
        vmess_user_free(&w->user);
    }

    EVP_MD_CTX_free(w->sha);
    free(w->out);
    free(w->in);
    free(w->plain);
    free(w->staging);
    free(w->scratch);
}


static void *
client_thread(void *arg)
{
    client_worker_t  *w = arg;
    uint64_t          index;

    for ( ;; ) {
        pthread_mutex_lock(&shared.lock);
        index = shared.next++;
        pthread_mutex_unlock(&shared.lock);

        if (index >= conf.sessions) {
            break;
        }

        client_record(w, client_session(w, index));
    }

    return NULL;
}


static void
client_record(client_worker_t *w, int rc)
{
    client_session_t  *s = w->s;

    if (rc == CLIENT_OK) {
        w->ok++;
        w->dgrams += s->dgrams_received;
        w->bytes += (conf.mode == MODE_UPLOAD) ? s->sent : s->received;

    } else if (rc == CLIENT_REFUSED) {
        w->refused++;

    } else {
        w->failed++;
    }

    if (rc != CLIENT_OK && w->first_error[0] == '\0') {
        memcpy(w->first_error, s->error, sizeof(s->error));
    }

    if (conf.verbose) {
        fprintf(stderr, "session %" PRIu64 ": %s sent=%" PRIu64
                " received=%" PRIu64 " seconds=%.3f%s%s\n", s->index,
                rc == CLIENT_OK ? "ok" : "FAIL", s->sent, s->received,
                s->seconds, rc == CLIENT_OK ? "" : ": ",
                rc == CLIENT_OK ? "" : s->error);
        return;
    }

    if (rc == CLIENT_OK || conf.sessions == 1) {
        return;
    }

    pthread_mutex_lock(&shared.lock);

    if (shared.errors_shown < CLIENT_ERRORS_SHOWN) {
        fprintf(stderr, "session %" PRIu64 ": %s\n", s->index, s->error);

    } else if (shared.errors_shown == CLIENT_ERRORS_SHOWN) {
        fputs("(more failed sessions not shown)\n", stderr);
    }

    shared.errors_shown++;

    pthread_mutex_unlock(&shared.lock);
}


static int
client_report(client_worker_t *workers, unsigned n, double seconds)
{
    unsigned     i;
    uint64_t     ok, failed, refused, bytes, dgrams;
    const char  *error, *mode;

    ok = failed = refused = bytes = dgrams = 0;
    error = "";
    mode = conf.mode_name;

    for (i = 0; i < n; i++) {
        ok += workers[i].ok;
        failed += workers[i].failed;
        refused += workers[i].refused;
        bytes += workers[i].bytes;
        dgrams += workers[i].dgrams;

        if (error[0] == '\0') {
            error = workers[i].first_error;
        }
    }

    if (seconds <= 0) {
        seconds = 1e-9;
    }

    if (conf.mode == MODE_RAW) {
        /* stdout carries the payload: the status goes to stderr */
        if (ok == 1) {
            if (!conf.quiet) {
                fprintf(stderr, "raw ok bytes=%" PRIu64 " end=%s"
                        " seconds=%.3f%s\n", bytes,
                        workers[0].s->done ? "yes" : "no", seconds,
                        workers[0].s->codecs ? ""
                        : " (not decoded: no keys for this header)");
            }
            return CLIENT_OK;
        }

        fprintf(stderr, "raw %s: %s\n",
                refused ? "refused" : "FAIL", error);

        return refused ? CLIENT_REFUSED : CLIENT_FAIL;
    }

    if (failed + refused != 0) {
        if (conf.sessions == 1) {
            printf("%s FAIL received=%" PRIu64 "/%" PRIu64 ": %s\n", mode,
                   workers[0].s->received, workers[0].s->to_receive, error);

        } else {
            printf("%s FAIL sessions=%" PRIu64 " failed=%" PRIu64 ": %s\n",
                   mode, conf.sessions, failed + refused, error);
        }

        return CLIENT_FAIL;
    }

    if (conf.quiet) {
        return CLIENT_OK;
    }

    if (conf.mode == MODE_HANDSHAKES) {
        printf("handshakes ok sessions=%" PRIu64 " seconds=%.3f"
               " per_second=%.1f\n", ok, seconds, ok / seconds);

    } else if (conf.mode == MODE_UDP_ECHO) {
        if (conf.sessions == 1) {
            printf("%s ok datagrams=%" PRIu64 " bytes=%" PRIu64
                   " seconds=%.3f\n", mode, dgrams, bytes, seconds);
        } else {
            printf("%s ok sessions=%" PRIu64 " datagrams=%" PRIu64
                   " bytes=%" PRIu64 " seconds=%.3f\n", mode, ok, dgrams,
                   bytes, seconds);
        }

    } else if (conf.sessions == 1 && conf.mode == MODE_ECHO) {
        printf("echo ok bytes=%" PRIu64 " sha256=%s seconds=%.3f"
               " MiB/s=%.1f\n", bytes, workers[0].sha_hex, seconds,
               bytes / seconds / 1048576);

    } else if (conf.sessions == 1) {
        printf("%s ok bytes=%" PRIu64 " seconds=%.3f MiB/s=%.1f\n", mode,
               bytes, seconds, bytes / seconds / 1048576);

    } else {
        printf("%s ok sessions=%" PRIu64 " bytes=%" PRIu64 " seconds=%.3f"
               " MiB/s=%.1f\n", mode, ok, bytes, seconds,
               bytes / seconds / 1048576);
    }

    return CLIENT_OK;
}


static int
client_session(client_worker_t *w, uint64_t index)
{
    int                rc;
    double             start;
    client_session_t  *s = w->s;

    memset(s, 0, sizeof(client_session_t));
    s->fd = -1;
    s->index = index;

    start = client_now();

    rc = client_session_plan(w);

    if (rc == CLIENT_OK) {
        rc = client_session_header(w);
    }

    if (rc == CLIENT_OK) {
        rc = client_session_connect(w);
    }

    if (rc == CLIENT_OK) {
        rc = client_session_loop(w);
    }

    s->seconds = client_now() - start;

    client_session_close(w);

    return rc;
}


/* what this session sends and expects back */
static int
client_session_plan(client_worker_t *w)
{
    uint32_t           r;
    client_session_t  *s = w->s;

    client_random(&r, sizeof(r));
    s->start = r % PATTERN_SIZE;

    switch (conf.mode) {

    case MODE_ECHO:
    case MODE_HANDSHAKES:
        s->to_send = conf.bytes;
        s->to_receive = conf.bytes;
        s->hash = (conf.sessions == 1 && conf.mode == MODE_ECHO);
        break;

    case MODE_HOLD:
        s->to_send = conf.bytes;
        s->to_receive = conf.bytes;
        s->keep_open = 1;
        break;

    case MODE_UPLOAD:
        client_put_be64(s->prefix, conf.bytes);
        s->prefix_len = 8;
        s->to_send = conf.bytes;
        s->to_receive = 8;
        break;

    case MODE_DOWNLOAD:
        client_put_be64(s->prefix, conf.bytes);
        s->prefix_len = 8;
        s->to_receive = conf.bytes;
        s->start = 0;
        break;

    case MODE_UDP_ECHO:
        s->dgrams = (conf.bytes + conf.chunk - 1) / conf.chunk;
        s->to_send = conf.bytes;
        s->to_receive = conf.bytes;
        s->dgram_seen = calloc(s->dgrams / 8 + 1, 1);
        if (s->dgram_seen == NULL) {
            return client_fail(w, "out of memory");
        }
        break;

    default: /* MODE_RAW */
        if (conf.bytes_set) {
            s->to_send = conf.bytes;

        } else if (!isatty(STDIN_FILENO)) {
            s->stdin_source = 1;
        }
        break;
    }

    if (s->hash && !EVP_DigestInit_ex(w->sha, EVP_sha256(), NULL)) {
        return client_fail(w, "sha256 init failed");
    }

    if (conf.mode != MODE_RAW && s->to_receive == 0) {
        return client_complete(w);
    }

    return CLIENT_OK;
}


/* the request header into the output buffer, then the first payload */
static int
client_session_header(client_worker_t *w)
{
    int                rc;
    size_t             len;
    client_session_t  *s = w->s;
    struct pollfd      pfd;

    if (conf.plain) {
        return client_produce(w);
    }

    client_random(w->pad, sizeof(w->pad));

    if (conf.send_header != NULL) {
        if (header_file.len > CLIENT_OUT_SIZE / 2) {
            return client_fail(w, "--send-header file too large");
        }

        memcpy(w->out, header_file.data, header_file.len);
        s->out_len = header_file.len;
        s->req = header_file.req;

        if (header_file.have_keys) {
            rc = vmess_session_init(&s->keys, &s->req, header_file.legacy);
            if (rc != VMESS_OK) {
                return client_fail(w, "session keys: %s",
                                   vmess_strerror(rc));
            }
        }

    } else {
        rc = client_seal_request(w, &len);
        if (rc != CLIENT_OK) {
            return rc;
        }

        s->out_len = len;

        if (conf.replay_file != NULL && s->index == 0
            && client_save_header_file(conf.replay_file, w->out, len,
                                       &s->req) != 0)
        {
            return client_fail(w, "--replay-file %s: %s", conf.replay_file,
                               strerror(errno));
        }
    }

    if (conf.send_header == NULL || header_file.have_keys) {
        rc = client_session_codecs(w);
        if (rc != CLIENT_OK) {
            return rc;
        }
    }

    /* header and first data leave in one write, as v2ray sends them */
    if (s->stdin_source) {
        pfd.fd = STDIN_FILENO;
        pfd.events = POLLIN;

        if (poll(&pfd, 1, CLIENT_FIRST_DATA_MS) == 1) {
            rc = client_read_stdin(w);
            if (rc != CLIENT_OK) {
                return rc;
            }
        }
    }

    return client_produce(w);
}


static int
client_session_codecs(client_worker_t *w)
{
    int                rc;
    size_t             limit;
    client_session_t  *s = w->s;

    rc = vmess_body_init(&s->writer, &s->keys, VMESS_DIR_REQUEST, 0);

    if (rc == VMESS_OK) {
        rc = vmess_body_init(&s->reader, &s->keys, VMESS_DIR_RESPONSE, 0);
    }

    if (rc != VMESS_OK) {
        /* safe on a failed or a never-run init (zeroed) */
        vmess_body_free(&s->writer);
        vmess_body_free(&s->reader);

        /* raw refusal tests seal headers the codec cannot serve */
        if (conf.mode == MODE_RAW && rc != VMESS_ERR_CRYPTO) {
            if (conf.verbose) {
                fprintf(stderr, "raw: body not sealed: %s\n",
                        vmess_strerror(rc));
            }
            return CLIENT_OK;
        }

        return client_fail(w, "body codec: %s", vmess_strerror(rc));
    }

    s->codecs = 1;
    vmess_body_set_staging(&s->reader, w->staging, VMESS_STAGING_SIZE);

    s->overhead = vmess_body_overhead(&s->writer);
    limit = VMESS_CHUNK_MAX - s->overhead;

    if (conf.chunk > limit) {
        return client_fail(w, "--chunk %zu is over %zu for this security"
                           " and options", conf.chunk, limit);
    }

    return CLIENT_OK;
}


static int
client_seal_request(client_worker_t *w, size_t *len)
{
    int                rc;
    int64_t            now;
    uint8_t            rnd[16 + 16 + 1 + 1 + 15], rand4[4], nonce8[8];
    uint8_t            auth_id[16];
    client_session_t  *s = w->s;
    vmess_request_t   *req = &s->req;

    client_random(rnd, sizeof(rnd));

    memset(req, 0, sizeof(vmess_request_t));
    req->version = 1;
    memcpy(req->body_key, rnd, 16);
    memcpy(req->body_iv, rnd + 16, 16);
    req->response_v = rnd[32];
    req->padding_len = rnd[33] % 16;
    memcpy(req->padding, rnd + 34, 15);
    req->options = conf.options;
    req->security = conf.security;
    req->command = conf.command;

    if (conf.command != VMESS_CMD_MUX) {
        req->port = conf.port;
        req->addr_type = conf.addr_type;
        req->addr_len = conf.addr_len;
        memcpy(req->addr, conf.addr, conf.addr_len);
    }

    now = (int64_t) time(NULL) + conf.time_offset;

    if (conf.legacy) {
        rc = client_legacy_id(w, auth_id);
        if (rc != CLIENT_OK) {
            return rc;
        }

        rc = vmess_legacy_header_seal(&w->user, auth_id, now, req, w->out,
                                      CLIENT_OUT_SIZE, len);

    } else {
        client_random(rand4, sizeof(rand4));
        client_random(nonce8, sizeof(nonce8));

        rc = vmess_aead_header_seal(&w->user, now, rand4, nonce8, req,
                                    w->out, CLIENT_OUT_SIZE, len);
    }

    if (rc != VMESS_OK) {
        return client_fail(w, "seal header: %s", vmess_strerror(rc));
    }

    rc = vmess_session_init(&s->keys, req, conf.legacy);
    if (rc != VMESS_OK) {
        return client_fail(w, "session keys: %s", vmess_strerror(rc));
    }

    return CLIENT_OK;
}


/* the id the legacy auth HMAC is keyed with: the primary one or, like
 * v2ray, a random one of the alter ids */
static int
client_legacy_id(client_worker_t *w, uint8_t id[16])
{
    uint8_t    next[16];
    uint16_t   pick, i;

    memcpy(id, conf.id, 16);

    if (conf.alter_ids != 0) {
        client_random(&pick, sizeof(pick));
        pick %= conf.alter_ids;

        for (i = 0; i <= pick; i++) {
            if (vmess_alter_id_next(id, next) != VMESS_OK) {
                return client_fail(w, "alter id failed");
            }
            memcpy(id, next, 16);
        }
    }

    return CLIENT_OK;
}


static int
client_session_connect(client_worker_t *w)
{
    int                fd, one, err;
    socklen_t          len;
    struct pollfd      pfd;
    client_session_t  *s = w->s;

    fd = socket(conf.server.ss_family, SOCK_STREAM, 0);
    if (fd == -1) {
        return client_fail(w, "socket: %s", strerror(errno));
    }

    s->fd = fd;

    one = 1;
    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1) {
        return client_fail(w, "fcntl: %s", strerror(errno));
    }

    if (connect(fd, (struct sockaddr *) &conf.server, conf.server_len) == 0) {
        return CLIENT_OK;
    }

    if (errno != EINPROGRESS) {
        return client_fail(w, "connect: %s", strerror(errno));
    }

    if (conf.mode == MODE_HOLD) {
        /* its poll loop waits: send fails with EAGAIN until connected */
        return CLIENT_OK;
    }

    pfd.fd = fd;
    pfd.events = POLLOUT;

    if (poll(&pfd, 1, conf.timeout_ms) != 1) {
        return client_fail(w, "connect: timed out");
    }

    len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1) {
        err = errno;
    }

    if (err != 0) {
        return client_fail(w, "connect: %s", strerror(err));
    }

    return CLIENT_OK;
}


/* poll only when neither direction moved */
static int
client_session_loop(client_worker_t *w)
{
    int                rc, progress, stdin_open;
    nfds_t             nfds;
    struct pollfd      pfd[2];
    client_session_t  *s = w->s;

    for ( ;; ) {
        rc = client_session_io(w, &progress);
        if (rc != CLIENT_AGAIN) {
            return rc;
        }

        stdin_open = s->stdin_source && !s->input_eof
                     && CLIENT_OUT_SIZE - s->out_len
                        >= conf.chunk + s->overhead;

        if (progress && !stdin_open) {
            continue;
        }

        pfd[0].fd = s->fd;
        pfd[0].events = POLLIN;
        pfd[0].revents = 0;

        if (s->out_pos < s->out_len) {
            pfd[0].events |= POLLOUT;
        }

        nfds = 1;

        if (stdin_open) {
            pfd[1].fd = STDIN_FILENO;
            pfd[1].events = POLLIN;
            pfd[1].revents = 0;
            nfds = 2;
        }

        rc = poll(pfd, nfds, progress ? 0 : conf.timeout_ms);

        if (rc == -1 && errno != EINTR) {
            return client_fail(w, "poll: %s", strerror(errno));
        }

        if (rc == 0 && !progress) {
            return client_timeout(w);
        }

        if (nfds == 2 && pfd[1].revents != 0) {
            rc = client_read_stdin(w);
            if (rc != CLIENT_OK) {
                return rc;
            }
        }
    }
}


/*
 * One pass without waiting: send and receive at once, so a large echo
 * cannot deadlock on full socket buffers.  CLIENT_AGAIN while the session
 * (or a hold round) goes on; *progress tells whether a byte moved.
 */
static int
client_session_io(client_worker_t *w, int *progress)
{
    int                rc;
    ssize_t            n;
    client_session_t  *s = w->s;

    *progress = 0;

    rc = client_produce(w);
    if (rc != CLIENT_OK) {
        return rc;
    }

    if (s->out_pos < s->out_len) {
        n = send(s->fd, w->out + s->out_pos, s->out_len - s->out_pos,
                 MSG_NOSIGNAL);

        if (n > 0) {
            s->out_pos += n;
            *progress = 1;

        } else if (errno != EAGAIN && errno != EWOULDBLOCK
                   && errno != EINTR)
        {
            return client_closed(w, errno);
        }
    }

    n = recv(s->fd, w->in + s->in_len, CLIENT_IN_SIZE - s->in_len, 0);

    if (n > 0) {
        s->in_len += n;
        *progress = 1;

        rc = client_input(w);
        if (rc != CLIENT_OK) {
            return rc;
        }

    } else if (n == 0) {
        return client_closed(w, 0);

    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        return client_closed(w, errno);
    }

    if (s->done
        || (s->complete && (s->end_sent || s->keep_open)
            && s->out_pos == s->out_len))
    {
        return CLIENT_OK;
    }

    return CLIENT_AGAIN;
}


static void
client_session_close(client_worker_t *w)
{
    client_session_t  *s = w->s;

    if (s->fd != -1) {
        close(s->fd);
    }

    if (s->codecs) {
        vmess_body_free(&s->writer);
        vmess_body_free(&s->reader);
    }

    free(s->dgram_seen);
    OPENSSL_cleanse(&s->req, sizeof(vmess_request_t));
    OPENSSL_cleanse(&s->keys, sizeof(vmess_session_t));
}


/* seal as much payload as the output buffer takes */
static int
client_produce(client_worker_t *w)
{
    int                rc;
    size_t             len, room;
    uint64_t           j;
    client_session_t  *s = w->s;

    if (s->out_pos == s->out_len) {
        s->out_pos = 0;
        s->out_len = 0;

    } else if (s->out_pos >= CLIENT_OUT_SIZE / 2) {
        memmove(w->out, w->out + s->out_pos, s->out_len - s->out_pos);
        s->out_len -= s->out_pos;
        s->out_pos = 0;
    }

    room = conf.chunk + s->overhead;

    while (!s->end_sent && CLIENT_OUT_SIZE - s->out_len >= room) {

        if (s->prefix_len != 0) {
            rc = client_seal(w, s->prefix, s->prefix_len);
            s->prefix_len = 0;

        } else if (conf.mode == MODE_UDP_ECHO) {
            if (s->dgrams_received == s->dgrams) {
                return client_seal_end(w);
            }

            j = s->dgrams_sent;

            if (j == s->dgrams
                || j - s->dgrams_received >= CLIENT_UDP_WINDOW)
            {
                return CLIENT_OK;
            }

            len = client_datagram_len(s, j);
            w->scratch[0] = (uint8_t) (j >> 24);
            w->scratch[1] = (uint8_t) (j >> 16);
            w->scratch[2] = (uint8_t) (j >> 8);
            w->scratch[3] = (uint8_t) j;
            memcpy(w->scratch + 4, pattern + client_datagram_offset(s, j),
                   len - 4);

            rc = client_seal(w, w->scratch, len);
            s->dgrams_sent++;

        } else if (s->sent < s->to_send) {
            len = conf.chunk;
            if (s->to_send - s->sent < len) {
                len = (size_t) (s->to_send - s->sent);
            }

            rc = client_seal(w, pattern + (s->start + s->sent) % PATTERN_SIZE,
                             len);
            s->sent += len;

        } else if (s->stdin_source && !s->input_eof) {
            return CLIENT_OK;

        } else if (s->keep_open) {
            /* hold: the session goes on after this round */
            return CLIENT_OK;

        } else {
            return client_seal_end(w);
        }

        if (rc != CLIENT_OK) {
            return rc;
        }
    }

    return CLIENT_OK;
}


static int
client_seal(client_worker_t *w, const uint8_t *data, size_t len)
{
    int                rc;
    size_t             written;
    client_session_t  *s = w->s;

    if (!s->codecs) {
        memcpy(w->out + s->out_len, data, len);
        s->out_len += len;
        return CLIENT_OK;
    }

    rc = vmess_body_seal(&s->writer, data, len, w->pad, w->out + s->out_len,
                         CLIENT_OUT_SIZE - s->out_len, &written);
    if (rc != VMESS_OK) {
        return client_fail(w, "seal chunk: %s", vmess_strerror(rc));
    }

    s->out_len += written;

    return CLIENT_OK;
}


static int
client_seal_end(client_worker_t *w)
{
    int                rc;
    size_t             written;
    client_session_t  *s = w->s;

    s->end_sent = 1;

    if (!s->codecs) {
        return CLIENT_OK;
    }

    rc = vmess_body_seal_end(&s->writer, w->pad, w->out + s->out_len,
                             CLIENT_OUT_SIZE - s->out_len, &written);
    if (rc != VMESS_OK) {
        return client_fail(w, "seal end marker: %s", vmess_strerror(rc));
    }

    s->out_len += written;

    return CLIENT_OK;
}


/* raw: one read is one chunk (one datagram with --udp) */
static int
client_read_stdin(client_worker_t *w)
{
    ssize_t            n;
    client_session_t  *s = w->s;

    n = read(STDIN_FILENO, w->scratch, conf.chunk);

    if (n > 0) {
        s->sent += n;
        return client_seal(w, w->scratch, n);
    }

    if (n == -1 && (errno == EINTR || errno == EAGAIN)) {
        return CLIENT_OK;
    }

    s->input_eof = 1;

    return CLIENT_OK;
}


/* opens what came: the response header, then chunks */
static int
client_input(client_worker_t *w)
{
    int                     rc, found;
    size_t                  left, consumed, produced;
    uint8_t                *p;
    client_session_t       *s = w->s;
    vmess_switch_account_t  cmd;

    p = w->in;
    left = s->in_len;

    if (conf.plain) {
        /* in pieces the pattern's tail covers */
        s->response_header = 1;
        s->in_len = 0;

        while (left > 0) {
            consumed = left < PATTERN_TAIL ? left : PATTERN_TAIL;

            rc = client_output(w, p, consumed);
            if (rc != CLIENT_OK) {
                return rc;
            }

            p += consumed;
            left -= consumed;
        }

        return CLIENT_OK;
    }

    if (!s->codecs) {
        /* no keys: nothing to decode, only count */
        s->received += left;
        s->in_len = 0;
        s->response_header = 1;
        return CLIENT_OK;
    }

    while (left > 0 && !s->done) {

        if (!s->response_header) {
            consumed = 0;
            found = 0;

            rc = vmess_response_header_open(&s->reader, s->req.response_v,
                                            p, left, &consumed, &cmd, &found);
            if (rc == VMESS_AGAIN) {
                break;
            }

            if (rc != VMESS_OK) {
                return client_fail(w, "response header: %s",
                                   vmess_strerror(rc));
            }

            s->response_header = 1;
            p += consumed;
            left -= consumed;

            if (found && conf.verbose) {
                fprintf(stderr, "session %" PRIu64 ": switch-account"
                        " command: port %u, %u alter ids, %u minutes\n",
                        s->index, cmd.port, cmd.alter_ids,
                        cmd.valid_minutes);
            }

            continue;
        }

        consumed = 0;
        produced = 0;

        rc = vmess_body_open(&s->reader, p, left, &consumed, w->plain,
                             CLIENT_PLAIN_SIZE, &produced);

        p += consumed;
        left -= consumed;

        if (rc < 0 || rc == VMESS_NEED_STAGING) {
            /* staging was given at init: the core never asks again */
            return client_fail(w, "response body: %s", vmess_strerror(rc));
        }

        if (produced != 0) {
            rc = client_output(w, w->plain, produced);
            if (rc != CLIENT_OK) {
                return rc;
            }
        }

        if (s->reader.eof) {
            if (conf.mode == MODE_RAW) {
                s->done = 1;
                break;
            }

            if (!s->complete) {
                return client_fail(w, "end marker after %" PRIu64 " of %"
                                   PRIu64 " bytes", s->received,
                                   s->to_receive);
            }

            break;
        }

        if (rc == VMESS_AGAIN || (consumed == 0 && produced == 0)) {
            break;
        }
    }

    /* only a partial response header is ever left over */
    memmove(w->in, p, left);
    s->in_len = left;

    if (s->in_len == CLIENT_IN_SIZE) {
        return client_fail(w, "receive buffer full");
    }

    return CLIENT_OK;
}


/* the plaintext of one chunk */
static int
client_output(client_worker_t *w, const uint8_t *data, size_t len)
{
    size_t             off;
    ssize_t            n;
    client_session_t  *s = w->s;

    if (conf.mode == MODE_UDP_ECHO) {
        return client_output_datagram(w, data, len);
    }

    if (conf.mode == MODE_RAW) {
        s->received += len;

        while (len > 0) {
            n = write(STDOUT_FILENO, data, len);
            if (n == -1 && errno != EINTR) {
                return client_fail(w, "stdout: %s", strerror(errno));
            }

            if (n > 0) {
                data += n;
                len -= n;
            }
        }

        return CLIENT_OK;
    }

    if (conf.mode == MODE_UPLOAD) {
        if (s->ack_len + len > sizeof(s->ack)) {
            return client_fail(w, "sink sent more than its count");
        }

        memcpy(s->ack + s->ack_len, data, len);
        s->ack_len += len;
        s->received = s->ack_len;

        if (s->ack_len == sizeof(s->ack)) {
            if (client_get_be64(s->ack) != s->to_send) {
                return client_fail(w, "sink counted %" PRIu64 " bytes, sent"
                                   " %" PRIu64, client_get_be64(s->ack),
                                   s->to_send);
            }

            s->complete = 1;
        }

        return CLIENT_OK;
    }

    /* echo, handshakes, download: the pattern, byte for byte */

    if (len > s->to_receive - s->received) {
        return client_fail(w, "%" PRIu64 " bytes came back, expected %"
                           PRIu64, s->received + len, s->to_receive);
    }

    off = (size_t) ((s->start + s->received) % PATTERN_SIZE);

    if (!conf.unchecked && memcmp(data, pattern + off, len) != 0) {
        /* the first differing byte, for the message */
        off = 0;
        while (data[off]
               == pattern[(s->start + s->received + off) % PATTERN_SIZE])
        {
            off++;
        }

        return client_fail(w, "data mismatch at byte %" PRIu64,
                           s->received + off);
    }

    if (s->hash && !EVP_DigestUpdate(w->sha, data, len)) {
        return client_fail(w, "sha256 failed");
    }

    s->received += len;

    return (s->received == s->to_receive) ? client_complete(w) : CLIENT_OK;
}


static int
client_complete(client_worker_t *w)
{
    unsigned           i, md_len;
    uint8_t            md[EVP_MAX_MD_SIZE];
    client_session_t  *s = w->s;

    s->complete = 1;

    if (!s->hash) {
        return CLIENT_OK;
    }

    if (!EVP_DigestFinal_ex(w->sha, md, &md_len)) {
        return client_fail(w, "sha256 failed");
    }

    for (i = 0; i < md_len && i < 32; i++) {
        snprintf(w->sha_hex + 2 * i, 3, "%02x", md[i]);
    }

    return CLIENT_OK;
}


/* BE32 index, then the pattern from an offset of its own */
static int
client_output_datagram(client_worker_t *w, const uint8_t *data, size_t len)
{
    uint64_t           j;
    client_session_t  *s = w->s;

    if (len < 4) {
        return client_fail(w, "a %zu-byte datagram came back", len);
    }

    j = ((uint64_t) data[0] << 24) | ((uint64_t) data[1] << 16)
        | ((uint64_t) data[2] << 8) | data[3];

    if (j >= s->dgrams_sent || len != client_datagram_len(s, j)
        || memcmp(data + 4, pattern + client_datagram_offset(s, j), len - 4)
           != 0)
    {
        return client_fail(w, "datagram of %zu bytes (index %" PRIu64 ")"
                           " is not one that was sent", len, j);
    }

    if (s->dgram_seen[j / 8] & (1 << (j % 8))) {
        return client_fail(w, "datagram %" PRIu64 " came back twice", j);
    }

    s->dgram_seen[j / 8] |= (uint8_t) (1 << (j % 8));
    s->dgrams_received++;
    s->received += len;

    if (s->dgrams_received == s->dgrams) {
        s->complete = 1;
    }

    return CLIENT_OK;
}


static size_t
client_datagram_len(client_session_t *s, uint64_t j)
{
    uint64_t  left;

    left = s->to_send - j * conf.chunk;

    return left < conf.chunk ? (size_t) left : conf.chunk;
}


static uint64_t
client_datagram_offset(client_session_t *s, uint64_t j)
{
    return (s->start + j * conf.chunk) % PATTERN_SIZE;
}


/* the server closed (err 0) or reset the connection */
static int
client_closed(client_worker_t *w, int err)
{
    client_session_t  *s = w->s;

    if (s->complete) {
        return CLIENT_OK;
    }

    if (!s->response_header) {
        client_fail(w, "no response header: %s",
                    err ? strerror(err) : "connection closed");
        return CLIENT_REFUSED;
    }

    if (conf.mode == MODE_RAW) {
        if (err != 0 && conf.verbose) {
            fprintf(stderr, "raw: %s\n", strerror(err));
        }

        return CLIENT_OK;
    }

    return client_fail(w, "connection %s after %" PRIu64 " of %" PRIu64
                       " bytes", err ? strerror(err) : "closed",
                       s->received, s->to_receive);
}


static int
client_timeout(client_worker_t *w)
{
    client_session_t  *s = w->s;

    if (!s->response_header) {
        client_fail(w, "no response header within %d s",
                    conf.timeout_ms / 1000);
        return CLIENT_REFUSED;
    }

    if (conf.mode == MODE_RAW) {
        return CLIENT_OK;
    }

    return client_fail(w, "timeout: nothing for %d s, %" PRIu64 " of %"
                       PRIu64 " bytes came", conf.timeout_ms / 1000,
                       s->received, s->to_receive);
}


static int
client_fail(client_worker_t *w, const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    vsnprintf(w->s->error, sizeof(w->s->error), fmt, args);
    va_end(args);

    return CLIENT_FAIL;
}


/*
 * hold: every session runs a first round (connect, header, echo) with at
 * most conf.in_flight of them in a slot (the buffers a moving session
 * needs) at a time, stays open with no slot while all the others get
 * there, and after the hold runs a second round (more echo, the end
 * marker) the same way.  Only the moving sessions are polled.
 */
static int
client_hold(void)
{
    double            start, end;
    uint64_t          limit;
    unsigned          k;
    client_hold_t     h;
    struct timespec   nap;
    struct sigaction  sa;

    limit = client_raise_nofile();

    if (limit < conf.sessions + CLIENT_FDS_SPARE) {
        printf("hold FAIL held=0 sessions=%" PRIu64 ": %" PRIu64
               " sessions need more descriptors than the limit (%" PRIu64
               ")\n", conf.sessions, conf.sessions, limit);
        return CLIENT_FAIL;
    }

    memset(&sa, 0, sizeof(struct sigaction));
    sa.sa_handler = client_hold_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);

    memset(&h, 0, sizeof(client_hold_t));
    h.sessions = calloc(conf.sessions, sizeof(client_session_t));
    h.slots = calloc(conf.in_flight, sizeof(client_worker_t));
    h.pfds = calloc(conf.in_flight, sizeof(struct pollfd));

    if (h.sessions == NULL || h.slots == NULL || h.pfds == NULL) {
        fputs("vmess-client: out of memory\n", stderr);
        return CLIENT_FAIL;
    }

    for (k = 0; k < conf.in_flight; k++) {
        if (client_worker_init(&h.slots[k]) != 0) {
            fputs("vmess-client: out of memory\n", stderr);
            return CLIENT_FAIL;
        }

        h.slots[k].s = NULL;
    }

    start = client_now();

    client_hold_round(&h, 1);

    if (h.held == 0) {
        printf("hold FAIL held=0 sessions=%" PRIu64 ": no session was"
               " answered\n", conf.sessions);
        return CLIENT_FAIL;
    }

    printf("hold held=%" PRIu64 " sessions=%" PRIu64 " unanswered=%" PRIu64
           " refused=%" PRIu64 " seconds=%.3f\n", h.held, conf.sessions,
           h.unanswered, h.refused, client_now() - start);
    fflush(stdout);

    end = client_now() + conf.hold_ms / 1000.0;
    nap.tv_sec = 0;
    nap.tv_nsec = 20 * 1000 * 1000;

    while (!client_hold_wake && client_now() < end) {
        (void) nanosleep(&nap, NULL);
    }

    client_hold_round(&h, 0);

    if (!conf.quiet) {
        printf("hold ok sessions=%" PRIu64 " bytes=%" PRIu64 " seconds=%.3f\n",
               h.closed, h.bytes, client_now() - start);
    }

    for (k = 0; k < conf.in_flight; k++) {
        client_worker_free(&h.slots[k]);
    }

    free(h.sessions);
    free(h.slots);
    free(h.pfds);

    return CLIENT_OK;
}


/* returns when every session of the round has finished it */
static void
client_hold_round(client_hold_t *h, int first)
{
    int                rc;
    double             now;
    uint64_t           next;
    unsigned           k, moving;
    client_worker_t   *w;
    client_session_t  *s;

    next = 0;

    for ( ;; ) {
        now = client_now();
        moving = 0;

        for (k = 0; k < conf.in_flight; k++) {
            w = &h->slots[k];

            while (w->s == NULL && next < conf.sessions) {
                s = &h->sessions[next++];

                /* given up in the first round */
                if (!first && s->fd == -1) {
                    continue;
                }

                w->s = s;
                client_hold_start(h, w, first, now);
            }

            if (w->s == NULL) {
                h->pfds[k].fd = -1;
                continue;
            }

            moving++;
            h->pfds[k].fd = w->s->fd;
            h->pfds[k].events = POLLIN;
            h->pfds[k].revents = 0;

            if (w->s->out_pos < w->s->out_len) {
                h->pfds[k].events |= POLLOUT;
            }
        }

        if (moving == 0) {
            return;
        }

        rc = poll(h->pfds, conf.in_flight, CLIENT_HOLD_POLL_MS);

        if (rc == -1 && errno != EINTR) {
            printf("hold FAIL held=%" PRIu64 " sessions=%" PRIu64 ": poll:"
                   " %s\n", h->held, conf.sessions, strerror(errno));
            exit(CLIENT_FAIL);
        }

        now = client_now();

        for (k = 0; k < conf.in_flight; k++) {
            w = &h->slots[k];
            s = w->s;

            if (s == NULL) {
                continue;
            }

            if (rc > 0 && h->pfds[k].revents != 0) {
                client_hold_io(h, w, first, now);

                if (w->s == NULL) {
                    continue;
                }
            }

            if (first && conf.answer_ms != 0
                && (now - s->started) * 1000 > conf.answer_ms)
            {
                h->unanswered++;
                client_session_close(w);
                s->fd = -1;
                w->s = NULL;

            } else if ((now - s->progressed) * 1000 > conf.timeout_ms) {
                client_hold_end(h, w, client_timeout(w), first);
            }
        }
    }
}


static void
client_hold_start(client_hold_t *h, client_worker_t *w, int first,
    double now)
{
    int                rc;
    client_session_t  *s = w->s;

    if (first) {
        memset(s, 0, sizeof(client_session_t));
        s->fd = -1;
        s->index = (uint64_t) (s - h->sessions);

        rc = client_session_plan(w);

        if (rc == CLIENT_OK) {
            rc = client_session_header(w);
        }

        if (rc == CLIENT_OK) {
            rc = client_session_connect(w);
        }

        if (rc != CLIENT_OK) {
            client_hold_end(h, w, rc, first);
            return;
        }

    } else {
        /*
         * The slot may differ from the first round's: nothing is staged
         * between rounds (checked when the first one ended).
         */
        if (s->codecs) {
            vmess_body_set_staging(&s->reader, w->staging,
                                   VMESS_STAGING_SIZE);
        }

        s->keep_open = 0;
        s->complete = 0;
        s->to_send += conf.bytes;
        s->to_receive += conf.bytes;
    }

    s->started = now;
    s->progressed = now;

    client_hold_io(h, w, first, now);
}


/* moves bytes until the socket has none and takes none */
static void
client_hold_io(client_hold_t *h, client_worker_t *w, int first, double now)
{
    int  rc, progress;

    do {
        rc = client_session_io(w, &progress);

        if (progress) {
            w->s->progressed = now;
        }

    } while (rc == CLIENT_AGAIN && progress);

    if (rc != CLIENT_AGAIN) {
        client_hold_end(h, w, rc, first);
    }
}


/* a session finished its round: it leaves its slot */
static void
client_hold_end(client_hold_t *h, client_worker_t *w, int rc, int first)
{
    client_session_t  *s = w->s;

    if (rc == CLIENT_OK && first
        && (s->in_len != 0 || s->reader.staged != 0))
    {
        rc = client_fail(w, "bytes after the echo");
    }

    if (rc == CLIENT_OK && first) {
        h->held++;
        w->s = NULL;
        return;
    }

    if (rc == CLIENT_OK) {
        h->closed++;
        h->bytes += s->received;

    } else if (rc == CLIENT_REFUSED && first && conf.answer_ms != 0) {
        h->refused++;

    } else {
        client_hold_die(h, s);
    }

    client_session_close(w);
    s->fd = -1;
    w->s = NULL;
}


static void
client_hold_die(client_hold_t *h, client_session_t *s)
{
    printf("hold FAIL held=%" PRIu64 " sessions=%" PRIu64 ": session %"
           PRIu64 ": %s\n", h->held, conf.sessions, s->index, s->error);
    exit(CLIENT_FAIL);
}


static void
client_hold_signal(int signo)
{
    (void) signo;

    client_hold_wake = 1;
}


static int
serve_main(void)
{
    int               fd;
    uint16_t          port;
    struct sigaction  sa;

    memset(&sa, 0, sizeof(struct sigaction));
    sa.sa_handler = serve_sigterm;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);

    fd = serve_listen(conf.mode == MODE_SERVE_UDP_ECHO ? SOCK_DGRAM
                                                       : SOCK_STREAM,
                      &port);
    if (fd == -1) {
        return CLIENT_FAIL;
    }

    printf("listening %u\n", port);
    fflush(stdout);

    if (conf.mode == MODE_SERVE_UDP_ECHO) {
        return serve_udp(fd);
    }

    return serve_tcp(fd);
}


static int
serve_listen(int type, uint16_t *port)
{
    int                      fd, rc, one;
    char                     host[256];
    const char              *port_text;
    socklen_t                len;
    struct addrinfo          hints, *res;
    struct sockaddr_storage  sa;

    if (strchr(conf.listen, ':') == NULL) {
        strcpy(host, "127.0.0.1");
        port_text = conf.listen;

    } else if (client_split_host_port(conf.listen, host, sizeof(host),
                                      &port_text) != 0)
    {
        fprintf(stderr, "vmess-client: bad address \"%s\"\n", conf.listen);
        return -1;
    }

    memset(&hints, 0, sizeof(struct addrinfo));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = type;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;

    rc = getaddrinfo(host, port_text, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "vmess-client: %s: %s\n", conf.listen,
                gai_strerror(rc));
        return -1;
    }

    fd = socket(res->ai_family, type, 0);
    one = 1;

    if (fd == -1
        || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1
        || bind(fd, res->ai_addr, res->ai_addrlen) == -1
        || (type == SOCK_STREAM && listen(fd, 4096) == -1))
    {
        fprintf(stderr, "vmess-client: %s: %s\n", conf.listen,
                strerror(errno));
        freeaddrinfo(res);
        return -1;
    }

    freeaddrinfo(res);

    len = sizeof(sa);
    if (getsockname(fd, (struct sockaddr *) &sa, &len) == -1) {
        fprintf(stderr, "vmess-client: getsockname: %s\n", strerror(errno));
        return -1;
    }

    *port = ntohs(sa.ss_family == AF_INET6
                  ? ((struct sockaddr_in6 *) &sa)->sin6_port
                  : ((struct sockaddr_in *) &sa)->sin_port);

    return fd;
}


static int
serve_tcp(int lfd)
{
    int             rc;
    size_t          i, n, cap, pfds_cap;
    uint8_t        *scratch;
    serve_conn_t   *conns;
    struct pollfd  *pfds;

    n = 0;
    cap = 0;
    pfds_cap = 0;
    conns = NULL;
    pfds = NULL;
    scratch = malloc(SERVE_IO_SIZE);

    if (scratch == NULL
        || fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK) == -1)
    {
        fprintf(stderr, "vmess-client: serve: %s\n", strerror(errno));
        return CLIENT_FAIL;
    }

    for ( ;; ) {
        /* one for the listener and one per connection slot */
        if (pfds_cap != cap + 1) {
            pfds_cap = cap + 1;
            pfds = realloc(pfds, pfds_cap * sizeof(struct pollfd));
            if (pfds == NULL) {
                fputs("vmess-client: serve: out of memory\n", stderr);
                return CLIENT_FAIL;
            }
        }

        pfds[0].fd = lfd;
        pfds[0].events = POLLIN;
        pfds[0].revents = 0;

        for (i = 0; i < n; i++) {
            pfds[i + 1].fd = conns[i].fd;
            pfds[i + 1].events = serve_events(&conns[i]);
            pfds[i + 1].revents = 0;
        }

        rc = poll(pfds, n + 1, -1);

        if (rc == -1) {
            if (errno == EINTR) {
                continue;
            }

            fprintf(stderr, "vmess-client: poll: %s\n", strerror(errno));
            return CLIENT_FAIL;
        }

        /* a closed connection is replaced by the last one, in both lists */
        for (i = 0; i < n; /* void */) {
            if (pfds[i + 1].revents != 0
                && serve_io(&conns[i], pfds[i + 1].revents, scratch) != 0)
            {
                close(conns[i].fd);
                free(conns[i].buf);
                n--;
                conns[i] = conns[n];
                pfds[i + 1] = pfds[n + 1];
                continue;
            }

            i++;
        }

        if (pfds[0].revents & POLLIN) {
            serve_accept(lfd, &conns, &n, &cap);
        }
    }
}


static int
serve_accept(int lfd, serve_conn_t **conns, size_t *n, size_t *cap)
{
    int            fd, one;
    serve_conn_t  *c;

    for ( ;; ) {
        fd = accept(lfd, NULL, NULL);

        if (fd == -1) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR
                && errno != ECONNABORTED)
            {
                fprintf(stderr, "vmess-client: accept: %s\n",
                        strerror(errno));
            }
            return 0;
        }

        if (*n == *cap) {
            c = realloc(*conns, (*cap * 2 + 64) * sizeof(serve_conn_t));
            if (c == NULL) {
                close(fd);
                return -1;
            }

            *conns = c;
            *cap = *cap * 2 + 64;
        }

        c = &(*conns)[*n];
        memset(c, 0, sizeof(serve_conn_t));
        c->fd = fd;

        one = 1;
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1) {
            close(fd);
            continue;
        }

        if (conf.mode == MODE_SERVE_ECHO) {
            c->buf = malloc(SERVE_BUF_SIZE);
            if (c->buf == NULL) {
                close(fd);
                continue;
            }
        }

        (*n)++;
    }
}


static short
serve_events(serve_conn_t *c)
{
    short  events;

    events = 0;

    switch (conf.mode) {

    case MODE_SERVE_ECHO:
        if (!c->eof && c->tail < SERVE_BUF_SIZE) {
            events |= POLLIN;
        }
        if (c->head < c->tail) {
            events |= POLLOUT;
        }
        break;

    case MODE_SERVE_SINK:
        events = POLLIN;
        if (c->state == SERVE_ACK) {
            events |= POLLOUT;
        }
        break;

    default: /* MODE_SERVE_SOURCE */
        if (!c->eof) {
            events |= POLLIN;
        }
        if (c->state == SERVE_BODY) {
            events |= POLLOUT;
        }
        break;
    }

    return events;
}


/* returns -1 when the connection is to be closed */
static int
serve_io(serve_conn_t *c, short revents, uint8_t *scratch)
{
    switch (conf.mode) {

    case MODE_SERVE_ECHO:
        return serve_echo_io(c, revents);

    case MODE_SERVE_SINK:
        return serve_sink_io(c, revents, scratch);

    default: /* MODE_SERVE_SOURCE */
        return serve_source_io(c, revents, scratch);
    }
}


static int
serve_echo_io(serve_conn_t *c, short revents)
{
    ssize_t  n;

    if ((revents & (POLLIN | POLLHUP | POLLERR))
        && !c->eof && c->tail < SERVE_BUF_SIZE)
    {
        n = recv(c->fd, c->buf + c->tail, SERVE_BUF_SIZE - c->tail, 0);

        if (n > 0) {
            c->tail += n;

        } else if (n == 0) {
            c->eof = 1;

        } else if (errno != EAGAIN && errno != EWOULDBLOCK
                   && errno != EINTR)
        {
            return -1;
        }
    }

    if (c->head < c->tail) {
        n = send(c->fd, c->buf + c->head, c->tail - c->head, MSG_NOSIGNAL);

        if (n > 0) {
            c->head += n;

        } else if (errno != EAGAIN && errno != EWOULDBLOCK
                   && errno != EINTR)
        {
            return -1;
        }
    }

    if (c->head == c->tail) {
        c->head = 0;
        c->tail = 0;

    } else if (c->head >= SERVE_BUF_SIZE / 2) {
        memmove(c->buf, c->buf + c->head, c->tail - c->head);
        c->tail -= c->head;
        c->head = 0;
    }

    /* the peer has sent everything and got it all back */
    return (c->eof && c->tail == 0) ? -1 : 0;
}


static int
serve_sink_io(serve_conn_t *c, short revents, uint8_t *scratch)
{
    size_t    used;
    ssize_t   n;
    uint64_t  take;

    if (revents & (POLLIN | POLLHUP | POLLERR)) {
        n = recv(c->fd, scratch, SERVE_IO_SIZE, 0);

        if (n == 0) {
            return -1;
        }

        if (n < 0) {
            return (errno == EAGAIN || errno == EWOULDBLOCK
                    || errno == EINTR) ? 0 : -1;
        }

        used = (c->state == SERVE_PREFIX) ? serve_prefix(c, scratch, n) : 0;

        if (c->state == SERVE_BODY) {
            take = c->count - c->done;
            if (take > (uint64_t) (n - used)) {
                take = n - used;
            }

            c->done += take;

            if (c->done == c->count) {
                c->state = SERVE_ACK;
            }
        }
    }

    if (c->state == SERVE_ACK) {
        /* the ack is the prefix itself: the count that arrived */
        n = send(c->fd, c->prefix + c->head, 8 - c->head, MSG_NOSIGNAL);

        if (n > 0) {
            c->head += n;

            if (c->head == 8) {
                c->state = SERVE_FINISHED;
            }

        } else if (errno != EAGAIN && errno != EWOULDBLOCK
                   && errno != EINTR)
        {
            return -1;
        }
    }

    return 0;
}


static int
serve_source_io(serve_conn_t *c, short revents, uint8_t *scratch)
{
    size_t    off, len;
    ssize_t   n;

    if ((revents & (POLLIN | POLLHUP | POLLERR)) && !c->eof) {
        n = recv(c->fd, scratch, SERVE_IO_SIZE, 0);

        if (n == 0) {
            c->eof = 1;

            if (c->state != SERVE_BODY) {
                return -1;
            }

        } else if (n > 0) {
            if (c->state == SERVE_PREFIX) {
                (void) serve_prefix(c, scratch, n);
            }

        } else if (errno != EAGAIN && errno != EWOULDBLOCK
                   && errno != EINTR)
        {
            return -1;
        }
    }

    if (c->state == SERVE_BODY && c->done < c->count) {
        off = (size_t) (c->done % PATTERN_SIZE);
        len = PATTERN_SIZE + PATTERN_TAIL - off;

        if (len > SERVE_IO_SIZE) {
            len = SERVE_IO_SIZE;
        }

        if (len > c->count - c->done) {
            len = (size_t) (c->count - c->done);
        }

        n = send(c->fd, pattern + off, len, MSG_NOSIGNAL);

        if (n > 0) {
            c->done += n;

        } else if (errno != EAGAIN && errno != EWOULDBLOCK
                   && errno != EINTR)
        {
            return -1;
        }
    }

    if (c->state == SERVE_BODY && c->done == c->count) {
        /* read on until the peer closes: a close now could reset it */
        shutdown(c->fd, SHUT_WR);
        c->state = SERVE_FINISHED;
    }

    return (c->state == SERVE_FINISHED && c->eof) ? -1 : 0;
}


/* gathers the 8-byte count; returns the bytes it took */
static size_t
serve_prefix(serve_conn_t *c, const uint8_t *p, size_t n)
{
    size_t  take;

    take = sizeof(c->prefix) - c->prefix_len;
    if (take > n) {
        take = n;
    }

    memcpy(c->prefix + c->prefix_len, p, take);
    c->prefix_len += take;

    if (c->prefix_len == sizeof(c->prefix)) {
        c->count = client_get_be64(c->prefix);
        c->state = SERVE_BODY;
    }

    return take;
}


static int
serve_udp(int fd)
{
    int                      size;
    ssize_t                  n;
    uint8_t                 *buf;
    socklen_t                len;
    struct sockaddr_storage  peer;

    /*
     * One socket serves every session: a default-sized receive buffer
     * overflows with a few sessions' datagrams in flight (the kernel caps
     * the request at net.core.rmem_max).
     */
    size = SERVE_UDP_BUFFER;
    (void) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    (void) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));

    buf = malloc(65536);
    if (buf == NULL) {
        return CLIENT_FAIL;
    }

    for ( ;; ) {
        len = sizeof(peer);
        n = recvfrom(fd, buf, 65536, 0, (struct sockaddr *) &peer, &len);

        if (n >= 0) {
            (void) sendto(fd, buf, n, 0, (struct sockaddr *) &peer, len);
        }
    }
}


static void
serve_sigterm(int signo)
{
    (void) signo;

    _exit(CLIENT_OK);
}
