/*
 * ngx_stream_vmess_module: destinations ("vmess_allow_private").
 *
 * The policy is checked on the address actually connected to: a name is
 * looked up with the stream resolver first (never by proxy_pass), and of
 * its addresses the first the policy allows is taken.  Used for the
 * target of the header (ngx_stream_vmess_preread.c), the UDP command and
 * every Mux.Cool sub-session.
 */

#include "ngx_stream_vmess_module.h"


static ngx_uint_t ngx_stream_vmess_private_addr4(in_addr_t addr);


/*
 * 1 for loopback, private, shared, link-local, multicast, reserved and
 * unspecified addresses, also when an IPv6 address carries one of IPv4
 */

ngx_uint_t
ngx_stream_vmess_private_addr(struct sockaddr *sa)
{
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    u_char               *p;
    in_addr_t             a;
    struct sockaddr_in6  *sin6;
#endif

    switch (sa->sa_family) {

    case AF_INET:
        sin = (struct sockaddr_in *) sa;
        return ngx_stream_vmess_private_addr4(ntohl(sin->sin_addr.s_addr));

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) sa;
        p = sin6->sin6_addr.s6_addr;

        /*
         * ::/96 (::, ::1 and IPv4-compatible), ::ffff:0:0/96 (IPv4-mapped)
         * and 64:ff9b::/96 (NAT64) carry an IPv4 address
         */

        if ((ngx_memcmp(p, "\0\0\0\0\0\0\0\0\0\0", 10) == 0
             && ((p[10] == 0 && p[11] == 0)
                 || (p[10] == 0xff && p[11] == 0xff)))
            || ngx_memcmp(p, "\x00\x64\xff\x9b\0\0\0\0\0\0\0\0", 12) == 0)
        {
            a = ((in_addr_t) p[12] << 24) | ((in_addr_t) p[13] << 16)
                | ((in_addr_t) p[14] << 8) | p[15];

            return ngx_stream_vmess_private_addr4(a);
        }

        if ((p[0] & 0xfe) == 0xfc                      /* fc00::/7 */
            || (p[0] == 0xfe && (p[1] & 0xc0) == 0x80)  /* fe80::/10 */
            || (p[0] == 0xfe && (p[1] & 0xc0) == 0xc0)  /* fec0::/10 */
            || p[0] == 0xff)                            /* ff00::/8 */
        {
            return 1;
        }

        return 0;
#endif

    default:
        return 1;
    }
}


static ngx_uint_t
ngx_stream_vmess_private_addr4(in_addr_t a)
{
    return (a & 0xff000000) == 0x00000000       /* 0.0.0.0/8 */
           || (a & 0xff000000) == 0x0a000000    /* 10.0.0.0/8 */
           || (a & 0xffc00000) == 0x64400000    /* 100.64.0.0/10 */
           || (a & 0xff000000) == 0x7f000000    /* 127.0.0.0/8 */
           || (a & 0xffff0000) == 0xa9fe0000    /* 169.254.0.0/16 */
           || (a & 0xfff00000) == 0xac100000    /* 172.16.0.0/12 */
           || (a & 0xffff0000) == 0xc0a80000    /* 192.168.0.0/16 */
           || (a & 0xf0000000) == 0xe0000000    /* 224.0.0.0/4 */
           || (a & 0xf0000000) == 0xf0000000;   /* 240.0.0.0/4 */
}


/*
 * A lookup of name, answered to handler(data): the resolver context to
 * pass to ngx_resolve_name(), NGX_NO_RESOLVER, or NULL on error.  The
 * resolver lowercases the name in place: it gets a copy.
 */

ngx_resolver_ctx_t *
ngx_stream_vmess_resolve_start(ngx_stream_session_t *s, ngx_pool_t *pool,
    ngx_str_t *name, ngx_resolver_handler_pt handler, void *data)
{
    ngx_resolver_ctx_t          *rctx, temp;
    ngx_stream_core_srv_conf_t  *cscf;

    cscf = ngx_stream_get_module_srv_conf(s, ngx_stream_core_module);

    temp.name = *name;

    rctx = ngx_resolve_start(cscf->resolver, &temp);

    if (rctx == NULL || rctx == NGX_NO_RESOLVER) {
        return rctx;
    }

    rctx->name.data = ngx_pnalloc(pool, name->len);
    if (rctx->name.data == NULL) {
        ngx_resolve_name_done(rctx);
        return NULL;
    }

    ngx_memcpy(rctx->name.data, name->data, name->len);
    rctx->name.len = name->len;

    rctx->handler = handler;
    rctx->data = data;
    rctx->timeout = cscf->resolver_timeout;

    return rctx;
}


/* of a successful lookup: the first address the policy allows, else the
 * first one (refused by ngx_stream_vmess_destination()) */

void
ngx_stream_vmess_resolved_addr(ngx_resolver_ctx_t *rctx,
    ngx_flag_t allow_private, ngx_sockaddr_t *sockaddr, socklen_t *socklen)
{
    ngx_uint_t  i, pick;

    pick = 0;

    if (!allow_private) {
        for (i = 0; i < rctx->naddrs; i++) {
            if (!ngx_stream_vmess_private_addr(rctx->addrs[i].sockaddr)) {
                pick = i;
                break;
            }
        }
    }

    ngx_memcpy(sockaddr, rctx->addrs[pick].sockaddr,
               rctx->addrs[pick].socklen);
    *socklen = rctx->addrs[pick].socklen;
}


/*
 * The port set (unless 0), the address as text in name (unless it has
 * one), and the policy applied: NGX_DECLINED (logged) for a destination
 * the policy refuses.
 */

ngx_int_t
ngx_stream_vmess_destination(ngx_log_t *log, ngx_pool_t *pool,
    ngx_sockaddr_t *sockaddr, socklen_t socklen, in_port_t port,
    ngx_flag_t allow_private, ngx_str_t *name)
{
    u_char  *p;

    if (port) {
        ngx_inet_set_port(&sockaddr->sockaddr, port);
    }

    if (name->len == 0) {
        p = ngx_pnalloc(pool, NGX_STREAM_VMESS_ADDR_STRLEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        name->len = ngx_sock_ntop(&sockaddr->sockaddr, socklen, p,
                                  NGX_STREAM_VMESS_ADDR_STRLEN, 1);
        name->data = p;
    }

    if (!allow_private && ngx_stream_vmess_private_addr(&sockaddr->sockaddr))
    {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "vmess: destination %V denied", name);
        return NGX_DECLINED;
    }

    return NGX_OK;
}
