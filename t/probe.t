#!/usr/bin/perl
# Probe resistance: an active prober must not tell refusals apart.  Four
# kinds of probe, 200 connections each, all at once per kind: random
# bytes, a wrong user's header, a replayed header and headers with a bad
# checksum (a flipped byte in the sealed part).  Two shapes: the probe
# alone (the server waits for more until preread_timeout) and the probe
# followed by 8 KiB of random bytes (the server drains its byte count and
# closes).  Compared per kind: the median time until the server closes,
# the bytes sent back (none) and the median drain byte count the server
# logs, which is what it reads before closing.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Select;
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw/time sleep/;
use VMessTest qw/random_uuid read_file/;

my $t = VMessTest->new();
my $alice = random_uuid();
my $dir = $t->dir();
my $per_kind = 200;

my $echo = $t->target('echo');
my $capture = $t->recorder("$dir/capture.log");

$t->write_conf(<<"EOF");
%%GLOBALS%%
worker_processes 2;
events { worker_connections 2048; }
stream {
    vmess_zone vmess:1m;
    preread_timeout 1s;
    server {
        listen 127.0.0.1:%%PORT_vmess%% reuseport backlog=1024;
        vmess on;
        vmess_user $alice;
        vmess_allow_private on;
        proxy_pass \$vmess_target;
    }
}
EOF
$t->run();
my $server = '127.0.0.1:' . $t->port('vmess');

# headers sealed for the recorder, which never answers: unused AuthIDs
my $serial = 0;
sub unsent_headers {
    my ($n, $uuid) = @_;
    my @files;
    while (@files < $n) {
        my @cmd;
        for (1 .. ($n - @files < 25 ? $n - @files : 25)) {
            my $file = "$dir/h" . $serial++;
            push @files, $file;
            push @cmd, join(' ', map { quotemeta } $t->{client}, '-s',
                            "127.0.0.1:$capture", '-u', $uuid, '-t',
                            "127.0.0.1:$echo", '-n', 16, '--timeout', 1,
                            '--replay-file', $file, 'raw')
                . ' >/dev/null 2>&1 &';
        }
        system(join("\n", @cmd, 'wait'));
    }
    return map { read_file($_) } @files;
}

# a bad checksum uses up its AuthID: a set for each shape
my @bad = map {
    my @h = unsent_headers($per_kind, $alice);
    is(scalar(grep { length > 42 } @h), $per_kind,
       "$per_kind unused headers captured");
    substr($_, 40, 1) = chr(ord(substr($_, 40, 1)) ^ 0x01) for @h;
    \@h;
} 1 .. 2;
my $len = length $bad[0][0];

my ($wrong) = unsent_headers(1, random_uuid());

my ($rc, $out) = $t->client('-s', $server, '-u', $alice, '-t',
                            "127.0.0.1:$echo", '-n', 100,
                            '--replay-file', "$dir/used", 'echo');
is($rc, 0, 'a real session, its header kept for replays') or diag($out);
my $used = read_file("$dir/used");

sub noise { return join '', map { chr int rand 256 } 1 .. $_[0] }

my %kinds = (
    random => [map { noise($len) } 1 .. $per_kind],
    wrong  => [($wrong) x $per_kind],
    replay => [($used) x $per_kind],
);
my %reason = (
    random => 'unknown user',
    wrong  => 'unknown user',
    replay => 'replayed header',
    bad    => 'bad header: authentication failed',
);

sub median {
    my @s = sort { $a <=> $b } @_;
    return @s % 2 ? $s[$#s / 2] : ($s[@s / 2 - 1] + $s[@s / 2]) / 2;
}

# sends every probe at once; returns (median ms until closed, bytes back,
# connections not closed, the drain counts logged meanwhile)
sub probe {
    my ($probes, $tail, $why) = @_;
    my $log_before = length $t->error_log();
    my (@s, %start, %ms);
    for my $p (@$probes) {
        my $s = IO::Socket::INET->new(PeerAddr => $server)
            or die "connect: $!";
        $start{$s} = time();
        $s->syswrite($p . $tail);
        push @s, $s;
    }
    my $sel = IO::Select->new(@s);
    my $back = 0;
    my $end = time() + 5;
    while ($sel->count() && time() < $end) {
        for my $s ($sel->can_read(0.05)) {
            my $n = $s->sysread(my $buf, 4096);
            if ($n) {
                $back += $n;
                next;
            }
            $ms{$s} = (time() - $start{$s}) * 1000;
            $sel->remove($s);
        }
    }
    my $open = $sel->count();
    close $_ for @s;
    my @drain;
    for (1 .. 40) {
        my $log = substr($t->error_log(), $log_before);
        @drain = $log =~ /vmess: \Q$why\E, drain (\d+) bytes/g;
        last if @drain >= @$probes;
        sleep 0.05;
    }
    return (median(values %ms), $back, $open, @drain);
}

for my $shape (['alone', ''], ['with 8 KiB more', noise(8192)]) {
    my ($name, $tail) = @$shape;
    $kinds{bad} = shift @bad;
    my (%ms, %drain);
    for my $kind (qw/random wrong replay bad/) {
        my ($ms, $back, $open, @d) = probe($kinds{$kind}, $tail,
                                           $reason{$kind});
        is($back, 0, "$name, $kind: no byte back");
        is($open, 0, "$name, $kind: every connection closed by the server");
        is(scalar @d, $per_kind, "$name, $kind: $per_kind refusals logged"
           . " with their reason");
        $ms{$kind} = $ms;
        $drain{$kind} = median(@d);
        push @{$drain{all}}, @d;
    }
    my @all = sort { $a <=> $b } @{delete $drain{all}};
    my $range = $all[-1] - $all[0];
    diag(sprintf '%s: median ms %s; median drain bytes %s (all %d..%d)',
         $name, join(', ', map { sprintf '%s %.0f', $_, $ms{$_} }
                               sort keys %ms),
         join(', ', map { "$_ $drain{$_}" } sort keys %drain),
         $all[0], $all[-1]);
    my @m = sort { $a <=> $b } values %ms;
    # alone: all wait for the same preread_timeout; with more bytes: all
    # close as soon as the drain count is read
    ok($m[-1] - $m[0] < 150, sprintf "$name: median close times within"
       . ' 150 ms of each other (%.0f..%.0f ms)', $m[0], $m[-1]);
    if ($name eq 'alone') {
        ok($m[0] > 900 && $m[-1] < 1500, "$name: closed at the 1 s"
           . ' preread_timeout');
    }
    my @d = sort { $a <=> $b } values %drain;
    # the jitter's range depends on the users: one byte more for a small one
    ok($d[-1] - $d[0] <= $range / 4 + 1, "$name: median drain counts within"
       . " a quarter of their range and a byte ($d[0]..$d[-1] of"
       . " $all[0]..$all[-1])");
}

$t->finish();
done_testing();
