#!/usr/bin/perl
# Interop with the real v2ray 4.34 client (Debian's package): dokodemo-door
# inbound -> vmess outbound -> nginx with this module -> echo target.
# 16 MiB each way per security, sha256 compared; AEAD and legacy headers;
# a domain-name target resolved by nginx's resolver through a DNS stub.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use VMessTest qw/random_uuid/;

my $t = VMessTest->new();
my $alice = random_uuid();
my $bob = random_uuid();
my $dns = $t->dns('echo.test' => '127.0.0.1');

$t->write_conf(<<'EOF' =~ s/ALICE/$alice/r =~ s/BOB/$bob/r);
%%GLOBALS%%
events { worker_connections 1024; }
stream {
    vmess_zone vmess:1m;
    log_format vmess '$vmess_status $vmess_user $vmess_target '
                     '$vmess_target_host $vmess_security $vmess_header';
    server {
        listen 127.0.0.1:%%PORT_vmess%%;
        vmess on;
        vmess_user ALICE alice;
        vmess_user BOB bob alter_id=4;
        vmess_legacy on;
        vmess_allow_private on;
        resolver 127.0.0.1:%%PORT_dns%% ipv6=off;
        proxy_pass $vmess_target;
        access_log %%TESTDIR%%/access.log vmess;
    }
}
EOF
$t->run();

my $echo = $t->target('echo');
my $n = 16 * 1024 * 1024;
my %common = (server => $t->port('vmess'), target_host => '127.0.0.1',
              target_port => $echo);

for my $sec (qw/aes-128-gcm chacha20-poly1305 none auto/) {
    my $port = $t->v2ray_client(%common, name => "v2ray-$sec",
                                uuid => $alice, security => $sec);
    is($t->plain_echo($port, $n), 1, "v2ray $sec: 16 MiB each way");
}

my $legacy = $t->v2ray_client(%common, name => 'v2ray-legacy', uuid => $bob,
                              alter_id => 4, legacy => 1,
                              security => 'aes-128-gcm');
is($t->plain_echo($legacy, $n), 1, 'v2ray legacy header (alterId 4)');

my $legacy_cfb = $t->v2ray_client(%common, name => 'v2ray-legacy-cfb',
                                  uuid => $bob, alter_id => 4, legacy => 1,
                                  security => 'aes-128-cfb');
is($t->plain_echo($legacy_cfb, 1048576), 1,
   'v2ray legacy header with aes-128-cfb');

my $named = $t->v2ray_client(%common, name => 'v2ray-domain', uuid => $alice,
                             security => 'aes-128-gcm',
                             target_host => 'echo.test');
is($t->plain_echo($named, 1048576), 1, 'domain target through resolver');

$t->stop();
my $log = VMessTest::read_file($t->dir() . '/access.log');
like($log, qr/^ok alice 127\.0\.0\.1:$echo 127\.0\.0\.1 chacha20-poly1305 aead$/m,
     'chacha20 session logged');
like($log, qr/^ok bob 127\.0\.0\.1:$echo 127\.0\.0\.1 aes-128-gcm legacy$/m,
     'legacy session logged');
like($log, qr/^ok alice 127\.0\.0\.1:$echo echo\.test aes-128-gcm aead$/m,
     'domain resolved in preread: target is the address, host the name');

$t->finish();
done_testing();
