#!/usr/bin/perl
# 200 concurrent VMess sessions through one nginx worker, each verified
# byte for byte, and many short sessions in a row.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use VMessTest qw/random_uuid/;

my $t = VMessTest->new();
my $alice = random_uuid();

$t->write_conf(<<'EOF' =~ s/ALICE/$alice/r);
%%GLOBALS%%
worker_processes 1;
events { worker_connections 2048; }
stream {
    vmess_zone vmess:4m;
    log_format vmess '$vmess_status';
    server {
        listen 127.0.0.1:%%PORT_vmess%% backlog=1024;
        vmess on;
        vmess_user ALICE;
        vmess_allow_private on;
        proxy_pass $vmess_target;
        access_log %%TESTDIR%%/access.log vmess;
    }
}
EOF
$t->run();

my $echo = $t->target('echo');
my @base = ('-s', '127.0.0.1:' . $t->port('vmess'), '-u', $alice,
            '-t', "127.0.0.1:$echo");

my ($rc, $out) = $t->client(@base, '-n', 262144, '-c', 200, 'echo');
ok($rc == 0 && $out =~ /^echo ok sessions=200 /m,
   '200 concurrent sessions of 256 KiB each, all verified') or diag($out);

($rc, $out) = $t->client(@base, '-r', 2000, '-c', 20, 'handshakes');
ok($rc == 0 && $out =~ /^handshakes ok sessions=2000 /m,
   '2000 short sessions, 20 at a time') or diag($out);

$t->stop();
my @log = split /\n/, VMessTest::read_file($t->dir() . '/access.log');
is(scalar(grep { $_ eq 'ok' } @log), 2200, 'every session logged ok');

$t->finish();
done_testing();
