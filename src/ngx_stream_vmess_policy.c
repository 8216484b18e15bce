/*
 * ngx_stream_vmess_module: destinations ("vmess_allow", "vmess_deny",
 * "vmess_allow_private").
 *
 * The policy is checked on the address actually connected to: a name is
 * looked up with the stream resolver first (never by proxy_pass), and it
 * is refused when any of its addresses is, so that neither the order of
 * the answers nor a later lookup can pick a refused one.  The rules are
 * tried in order, the first match decides; without a match the private
 * ranges are refused unless "vmess_allow_private on".  An IPv6 address
 * that carries an IPv4 one (mapped, compatible, NAT64) is matched as
 * both.  Used for the target of the header (ngx_stream_vmess_preread.c),
 * the UDP command, every Mux.Cool sub-session and the relay's
 * proxy_vmess_target.
 */

#include "ngx_stream_vmess_module.h"


typedef struct {
    ngx_cidr_t                      cidr;
    ngx_uint_t                      deny;
} ngx_stream_vmess_rule_t;


static ngx_int_t ngx_stream_vmess_add_rule(ngx_conf_t *cf,
    ngx_stream_vmess_srv_conf_t *vscf, ngx_str_t *text, ngx_uint_t deny);
static ngx_uint_t ngx_stream_vmess_embedded_addr4(struct sockaddr *sa,
    in_addr_t *a);
static ngx_uint_t ngx_stream_vmess_rule_match(ngx_stream_vmess_rule_t *rule,
    struct sockaddr *sa, struct sockaddr *sa4);
static ngx_uint_t ngx_stream_vmess_private_addr(struct sockaddr *sa);
static ngx_uint_t ngx_stream_vmess_private_addr4(in_addr_t addr);


/* "vmess_allow" and "vmess_deny": address, CIDR or "all" */

