/*
 * vmess-client: the command line, its usage text and the header files of
 * --replay-file and --send-header.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netdb.h>

#include "client.h"


typedef struct {
    const char                 *name;
    client_mode_e               mode;
} client_mode_name_t;


typedef struct {
    const char                 *name;
    uint8_t                     security;
    uint8_t                     options;
} client_security_t;


/* the command line as typed, before it is checked */
typedef struct {
    const char                 *server;
    const char                 *target;
    const char                 *uuid;
    const char                 *security;
    const char                 *opt;
    unsigned                    extra;         /* option bits added */
    int                         udp;
    int                         hold_opts;     /* any of hold's own */
    const char                 *probe;         /* --probe as typed */
} client_args_t;


static int client_parse_flag(const char *arg, client_args_t *a);
static void client_parse_value(const char *arg, const char *val,
    client_args_t *a);
static void client_check_modes(client_args_t *a);
static void client_set_defaults(client_args_t *a);
static int client_parse_user(client_args_t *a);
static int client_parse_mode(const char *name, int udp);
static int client_parse_security(const char *name, int *options);
static int client_parse_size(const char *s, uint64_t max, uint64_t *out);
static int client_parse_port(const char *s, uint16_t *port);
static int client_parse_server(const char *s);
static int client_parse_target(const char *s);
static int client_load_header_file(const char *name);


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
"  probe       -r connections (-c at a time, one thread each) that a\n"
"              VMess server must refuse: each connects, sends its probe\n"
"              (--probe) and closes at once, reading nothing:\n"
"              probe ok connections=R bytes=TOTAL seconds=S"
" per_second=X\n"
"              cpu=C (C: this process's own user + system seconds)\n"
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
"                    else sent as it is (and the answer only counted);\n"
"                    probe: F's bytes are the probe (a replay)\n"
"  --probe KIND      probe: random (default: -n random bytes, default\n"
"                    64) or header (a fresh AEAD header of -u to -t,\n"
"                    for a user the server does not have)\n"
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
"  --httpupgrade P   HTTPUpgrade transport: the HTTP/1.1 upgrade request\n"
"                    for path P first (as sing-box sends it), then VMess\n"
"                    once the 101 came (not with hold)\n"
"  --host NAME       --httpupgrade: the Host header (default: -s)\n"
"  --upgrade-key     --httpupgrade: also Sec-WebSocket-Key and -Version,\n"
"                    as Xray sends them; the 101's accept is checked\n"
"  --early           --httpupgrade: the VMess header goes with the\n"
"                    request, before the 101 (Xray's \"ed\")\n"
"  --stall S         download: send the request, then read nothing for S\n"
"                    seconds and end the session as ok (a client that\n"
"                    never reads)\n"
"  --small-buffers   64 KiB socket buffers (SO_RCVBUF, SO_SNDBUF): many\n"
"                    stalled sessions on the server's machine then leave\n"
"                    the kernel's TCP memory to the server\n"
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
    { "probe", MODE_PROBE },
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


client_conf_t          conf;
client_header_file_t   header_file;


int
client_parse_args(int argc, char **argv)
{
    int            i;
    const char    *arg;
    client_args_t  a;

    memset(&conf, 0, sizeof(client_conf_t));

    a.server = "127.0.0.1:10086";
    a.target = NULL;
    a.uuid = NULL;
    a.security = "aes-128-gcm";
    a.opt = NULL;
    a.extra = 0;
    a.udp = 0;
    a.hold_opts = 0;
    a.probe = NULL;
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

        if (client_parse_flag(arg, &a) == 0) {
            continue;
        }

        /* everything else takes a value */

        if (i + 1 >= argc) {
            client_die("option %s needs a value", arg);
        }

        client_parse_value(arg, argv[++i], &a);
    }

    if (conf.mode_name == NULL) {
        fputs(client_usage_text, stderr);
        return CLIENT_FAIL;
    }

    if (client_parse_mode(conf.mode_name, a.udp) != 0) {
        client_die("unknown mode \"%s\"", conf.mode_name);
    }

    if (conf.mode >= MODE_SERVE_ECHO) {
        if (conf.listen == NULL) {
            conf.listen = "127.0.0.1:0";
        }
        return CLIENT_OK;
    }

    client_check_modes(&a);
    client_set_defaults(&a);

    return client_parse_user(&a);
}


