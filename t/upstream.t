#!/usr/bin/perl
# VMess in, a balanced upstream{} pool out: proxy_pass names an upstream,
# sessions are spread over its servers, and a dead server is skipped by
# proxy_next_upstream.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use VMessTest qw/random_uuid/;

my $t = VMessTest->new();
my $alice = random_uuid();
my $e1 = $t->target('echo');
my $e2 = $t->target('echo');

$t->write_conf(<<'EOF' =~ s/ALICE/$alice/gr =~ s/E1/$e1/gr =~ s/E2/$e2/gr);
%%GLOBALS%%
events { worker_connections 1024; }
stream {
    vmess_zone vmess:1m;
    log_format pool '$vmess_status $vmess_target_host $upstream_addr';

    upstream pool {
        server 127.0.0.1:E1;
        server 127.0.0.1:E2;
        server 127.0.0.1:%%PORT_dead%% backup;
    }

    upstream dead_first {
        server 127.0.0.1:%%PORT_dead%%;
        server 127.0.0.1:E1;
    }

    server {
        listen 127.0.0.1:%%PORT_vmess%%;
        vmess on;
        vmess_user ALICE;
        proxy_pass pool;
        access_log %%TESTDIR%%/pool.log pool;
    }

    server {
        listen 127.0.0.1:%%PORT_next%%;
        vmess on;
        vmess_user ALICE;
        proxy_pass dead_first;
        proxy_next_upstream on;
        access_log %%TESTDIR%%/next.log pool;
    }
}
EOF
$t->run();

for my $i (1 .. 6) {
    my ($rc, $out) = $t->client('-s', '127.0.0.1:' . $t->port('vmess'),
                                '-u', $alice, '-t', 'www.example.com:443',
                                '-n', 65536, 'echo');
    is($rc, 0, "session $i through the pool") or diag($out);
}

for my $i (1 .. 2) {
    my ($rc, $out) = $t->client('-s', '127.0.0.1:' . $t->port('next'),
                                '-u', $alice, '-t', 'www.example.com:443',
                                '-n', 65536, 'echo');
    is($rc, 0, "session $i skips the dead server") or diag($out);
}

$t->stop();
my $log = VMessTest::read_file($t->dir() . '/pool.log');
my $n1 = () = $log =~ /^ok www\.example\.com 127\.0\.0\.1:$e1$/mg;
my $n2 = () = $log =~ /^ok www\.example\.com 127\.0\.0\.1:$e2$/mg;
is($n1 + $n2, 6, 'every session logged with its upstream');
ok($n1 > 0 && $n2 > 0, "both servers used ($n1 and $n2)");
like(VMessTest::read_file($t->dir() . '/next.log'),
     qr/^ok www\.example\.com 127\.0\.0\.1:\d+, 127\.0\.0\.1:$e1$/m,
     'proxy_next_upstream moved on to the live server');

$t->finish();
done_testing();
