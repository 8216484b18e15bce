#!/usr/bin/perl
# 10,000 VMess sessions open at the same time through four workers: each
# authenticated and echoing a verified chunk through nginx, then all held
# together (counted on the server's side), then each echoes a chunk more
# and closes.  No crash or alert, worker memory bounded, and new sessions
# work afterwards.
#
# LOAD_SESSIONS (default 10000): sessions held at once.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw/sleep time/;
use VMessTest qw/random_uuid read_file/;

my $t = VMessTest->new();
my $alice = random_uuid();
my $dir = $t->dir();
my $n = $ENV{LOAD_SESSIONS} || 10000;

# the echo target and the holder each keep one descriptor per session;
# every worker two (client and upstream) for its share of them
my $nofile = $n + 1024;
my $hard = `sh -c 'ulimit -Hn'` =~ s/\s+//gr;
plan skip_all => "open files hard limit $hard < $nofile"
    if $hard ne 'unlimited' && $hard < $nofile;

$t->write_conf(<<"EOF");
%%GLOBALS%%
worker_processes 4;
worker_rlimit_nofile $nofile;
events { worker_connections $nofile; }
stream {
    vmess_zone vmess:16m;
    log_format vmess '\$vmess_status';
    server {
        listen 127.0.0.1:%%PORT_vmess%% reuseport backlog=4096;
        vmess on;
        vmess_user $alice;
        vmess_allow_private on;
        proxy_buffer_size 64k;
        proxy_pass \$vmess_target;
        access_log %%TESTDIR%%/access.log vmess;
    }
}
EOF
$t->run();

my $top = VMessTest::top();
my $limit = "ulimit -n $nofile &&";
my $echo = $t->daemon('sh', '-c',
                      "$limit exec $top/objs/vmess-client serve-echo "
                      . '127.0.0.1:0');
my $port = $t->port('vmess');

# under ASan the last worker may still be starting
my @workers;
for (1 .. 100) {
    @workers = $t->workers();
    last if @workers == 4;
    select(undef, undef, undef, 0.1);
}
is(scalar(@workers), 4, 'four workers');
my $rss_before = $t->workers_rss();

# vmess-client hold answers "hold held=E sessions=N ..." once every
# session is up, then keeps them until SIGUSR1
my $started = time();
my $pid = open(my $hold, '-|', 'sh', '-c',
               "$limit exec $top/objs/vmess-client hold -s 127.0.0.1:$port "
               . "-u $alice -t 127.0.0.1:$echo -c $n -n 16 "
               . "--in-flight 256 --timeout 120 --answer 20 --hold 300 2>&1")
    or die "hold: $!";
my $line = <$hold> // '';
chomp $line;
my $took = time() - $started;

like($line, qr/^hold held=$n sessions=$n unanswered=0 refused=0 /,
     "$n sessions authenticated, each echoed a verified chunk")
    or diag($line);

my $established = server_sessions($port);
is($established, $n, "$n sessions open on the server at the same time");

my $rss_after = $t->workers_rss();
my $per = ($rss_after - $rss_before) / $n;
cmp_ok($per, '<', $t->sanitized() ? 256 : 64,
       'worker memory per held session (KiB) is bounded');
diag(sprintf "%d sessions up in %.1f s; workers' RSS %d -> %d KiB "
     . "(%.1f KiB per session)", $n, $took, $rss_before, $rss_after, $per);

kill 'USR1', $pid;
my $rest = join('', <$hold>);
close $hold;
like($rest, qr/^hold ok sessions=$n /m,
     "after the hold, $n sessions echoed a chunk more and closed")
    or diag($rest);

my $end = time() + 30;
sleep 0.2 while server_sessions($port) > 0 && time() < $end;
is(server_sessions($port), 0, 'all sessions closed');

my ($rc, $out) = $t->client('-s', "127.0.0.1:$port", '-u', $alice,
                            '-t', "127.0.0.1:$echo", '-n', 1 << 20, 'echo');
ok($rc == 0 && $out =~ /^echo ok /m, 'a new session works afterwards')
    or diag($out);

$t->stop();
my @log = split /\n/, read_file("$dir/access.log");
is(scalar(grep { $_ eq 'ok' } @log), $n + 1, 'every session logged ok')
    or diag(scalar(@log) . ' lines');

$t->finish();
done_testing();


# server-side sockets of the VMess port that are established
sub server_sessions {
    my ($p) = @_;
    my @lines = grep { /\S/ }
        split /\n/, `ss -Htn state established '( sport = :$p )'`;
    return scalar @lines;
}
