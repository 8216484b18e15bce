#!/usr/bin/perl
# One TLS port for a web site and VMess (issue #8, shape "raw TLS"; issue
# #18: raw VMess and WebSocket on the same port):
# stream "listen ssl" + vmess + vmess_websocket + vmess_fallback to the
# site's http server, TLSv1.2 and TLSv1.3.  curl gets the site's exact
# index as the first request after start (TLS 1.3), then over TLS 1.2;
# real v2ray 4.34 clients (TLS 1.3), one with "network": "tcp" and one
# with "ws", both with security "tls", move 16 MiB each way (sha256
# compared) through the same port; one with "http" (HTTP/2) gets nothing,
# as README says.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
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
        ssl_protocols TLSv1.2 TLSv1.3;
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

# the first connection after start, TLS 1.3; then TLS 1.2
my $curl = "curl -sS --max-time 10 --cacert $dir/ca.crt"
    . " --resolve www.example.test:$tls:127.0.0.1"
    . " -w '\n%{ssl_verify_result} %{http_version}'";
my $got = `$curl --tlsv1.3 https://www.example.test:$tls/index.html 2>&1`;
is($got, "$page\n0 1.1",
   'curl gets the site over TLS 1.3, first request after start');
$got = `$curl --tls-max 1.2 https://www.example.test:$tls/index.html 2>&1`;
is($got, "$page\n0 1.1", 'curl gets the site over TLS 1.2');

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
my ($error_log, %tls) = ($t->error_log());
like($error_log, qr/\[info\] .*vmess: unknown user, fallback to 127\.0\.0\.1:\d+/,
     'fallback logged');
$tls{$1}++ while $error_log =~ /SSL: (TLSv[\d.]+), cipher/g;
ok(($tls{'TLSv1.2'} // 0) == 1 && ($tls{'TLSv1.3'} // 0) >= 3
   && keys %tls == 2, 'one TLS 1.2 handshake (curl), the rest TLS 1.3')
    or diag(join ', ', map { "$_: $tls{$_}" } sort keys %tls);

$t->finish();
done_testing();
