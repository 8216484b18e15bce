#!/usr/bin/perl
# Unauthenticated input holds no more than the preread buffer: one worker,
# no vmess_fallback, and 1,000 connections (UNAUTH_CONNS) of each kind
# held open at once: 30 bytes of a fresh header (preread waits for the
# rest), 64 random bytes, the header of a user the server does not have,
# a replayed header (all three drained: the drain waits for more bytes
# than were sent).  Pass: every refusal logged, none proxied; for every
# connection, the allocations nginx's debug log shows (pool blocks and
# large allocations: "posix_memalign:", "malloc:") are no larger than the
# preread buffer and add up to at most the preread buffer plus the
# connection's pools; the worker's RSS per held connection stays under
# the same bound (ASan's redzones and quarantine allowed for).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw/time sleep/;
use VMessTest qw/random_uuid read_file/;

my $n = $ENV{UNAUTH_CONNS} || 1000;
my $preread = 16384;
# the rest a connection takes from the allocator before it is refused:
# pool blocks of 256 bytes and the stream session with its module
# contexts (256 + 1,296 bytes with Debian's nginx 1.22); another buffer
# (a proxy buffer, the 64 KiB staging buffer) would not fit in it
my $pools = 4096;
my $nofile = 4 * $n + 1024;

# this process holds the client side of every connection: it runs again
# with the open-files limit raised when it is too low
my ($soft, $hard) = split ' ', `sh -c 'ulimit -n; ulimit -Hn'` =~ s/\n/ /r;
plan skip_all => "open files hard limit $hard < $nofile"
    if $hard ne 'unlimited' && $hard < $nofile;
if ($soft ne 'unlimited' && $soft < $nofile) {
    exec('sh', '-c', "ulimit -n $nofile && exec \"\$@\"", 'sh', $^X, $0);
    die "exec: $!";
}

my $t = VMessTest->new();
my $alice = random_uuid();
my $dir = $t->dir();
my $echo = $t->target('echo');

$t->write_conf(<<"EOF");
%%GLOBALS%%
worker_processes 1;
worker_rlimit_nofile $nofile;
events { worker_connections $nofile; }
stream {
    vmess_zone vmess:4m;
    preread_buffer_size $preread;
    preread_timeout 60s;

    server {
        listen 127.0.0.1:%%PORT_vmess%% backlog=4096;
        vmess on;
        vmess_user $alice;
        vmess_allow_private on;
        proxy_pass \$vmess_target;
    }
}
EOF
$t->run();
my $server = '127.0.0.1:' . $t->port('vmess');
# nothing listens here: vmess-client seals (and saves) a header before it
# connects, so a header nginx has never seen is one that went nowhere
my $nowhere = '127.0.0.1:' . $t->port('nowhere');

# a header of uuid, saved by vmess-client --replay-file and never sent
sub header_of {
    my ($uuid, $name) = @_;
    my $file = "$dir/$name";
    $t->client('-s', $nowhere, '-u', $uuid, '-t', "127.0.0.1:$echo",
               '-n', 16, '--replay-file', $file, 'raw');
    my $h = read_file($file);
    die "no header for $name" unless length $h > 42;
    return $h;
}

# the replayed one: sent once (a session nginx authenticates), then again
my $seen = header_of($alice, 'seen');
{
    my $s = IO::Socket::INET->new(PeerAddr => $server) or die "connect: $!";
    syswrite $s, $seen;
    ok($t->wait_log(qr/ proxy \S+ connected to 127\.0\.0\.1:$echo\b/),
       'the header to be replayed authenticated once');
    close $s;
}
my $stranger = header_of(random_uuid(), 'stranger');

my ($rc, $out) = $t->client('-s', $server, '-u', $alice, '-t',
                            "127.0.0.1:$echo", '-n', '1m', '-c', 4, 'echo');
is($rc, 0, 'warm-up sessions') or diag($out);
sleep 0.5;

