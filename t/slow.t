#!/usr/bin/perl
# Slow readers: 1,000 sessions whose client never reads while the target
# sends 1 GiB each (vmess-client download --stall), then 1,000 sessions
# uploading 1 GiB each into a target that never reads (a listen queue
# nobody accepts from).  Pass: the workers' RSS per stalled session stays
# under a bound, and a 32 MiB echo session run meanwhile is echoed intact.
# Its speed and the kernel's TCP memory are printed: with both peers on
# this machine their socket buffers of 1,000 stalled sessions reach the
# kernel's tcp_mem limit, which slows every TCP socket on it.
#
# SLOW_SESSIONS (default 1000): stalled sessions per direction.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw/time sleep/;
use VMessTest qw/random_uuid/;

my $n = $ENV{SLOW_SESSIONS} || 1000;
my $t = VMessTest->new();
my $alice = random_uuid();
my $nofile = 4 * $n + 1024;

my (undef, $hard) = split ' ', `sh -c 'ulimit -n; ulimit -Hn'` =~ s/\n/ /r;
plan skip_all => "open files hard limit $hard < $nofile"
    if $hard ne 'unlimited' && $hard < $nofile;

my $source = $t->target('source');
my $echo = $t->target('echo');

$t->write_conf(<<"EOF");
%%GLOBALS%%
worker_processes 2;
worker_rlimit_nofile $nofile;
events { worker_connections $nofile; }
stream {
    vmess_zone vmess:4m;
    server {
        listen 127.0.0.1:%%PORT_vmess%% reuseport backlog=4096 sndbuf=64k;
        vmess on;
        vmess_user $alice;
        vmess_allow_private on;
        proxy_pass \$vmess_target;
    }
}
EOF
$t->run();
my $server = '127.0.0.1:' . $t->port('vmess');

sub speed {
    my ($rc, $out) = $t->client('-s', $server, '-u', $alice, '-t',
                                "127.0.0.1:$echo", '-n', '32m', 'echo');
    is($rc, 0, 'a 32 MiB echo session') or diag($out);
    return $out =~ m{MiB/s=([\d.]+)} ? $1 : 0;
}

my $before = speed();
my $base = $t->workers_rss();

# starts a background vmess-client; returns its pid
sub background {
    my @args = @_;
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        exec('sh', '-c', "ulimit -n $nofile && exec \"\$@\"", 'sh',
             $t->{client}, '-s', $server, '-u', $alice, @args)
            or exit 1;
    }
    return $pid;
}

# the workers' peak RSS over 4 s once the sessions' buffers are full
sub peak {
    my $peak = 0;
    for (1 .. 16) {
        sleep 0.25;
        my $r = $t->workers_rss();
        $peak = $r if $r > $peak;
    }
    return $peak;
}

sub established {
    my @l = `ss -tnH state established '( sport = :$_[0] )' 2>/dev/null`;
    return scalar @l;
}

my $port = $t->port('vmess');

for my $case (['client that never reads',
               '-t', "127.0.0.1:$source", '-n', '1g', '-c', $n,
               '--stall', 60, '--timeout', 60, '--small-buffers',
               'download'],
              ['target that never reads', 'upload'])
{
    my ($name, @args) = @$case;
    my $ls;
    if ($args[0] eq 'upload') {
        $ls = IO::Socket::INET->new(LocalAddr => '127.0.0.1:0',
                                    Listen => 4096) or die "listen: $!";
        @args = ('-t', '127.0.0.1:' . $ls->sockport(), '-n', '1g',
                 '-c', $n, '--timeout', 60, '--small-buffers', 'upload');
    }
    my $pid = background(@args);
    my $up = 0;
    for (1 .. 300) {
        $up = established($port);
        last if $up >= $n;
        sleep 0.1;
    }
    is($up, $n, "$name: $n sessions established");
    sleep 2;
    my $grew = peak() - $base;
    my $per = $grew / $n;
    my $during = speed();
    my ($mem) = `cat /proc/net/sockstat` =~ /^TCP:.* mem (\d+)/m;
    my ($limit) = (split ' ', `cat /proc/sys/net/ipv4/tcp_mem`)[2];
    diag(sprintf '%s: workers +%d KiB, %.1f KiB per session; echo %.1f'
         . ' MiB/s, before %.1f; kernel TCP memory %d of %d pages',
         $name, $grew, $per, $during, $before, $mem // 0, $limit // 0);
    # ASan's redzones and quarantine (see VMessTest::sanitized) take more
    my $bound = $t->sanitized() ? 256 : 64;
    ok($per < $bound, sprintf "$name: %.1f KiB per stalled session"
       . ' (< %d KiB)', $per, $bound);
    kill 'TERM', $pid;
    waitpid($pid, 0);
    close $ls if $ls;
    for (1 .. 100) {
        last if established($port) == 0;
        sleep 0.1;
    }
    sleep 1;
    $base = $t->workers_rss();
}

is(scalar($t->workers()), 2, 'both workers alive');
$t->finish();
done_testing();