/* an option without a value: 0, else -1 */
static int
client_parse_flag(const char *arg, client_args_t *a)
{
    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
        fputs(client_usage_text, stdout);
        exit(CLIENT_OK);
    }

    if (strcmp(arg, "--padding") == 0) {
        a->extra |= VMESS_OPT_GLOBAL_PADDING | VMESS_OPT_CHUNK_MASKING;
        return 0;
    }

    if (strcmp(arg, "--auth-length") == 0) {
        a->extra |= VMESS_OPT_AUTH_LENGTH;
        return 0;
    }

    if (strcmp(arg, "--legacy") == 0) {
        conf.legacy = 1;
        return 0;
    }

    if (strcmp(arg, "--udp") == 0) {
        a->udp = 1;
        return 0;
    }

    if (strcmp(arg, "--plain") == 0) {
        conf.plain = 1;
        return 0;
    }

    if (strcmp(arg, "--unchecked") == 0) {
        conf.unchecked = 1;
        return 0;
    }

    if (strcmp(arg, "--upgrade-key") == 0) {
        conf.upgrade_key = 1;
        return 0;
    }

    if (strcmp(arg, "--early") == 0) {
        conf.early = 1;
        return 0;
    }

    if (strcmp(arg, "--small-buffers") == 0) {
        conf.small_buffers = 1;
        return 0;
    }

    if (strcmp(arg, "-q") == 0) {
        conf.quiet = 1;
        return 0;
    }

    if (strcmp(arg, "-v") == 0) {
        conf.verbose = 1;
        return 0;
    }

    return -1;
}


static void
client_parse_value(const char *arg, const char *val, client_args_t *a)
{
    char      *end;
    uint64_t   v;

    if (strcmp(arg, "-s") == 0) {
        a->server = val;

    } else if (strcmp(arg, "-u") == 0) {
        a->uuid = val;

    } else if (strcmp(arg, "-t") == 0) {
        a->target = val;

    } else if (strcmp(arg, "-S") == 0) {
        a->security = val;

    } else if (strcmp(arg, "-o") == 0) {
        a->opt = val;

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
        a->hold_opts = 1;

    } else if (strcmp(arg, "--hold") == 0) {
        if (client_parse_size(val, 86400, &v) != 0) {
            client_die("bad hold time \"%s\"", val);
        }
        conf.hold_ms = (int) v * 1000;
        a->hold_opts = 1;

    } else if (strcmp(arg, "--answer") == 0) {
        if (client_parse_size(val, 86400, &v) != 0 || v == 0) {
            client_die("bad answer time \"%s\"", val);
        }
        conf.answer_ms = (int) v * 1000;
        a->hold_opts = 1;

    } else if (strcmp(arg, "--stall") == 0) {
        if (client_parse_size(val, 86400, &v) != 0 || v == 0) {
            client_die("bad stall time \"%s\"", val);
        }
        conf.stall_ms = (int) v * 1000;

    } else if (strcmp(arg, "--probe") == 0) {
        if (strcmp(val, "header") == 0) {
            conf.probe_header = 1;

        } else if (strcmp(val, "random") != 0) {
            client_die("unknown probe \"%s\"", val);
        }
        a->probe = val;

    } else if (strcmp(arg, "--replay-file") == 0) {
        conf.replay_file = val;

    } else if (strcmp(arg, "--send-header") == 0) {
        conf.send_header = val;

    } else if (strcmp(arg, "--httpupgrade") == 0) {
        if (val[0] != '/') {
            client_die("bad httpupgrade path \"%s\"", val);
        }
        conf.httpupgrade = val;

    } else if (strcmp(arg, "--host") == 0) {
        conf.http_host = val;

    } else {
        client_die("unknown option %s", arg);
    }
}


