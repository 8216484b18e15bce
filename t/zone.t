#!/usr/bin/perl
# Replay zone exhaustion: real sessions flood a small vmess_zone (two
# workers) until it is full.  Then a replay of a header stored before the
# flood is still refused as a replay (no live entry is evicted), and a
# new session is refused with "replay zone ... is full" (fail closed).
# The flood runs for two zone sizes: the difference gives the bytes one
# entry takes, and from it the sessions per second a 10m zone holds
# (an entry lives 130 s: its timestamp's 120 s window and 10 s slack).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Select;
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw/time sleep/;
use VMessTest qw/random_uuid read_file/;

my $alice = random_uuid();
my %entries;

for my $size (qw/64k 512k/) {
    my $t = VMessTest->new();
    my $dir = $t->dir();
    my $echo = $t->target('echo');

    $t->write_conf(<<"EOF");
%%GLOBALS%%
worker_processes 2;
events { worker_connections 1024; }
stream {
    vmess_zone vmess:$size;
    log_format st '\$vmess_status';
    preread_timeout 1s;
    server {
        listen 127.0.0.1:%%PORT_vmess%% reuseport;
        vmess on;
        vmess_user $alice;
        vmess_allow_private on;
        proxy_pass \$vmess_target;
        access_log %%TESTDIR%%/access.log st;
    }
}
EOF
    $t->run();

    # the log has more than n lines matching re within 3 s
    my $grows = sub {
        my ($re, $n) = @_;
        for (1 .. 60) {
            my $now = () = $t->error_log() =~ /$re/g;
            return 1 if $now > $n;
            sleep 0.05;
        }
        return 0;
    };
    my $server = '127.0.0.1:' . $t->port('vmess');

    my ($rc, $out) = $t->client('-s', $server, '-u', $alice, '-t',
                                "127.0.0.1:$echo", '-n', 100,
                                '--replay-file', "$dir/first", 'echo');
    is($rc, 0, "$size: a session before the flood") or diag($out);

    # batches of real sessions until some are refused
    my $full_re = qr/\[error\].*vmess: replay zone "vmess" is full/;
    my $start = time();
    for (1 .. 100) {
        $t->client('-s', $server, '-u', $alice, '-t', "127.0.0.1:$echo",
                   '-n', 16, '-c', 8, '-r', 200, '--timeout', 3,
                   'handshakes');
        last if $t->error_log() =~ $full_re;
    }
    my $seconds = time() - $start;
    ok($t->error_log() =~ $full_re, "$size: flooded until full, logged at"
       . ' error');
    my @st = split /\n/, read_file("$dir/access.log");
    my $ok = grep { $_ eq 'ok' } @st;
    $entries{$size} = $ok;
    diag(sprintf '%s zone: %d entries, filled in %.1f s', $size, $ok,
         $seconds);

    # the stored header again: a replay, not "full"
    my $h = read_file("$dir/first");
    my $replays = () = $t->error_log() =~ /vmess: replayed header/g;
    my $s = IO::Socket::INET->new(PeerAddr => $server) or die "$!";
    $s->syswrite($h);
    my $sel = IO::Select->new($s);
    my $got = '';
    if ($sel->can_read(3)) {
        $s->sysread($got, 4096);
    }
    close $s;
    is($got // '', '', "$size: replay after the flood: nothing answered");
    ok($grows->(qr/vmess: replayed header/, $replays),
       "$size: replay after the flood logged as a replay");

    # a new session: refused, with the zone's line
    my $fulls = () = $t->error_log() =~ /$full_re/g;
    ($rc, $out) = $t->client('-s', $server, '-u', $alice, '-t',
                             "127.0.0.1:$echo", '-n', 10, '--timeout', 3,
                             'raw');
    is($rc, 2, "$size: new session refused while full") or diag($out);
    ok($grows->($full_re, $fulls), "$size: its refusal logged");

    $t->finish();
}

my $per_entry = (512 - 64) * 1024 / ($entries{'512k'} - $entries{'64k'});
ok($per_entry >= 80 && $per_entry <= 160,
   sprintf('%.1f bytes per entry (80..160)', $per_entry));
my $ten = $entries{'512k'} + (10240 - 512) * 1024 / $per_entry;
diag(sprintf 'a 10m zone: about %d entries, %d new sessions/s sustained'
     . ' for an entry lifetime of 130 s', $ten, $ten / 130);

done_testing();