char *
ngx_stream_vmess_policy_rule(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_vmess_srv_conf_t *vscf = conf;

    ngx_str_t   *value, all;
    ngx_uint_t   deny;

    value = cf->args->elts;
    deny = (value[0].data[6] == 'd');

    if (vscf->rules == NULL) {
        vscf->rules = ngx_array_create(cf->pool, 4,
                                       sizeof(ngx_stream_vmess_rule_t));
        if (vscf->rules == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (value[1].len == 3 && ngx_strcmp(value[1].data, "all") == 0) {
        ngx_str_set(&all, "0.0.0.0/0");

        if (ngx_stream_vmess_add_rule(cf, vscf, &all, deny) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

#if (NGX_HAVE_INET6)
        ngx_str_set(&all, "::/0");

        if (ngx_stream_vmess_add_rule(cf, vscf, &all, deny) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
#endif

        return NGX_CONF_OK;
    }

    if (ngx_stream_vmess_add_rule(cf, vscf, &value[1], deny) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_stream_vmess_add_rule(ngx_conf_t *cf, ngx_stream_vmess_srv_conf_t *vscf,
    ngx_str_t *text, ngx_uint_t deny)
{
    ngx_int_t                 rc;
    ngx_stream_vmess_rule_t  *rule;

    rule = ngx_array_push(vscf->rules);
    if (rule == NULL) {
        return NGX_ERROR;
    }

    rule->deny = deny;

    rc = ngx_ptocidr(text, &rule->cidr);

    if (rc == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid address or network \"%V\"", text);
        return NGX_ERROR;
    }

    if (rc == NGX_DONE) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "low address bits of %V are meaningless", text);
    }

    return NGX_OK;
}


/* 1 when the policy of vscf refuses the address of sa (its port aside) */

ngx_uint_t
ngx_stream_vmess_denied_addr(ngx_stream_vmess_srv_conf_t *vscf,
    struct sockaddr *sa)
{
    in_addr_t                 a;
    ngx_uint_t                i;
    struct sockaddr          *sa4;
    struct sockaddr_in        sin;
    ngx_stream_vmess_rule_t  *rule;

    sa4 = NULL;

    if (ngx_stream_vmess_embedded_addr4(sa, &a)) {
        ngx_memzero(&sin, sizeof(struct sockaddr_in));
        sin.sin_family = AF_INET;
        sin.sin_addr.s_addr = htonl(a);
        sa4 = (struct sockaddr *) &sin;
    }

    if (vscf->rules) {
        rule = vscf->rules->elts;

        for (i = 0; i < vscf->rules->nelts; i++) {
            if (ngx_stream_vmess_rule_match(&rule[i], sa, sa4)) {
                return rule[i].deny;
            }
        }
    }

    return !vscf->allow_private && ngx_stream_vmess_private_addr(sa);
}


/* ngx_cidr_match() on one rule, for the address and its IPv4 form */

static ngx_uint_t
ngx_stream_vmess_rule_match(ngx_stream_vmess_rule_t *rule,
    struct sockaddr *sa, struct sockaddr *sa4)
{
    ngx_array_t  one;

    one.elts = &rule->cidr;
    one.nelts = 1;
    one.size = sizeof(ngx_cidr_t);

    return ngx_cidr_match(sa, &one) == NGX_OK
           || (sa4 && ngx_cidr_match(sa4, &one) == NGX_OK);
}


/*
 * ::/96 (::, ::1 and IPv4-compatible), ::ffff:0:0/96 (IPv4-mapped) and
 * 64:ff9b::/96 (NAT64) carry an IPv4 address: 1 and *a (host order)
 */

static ngx_uint_t
ngx_stream_vmess_embedded_addr4(struct sockaddr *sa, in_addr_t *a)
{
#if (NGX_HAVE_INET6)
    u_char               *p;
    struct sockaddr_in6  *sin6;

    if (sa->sa_family != AF_INET6) {
        return 0;
    }

    sin6 = (struct sockaddr_in6 *) sa;
    p = sin6->sin6_addr.s6_addr;

    if ((ngx_memcmp(p, "\0\0\0\0\0\0\0\0\0\0", 10) == 0
         && ((p[10] == 0 && p[11] == 0)
             || (p[10] == 0xff && p[11] == 0xff)))
        || ngx_memcmp(p, "\x00\x64\xff\x9b\0\0\0\0\0\0\0\0", 12) == 0)
    {
        *a = ((in_addr_t) p[12] << 24) | ((in_addr_t) p[13] << 16)
             | ((in_addr_t) p[14] << 8) | p[15];
        return 1;
    }
#endif

    return 0;
}


/*
 * 1 for loopback, private, shared, link-local, multicast, reserved and
 * unspecified addresses, also when an IPv6 address carries one of IPv4
 */

static ngx_uint_t
ngx_stream_vmess_private_addr(struct sockaddr *sa)
{
    in_addr_t             a;
#if (NGX_HAVE_INET6)
    u_char               *p;
    struct sockaddr_in6  *sin6;
#endif

    if (ngx_stream_vmess_embedded_addr4(sa, &a)) {
        return ngx_stream_vmess_private_addr4(a);
    }

    switch (sa->sa_family) {

    case AF_INET:
        a = ntohl(((struct sockaddr_in *) sa)->sin_addr.s_addr);
        return ngx_stream_vmess_private_addr4(a);

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) sa;
        p = sin6->sin6_addr.s6_addr;

        return (p[0] & 0xfe) == 0xfc                    /* fc00::/7 */
               || (p[0] == 0xfe && (p[1] & 0xc0) == 0x80) /* fe80::/10 */
               || (p[0] == 0xfe && (p[1] & 0xc0) == 0xc0) /* fec0::/10 */
               || p[0] == 0xff;                           /* ff00::/8 */
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
 * The address of a request header or a New frame: NGX_OK with sockaddr
 * and socklen (port 0) for an IPv4 or IPv6 address, or a name that is an
 * address literal; NGX_DECLINED for a name to look up; NGX_ERROR for an
 * address type that is neither.
 */

ngx_int_t
ngx_stream_vmess_literal_addr(ngx_pool_t *pool, ngx_uint_t type,
    const u_char *addr, ngx_str_t *host, ngx_sockaddr_t *sockaddr,
    socklen_t *socklen)
{
    ngx_addr_t  a;

    ngx_memzero(sockaddr, sizeof(ngx_sockaddr_t));

    switch (type) {

    case VMESS_ADDR_IPV4:
        sockaddr->sockaddr_in.sin_family = AF_INET;
        ngx_memcpy(&sockaddr->sockaddr_in.sin_addr, addr, 4);
        *socklen = sizeof(struct sockaddr_in);
        return NGX_OK;

#if (NGX_HAVE_INET6)
    case VMESS_ADDR_IPV6:
        sockaddr->sockaddr_in6.sin6_family = AF_INET6;
        ngx_memcpy(&sockaddr->sockaddr_in6.sin6_addr, addr, 16);
        *socklen = sizeof(struct sockaddr_in6);
        return NGX_OK;
#endif

    case VMESS_ADDR_DOMAIN:

        if (ngx_parse_addr(pool, &a, host->data, host->len) != NGX_OK) {
            return NGX_DECLINED;
        }

        ngx_memcpy(sockaddr, a.sockaddr, a.socklen);
        *socklen = a.socklen;
        return NGX_OK;

    default:
        return NGX_ERROR;
    }
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


/* of a successful lookup: the first address the policy refuses (so that
 * ngx_stream_vmess_destination() refuses the name), else the first one */

void
ngx_stream_vmess_resolved_addr(ngx_resolver_ctx_t *rctx,
    ngx_stream_vmess_srv_conf_t *vscf, ngx_sockaddr_t *sockaddr,
    socklen_t *socklen)
{
    ngx_uint_t  i, pick;

    pick = 0;

    for (i = 0; i < rctx->naddrs; i++) {
        if (ngx_stream_vmess_denied_addr(vscf, rctx->addrs[i].sockaddr)) {
            pick = i;
            break;
        }
    }

    ngx_memcpy(sockaddr, rctx->addrs[pick].sockaddr,
               rctx->addrs[pick].socklen);
    *socklen = rctx->addrs[pick].socklen;
}


/*
 * The port set (unless 0), the address as text in name (unless it has
 * one), and the policy applied: NGX_DECLINED (logged) for a destination
 * the policy refuses, or for port 0.
 */

ngx_int_t
ngx_stream_vmess_destination(ngx_log_t *log, ngx_pool_t *pool,
    ngx_sockaddr_t *sockaddr, socklen_t socklen, in_port_t port,
    ngx_stream_vmess_srv_conf_t *vscf, ngx_str_t *name)
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

    if (ngx_inet_get_port(&sockaddr->sockaddr) == 0
        || ngx_stream_vmess_denied_addr(vscf, &sockaddr->sockaddr))
    {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "vmess: destination %V denied", name);
        return NGX_DECLINED;
    }

    return NGX_OK;
}