sub established {
    my @l = `ss -tnH state established '( sport = :$_[0] )' 2>/dev/null`;
    return scalar @l;
}

sub count {
    my ($text, $re) = @_;
    my $c = () = $text =~ /$re/g;
    return $c;
}

# ASan's redzones and quarantine (see VMessTest::sanitized) take more RSS
# (13.7-13.9 KB per connection under make asan, 6.3 KB without)
my $bound = $preread + $pools;
my $rss_bound = $t->sanitized() ? 2 * $bound : $bound;
my $port = $t->port('vmess');
my (@held, $rss);

for my $case (['partial header', sub { substr(header_of($alice,
                                      "partial$_[0]"), 0, 30) }, undef],
              ['random bytes', sub { join '', map { chr int rand 256 }
                                     1 .. 64 },
               qr/vmess: unknown user, drain \d+ bytes/],
              ['unknown user', sub { $stranger },
               qr/vmess: unknown user, drain \d+ bytes/],
              ['replayed header', sub { $seen },
               qr/vmess: replayed header, drain \d+ bytes/])
{
    my ($name, $bytes, $refused) = @$case;
    # fresh headers are made before the window this case is measured in
    my @probes = map { $bytes->($_) } 1 .. $n;
    my $log_from = length $t->error_log();
    my $rss_before = $rss // $t->workers_rss();
    my $up = established($port);

    for my $p (@probes) {
        my $s = IO::Socket::INET->new(PeerAddr => $server)
            or die "connect: $!";
        syswrite $s, $p;
        push @held, $s;
    }

    my $text;
    my $end = time() + 30;
    while (time() < $end) {
        $text = substr($t->error_log(), $log_from);
        last if established($port) - $up >= $n
                && (!$refused || count($text, $refused) >= $n);
        sleep 0.1;
    }
    # the last reads of the worker and its log lines
    sleep 0.5;
    $text = substr($t->error_log(), $log_from);
    is(established($port) - $up, $n, "$name: $n connections held open");
    is(count($text, $refused // qr/vmess: (unknown|replayed|incomplete)/),
       $refused ? $n : 0, $refused ? "$name: $n refusals logged"
                                   : "$name: none refused yet");
    is(count($text, qr/ proxy \S+ connected to /), 0,
       "$name: none proxied");

    # what nginx allocated for each of these connections
    my (%sum, %max);
    while ($text =~ /\*(\d+) (?:posix_memalign|malloc): \w+:(\d+)/g) {
        $sum{$1} += $2;
        $max{$1} = $2 if $2 > ($max{$1} // 0);
    }
    my @conns = keys %sum;
    my ($most) = sort { $b <=> $a } values %sum;
    my ($largest) = sort { $b <=> $a } values %max;
    ok(@conns >= $n, "$name: allocations of " . scalar(@conns)
       . " connections in the debug log");
    ok(($largest // 0) <= $preread, "$name: largest allocation "
       . ($largest // 0) . " bytes (preread buffer $preread)");
    ok(($most // 0) <= $bound, "$name: at most " . ($most // 0)
       . " bytes allocated per connection (<= $bound)");

    $rss = $t->workers_rss();
    my $per = ($rss - $rss_before) * 1024 / $n;
    ok($per <= $rss_bound, sprintf "%s: worker RSS %d -> %d KiB, %.0f "
       . 'bytes per connection (<= %d)', $name, $rss_before, $rss, $per,
       $rss_bound);
}

close $_ for @held;
my $end = time() + 10;
sleep 0.1 while established($port) > 0 && time() < $end;
($rc, $out) = $t->client('-s', $server, '-u', $alice, '-t',
                         "127.0.0.1:$echo", '-n', '1m', 'echo');
is($rc, 0, 'a real session after all of them') or diag($out);
is(scalar($t->workers()), 1, 'the worker is alive');

$t->finish();
done_testing();
