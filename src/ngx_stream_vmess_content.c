/*
 * ngx_stream_vmess_module: the content phase of "vmess on" servers.
 *
 * nginx's proxy opens one upstream of the client's socket type, so the
 * UDP command (a UDP target behind a TCP client connection) and Mux.Cool
 * (many TCP and UDP sub-sessions in one connection) are relayed by the
 * module itself (NGINX-STREAM-NOTES.md §4.3): this handler is put in
 * front of the server's own at postconfiguration, and plain TCP sessions
 * (and everything that is not an authenticated session) go on to it.
 */

#include "ngx_stream_vmess_module.h"


void
ngx_stream_vmess_content_handler(ngx_stream_session_t *s)
{
    ngx_stream_vmess_ctx_t       *ctx;
    ngx_stream_vmess_srv_conf_t  *vscf;

    vscf = ngx_stream_get_module_srv_conf(s, ngx_stream_vmess_module);
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_vmess_module);

    if (ctx == NULL || ctx->state != NGX_STREAM_VMESS_ACTIVE
        || ctx->command == VMESS_CMD_TCP)
    {
        vscf->content_handler(s);
        return;
    }

    if (ctx->command == VMESS_CMD_UDP) {
        ngx_stream_vmess_udp_start(s, ctx, vscf);
        return;
    }

    ngx_stream_vmess_mux_start(s, ctx, vscf);
}
