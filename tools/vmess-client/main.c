/*
 * vmess-client: a VMess client, load generator and set of test targets,
 * built on the protocol core in src/vmess.
 *
 * Client modes run sessions against a VMess server with plain sockets and
 * poll(2), one session at a time per thread (-c threads); hold runs many
 * sessions at once in one thread, a few of them moving at a time.  The
 * serve-* modes are small poll(2) targets for the test suite and
 * benchmarks.  The usage text in options.c is the reference for the
 * command line, the output lines and the upload/download sub-protocol.
 *
 * One role per file: options.c (command line), util.c (helpers),
 * run.c (threads and the result line), session.c (one VMess session),
 * udp.c, raw.c and check.c (what the modes send and expect), hold.c
 * (many idle sessions), probe.c (connections to be refused), serve.c
 * with serve_echo.c and serve_count.c (the targets).  client.h holds
 * what they share.
 *
 * POSIX 2008 only (MSG_NOSIGNAL, TCP_NODELAY, clock_gettime included).
 */

#include <signal.h>

#include "client.h"


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
