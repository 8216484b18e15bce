#!/usr/bin/perl
# One TLS port for a web site and VMess (issue #8, shape "raw TLS"; issue
# #18: raw VMess and WebSocket on the same port):
# stream "listen ssl" + vmess + vmess_websocket + vmess_fallback to the
# site's http server.  curl gets the site's exact index as the first
# request after start; real v2ray 4.34 clients, one with "network": "tcp"
# and one with "ws", both with security "tls", move 16 MiB each way
# (sha256 compared) through the same port; one with "http" (HTTP/2) gets
# nothing, as README says.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA qw/sha256_hex/;
use Time::HiRes qw/sleep/;
use VMessTest qw/random_uuid read_file write_file/;

my $t = VMessTest->new();
my $dir = $t->dir();
my $alice = random_uuid();

VMessTest::make_cert($dir, 'www.example.test');

mkdir "$dir/html";
my $page = "<html><body>site " . random_uuid() . "</body></html>\n";
write_file("$dir/html/index.html", $page);

$t->write_conf(<<'EOF' =~ s/ALICE/$alice/r);
%%GLOBALS%%
events { worker_connections 1024; }
http {
    access_log off;
    server {
        listen 127.0.0.1:%%PORT_site%%;
        root %%TESTDIR%%/html;
    }
}
stream {
    vmess_zone vmess:1m;
    log_format vmess '$vmess_status $vmess_user $vmess_target';
    server {
        listen 127.0.0.1:%%PORT_tls%% ssl;
        ssl_certificate %%TESTDIR%%/server.crt;
        ssl_certificate_key %%TESTDIR%%/server.key;
        vmess on;
        vmess_user ALICE alice;
        vmess_allow_private on;
        vmess_websocket /ray;
        vmess_fallback 127.0.0.1:%%PORT_site%%;
        proxy_pass $vmess_target;
        access_log %%TESTDIR%%/access.log vmess;
    }
}
EOF
$t->run();

my $tls = $t->port('tls');

# the first connection after start
my $got = `curl -sS --max-time 10 --cacert $dir/ca.crt --resolve www.example.test:$tls:127.0.0.1 https://www.example.test:$tls/index.html 2>&1`;
is(sha256_hex($got), sha256_hex($page),
   'curl gets the site over the TLS port, first request after start')
    or diag($got);

my $echo = $t->target('echo');
my $tls_settings = '"security": "tls", "tlsSettings":'
    . ' {"serverName": "www.example.test", "allowInsecure": true}';

my $port = $t->v2ray_client(
    server => $tls, uuid => $alice, security => 'aes-128-gcm',
    target_host => '127.0.0.1', target_port => $echo,
    stream_settings => qq/{"network": "tcp", $tls_settings}/);
is($t->plain_echo($port, 16 * 1024 * 1024), 1,
   'v2ray raw VMess over TLS: 16 MiB each way');

my $ws = $t->v2ray_client(
    name => 'v2ray-ws', server => $tls, uuid => $alice,
    security => 'chacha20-poly1305', target_host => '127.0.0.1',
    target_port => $echo,
    stream_settings => qq/{"network": "ws", $tls_settings,/
        . ' "wsSettings": {"path": "/ray"}}');
is($t->plain_echo($ws, 16 * 1024 * 1024), 1,
   'v2ray WebSocket over TLS, same port: 16 MiB each way');

# HTTP/2 (v2ray "network": "http") is not supported: the client wants
# ALPN h2, which nginx does not select here, and sends nothing
my $h2 = $t->v2ray_client(
    name => 'v2ray-h2', server => $tls, uuid => $alice,
    security => 'aes-128-gcm', target_host => '127.0.0.1',
    target_port => $echo,
    stream_settings => qq/{"network": "http", $tls_settings,/
        . ' "httpSettings": {"path": "/ray"}}');
like($t->plain_echo($h2, 1024, 5), qr/^sent 1024 bytes, got 0 back/,
     'v2ray HTTP/2 transport: nothing comes back');
my $alpn = 0;
for (1 .. 200) {
    last if $alpn = read_file("$dir/v2ray-h2.log")
                    =~ /http2: unexpected ALPN protocol/;
    sleep 0.1;
}
ok($alpn, 'v2ray HTTP/2 transport: the client gave up on ALPN')
    or diag(read_file("$dir/v2ray-h2.log"));
# v2ray keeps those TLS connections open: closed with it
$t->kill_daemons();
ok($t->wait_log(qr/vmess: incomplete header, 0 bytes received/),
   'v2ray HTTP/2 transport: nginx got no byte after TLS');

$t->stop();
my $log = read_file("$dir/access.log");
my $oks = () = $log =~ /^ok alice 127\.0\.0\.1:$echo$/mg;
is($oks, 2, 'both VMess sessions logged') or diag($log);
like($log, qr/^unknown_user - 127\.0\.0\.1:\d+$/m, 'browser fell back to the site')
    or diag($log);
like($t->error_log(), qr/\[info\] .*vmess: unknown user, fallback to 127\.0\.0\.1:\d+/,
     'fallback logged');

$t->finish();
done_testing();