/* the options that work with some modes only */
static void
client_check_modes(client_args_t *a)
{
    if (conf.listen != NULL) {
        client_die("unexpected argument \"%s\"", conf.listen);
    }

    if (a->hold_opts && conf.mode != MODE_HOLD) {
        client_die("--in-flight, --hold and --answer work with hold only");
    }

    if (conf.plain && conf.mode != MODE_HOLD && conf.mode != MODE_ECHO
        && conf.mode != MODE_UPLOAD && conf.mode != MODE_DOWNLOAD)
    {
        client_die("--plain works with echo, upload, download and hold");
    }

    if (conf.httpupgrade == NULL
        && (conf.http_host != NULL || conf.upgrade_key || conf.early))
    {
        client_die("--host, --upgrade-key and --early need --httpupgrade");
    }

    if (conf.httpupgrade != NULL && conf.mode == MODE_HOLD) {
        client_die("--httpupgrade does not work with hold");
    }

    if (conf.http_host == NULL) {
        conf.http_host = a->server;
    }

    if (conf.unchecked && conf.mode != MODE_DOWNLOAD) {
        client_die("--unchecked works with download only");
    }

    if (conf.stall_ms && conf.mode != MODE_DOWNLOAD) {
        client_die("--stall works with download only");
    }

    if (a->probe != NULL
        && (conf.mode != MODE_PROBE || conf.send_header != NULL))
    {
        client_die("--probe works with probe, without --send-header");
    }

    if (conf.mode == MODE_HOLD && conf.sessions != 0) {
        client_die("hold: -c is the number of sessions (no -r)");
    }

    if (a->udp) {
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
}


/* security and options, sizes and counts: given, else the mode's own */
static void
client_set_defaults(client_args_t *a)
{
    int        options;
    char      *end;
    uint64_t   v;

    conf.security = (uint8_t) client_parse_security(a->security, &options);

    if (a->opt != NULL) {
        errno = 0;
        v = strtoul(a->opt, &end, 16);
        if (errno != 0 || end == a->opt || *end != '\0' || v > 0xff) {
            client_die("bad option byte \"%s\"", a->opt);
        }
        options = (int) v;
    }

    conf.options = (uint8_t) (options | a->extra);

    if (conf.chunk == 0) {
        conf.chunk = (conf.command == VMESS_CMD_UDP) ? 1024 : 16384;
    }

    if (!conf.bytes_set) {
        conf.bytes = (conf.mode == MODE_HANDSHAKES
                      || conf.mode == MODE_HOLD
                      || conf.mode == MODE_PROBE) ? 64
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

    if (conf.mode == MODE_PROBE
        && (conf.bytes == 0 || conf.bytes > CLIENT_OUT_SIZE))
    {
        client_die("probe sends 1 to %d random bytes", CLIENT_OUT_SIZE);
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
}


/* the header file, or the user and the target, then the server */
static int
client_parse_user(client_args_t *a)
{
    if (conf.send_header != NULL) {
        if (conf.mode != MODE_RAW && conf.mode != MODE_PROBE) {
            client_die("--send-header works with raw and probe only");
        }
        client_load_header_file(conf.send_header);
        return client_parse_server(a->server);
    }

    if (conf.plain || (conf.mode == MODE_PROBE && !conf.probe_header)) {
        return client_parse_server(a->server);
    }

    if (a->uuid == NULL) {
        client_die("-u uuid is required");
    }

    if (vmess_uuid_parse(a->uuid, strlen(a->uuid), conf.id) != VMESS_OK) {
        client_die("bad uuid \"%s\"", a->uuid);
    }

    conf.have_id = 1;

    if (conf.command != VMESS_CMD_MUX) {
        if (a->target == NULL) {
            client_die("-t host:port is required");
        }

        if (client_parse_target(a->target) != 0) {
            client_die("bad target \"%s\"", a->target);
        }
    }

    if (conf.alter_ids != 0 && !conf.legacy) {
        client_die("--alter-id needs --legacy (AEAD headers use the"
                   " primary id only)");
    }

    return client_parse_server(a->server);
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
int
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


int
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
