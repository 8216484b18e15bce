#!/usr/bin/perl
# Hostile clients against two workers: slowloris, half headers, many
# random-byte connections, lying length fields (the sealed header length
# and body chunk lengths), every byte of a first body chunk flipped, the
# same unused header raced on several connections at once, and a client
# and a target that never read while 200 MiB push towards them.  Pass: no
# worker crash, nothing unauthenticated reaches the VMess target, worker
# memory bounded and back near its baseline.
#
# HOSTILE_CONNS (default 10000): random-byte connections.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Select;
use IO::Socket::INET;
use Socket qw/SHUT_WR/;
use Time::HiRes qw/time sleep/;
use VMessTest qw/random_uuid read_file/;
use VMessCrypto;

my $t = VMessTest->new();
my $alice = random_uuid();
my $dir = $t->dir();
my $conns = $ENV{HOSTILE_CONNS} || 10000;

my $target_log = "$dir/target.log";
my $target = $t->recorder($target_log);
my $echo = $t->target('echo');
my $source = $t->target('source');

$t->write_conf(<<'EOF' =~ s/ALICE/$alice/gr);
%%GLOBALS%%
worker_processes 2;
worker_rlimit_nofile 8192;
events { worker_connections 4096; }
stream {
    vmess_zone vmess:4m;
    log_format vmess '$vmess_status';
    preread_timeout 2s;

    server {
        listen 127.0.0.1:%%PORT_vmess%% reuseport backlog=1024;
        vmess on;
        vmess_user ALICE;
        vmess_allow_private on;
        proxy_pass $vmess_target;
        access_log %%TESTDIR%%/access.log vmess;
    }

    server {
        listen 127.0.0.1:%%PORT_legacy%% reuseport;
        vmess on;
        vmess_user ALICE;
        vmess_legacy on;
        vmess_allow_private on;
        proxy_pass $vmess_target;
    }
}
EOF
$t->run();

my $port = $t->port('vmess');
my $server = "127.0.0.1:$port";

# --- helpers --------------------------------------------------------------

# a target that closes each connection 50 ms after its last byte, so a
# client's header can be captured (--replay-file) without nginx seeing it
my $closer = do {
    my $ls = IO::Socket::INET->new(LocalAddr => '127.0.0.1:0', Listen => 256,
                                   ReuseAddr => 1) or die "listen: $!";
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        my $sel = IO::Select->new($ls);
        my %last;
        while (1) {
            for my $s ($sel->can_read(0.02)) {
                if ($s == $ls) {
                    my $c = $ls->accept() or next;
                    $sel->add($c);
                    $last{$c} = time();
                } elsif ($s->sysread(my $buf, 65536)) {
                    $last{$s} = time();
                } else {
                    $last{$s} = 0;
                }
            }
            for my $s ($sel->handles()) {
                next if $s == $ls || time() - $last{$s} < 0.05;
                $sel->remove($s);
                delete $last{$s};
                close $s;
            }
        }
    }
    push @{$t->{daemons}}, $pid;
    $ls->sockport();
};

# n fresh headers (and their F.keys) for target port tp, never seen by
# nginx, made 25 clients at a time; options in hex (0d: masking + padding,
# as v2ray).  Returns ([header, keys], ...)
my $serial = 0;
sub fresh_headers {
    my ($n, $tp, $opt, @extra) = @_;
    my (@files, @out);
    while (@files < $n) {
        my @cmd;
        for (1 .. ($n - @files < 25 ? $n - @files : 25)) {
            my $file = "$dir/h" . $serial++;
            push @files, $file;
            push @cmd, join(' ', map { quotemeta } $t->{client}, '-s',
                            "127.0.0.1:$closer", '-u', $alice, '-t',
                            "127.0.0.1:$tp", '-n', 16, '--timeout', 2,
                            '-o', $opt // '0d', '--replay-file', $file,
                            @extra, 'raw') . ' >/dev/null 2>&1 &';
        }
        system(join("\n", @cmd, 'wait'));
    }
    for my $file (@files) {
        my $h = read_file($file);
        die "no header captured" unless length $h > 42;
        push @out, [$h, VMessCrypto::read_keys("$file.keys")];
    }
    return @out;
}

sub fresh_header { return @{(fresh_headers(1, @_))[0]} }

# sends bytes (then half-closes unless hold), reads until the server closes
# or timeout: (bytes received, closed, seconds)
sub raw {
    my ($bytes, $timeout, $hold) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => $server) or die "connect: $!";
    my $start = time();
    $s->syswrite($bytes) if length $bytes;
    shutdown($s, SHUT_WR) unless $hold;
    my ($got, $buf, $closed) = ('', '', 0);
    my $sel = IO::Select->new($s);
    my $end = $start + ($timeout // 5);
    while (time() < $end) {
        last unless $sel->can_read($end - time());
        my $n = $s->sysread($buf, 65536);
        if (!$n) {
            $closed = 1;
            last;
        }
        $got .= $buf;
    }
    return ($got, $closed, time() - $start);
}

sub count_log {
    my ($re) = @_;
    my $n = () = $t->error_log() =~ /$re/g;
    return $n;
}

sub target_lines {
    return grep { length } split /\n/, read_file($target_log);
}

# a real session warms the workers up before the baseline
my ($rc, $out) = $t->client('-s', $server, '-u', $alice, '-t',
                            "127.0.0.1:$echo", '-n', '4m', '-c', 4, 'echo');
is($rc, 0, 'warm-up sessions') or diag($out);
my $baseline = $t->workers_rss();
# two workers, each with an ASan quarantine of up to 16 MiB (make asan)
my $asan_slack = $t->sanitized() ? 2 * 16384 : 0;
my $asan_note = $asan_slack ? ' + 32 MiB of ASan quarantine' : '';
ok($baseline > 0, "worker RSS baseline $baseline KiB");

# --- header phase ---------------------------------------------------------

# slowloris: a real header, 1 byte every 0.25 s; preread_timeout (2 s) is
# a deadline for the whole header, not an idle timer
{
    my ($h) = fresh_header($target);
    my $s = IO::Socket::INET->new(PeerAddr => $server) or die "connect: $!";
    my $sel = IO::Select->new($s);
    my $start = time();
    my ($sent, $closed) = (0, 0);
    for my $i (0 .. 19) {
        if ($sel->can_read(0.25)) {
            my $buf;
            $closed = 1 unless $s->sysread($buf, 1);
            last;
        }
        last unless $s->syswrite(substr($h, $i, 1));
        $sent++;
    }
    my $took = time() - $start;
    ok($closed && $sent < 20,
       "slowloris: closed after $sent of 20 trickled bytes") ;
    ok($took > 1.8 && $took < 3.5,
       sprintf('slowloris: closed at %.1f s (preread_timeout 2 s)', $took));
    ok($t->wait_log(qr/vmess: incomplete header, ([0-9]) bytes received/, 3),
       'slowloris: logged as an incomplete header');
}

# half a header (30 bytes), then silence; 100 of them at once, each from
# its own header, and a real session still works meanwhile
{
    my $held_n = 100;
    my @half = map { substr($_->[0], 0, 30) }
               fresh_headers($held_n, $target);
    my @held = map { IO::Socket::INET->new(PeerAddr => $server)
                         or die "connect: $!" } 1 .. $held_n;
    my $start = time();
    $held[$_]->syswrite($half[$_]) for 0 .. $#held;

    ($rc, $out) = $t->client('-s', $server, '-u', $alice, '-t',
                             "127.0.0.1:$echo", '-n', '1m', 'echo');
    is($rc, 0, 'a real session while 100 half headers wait') or diag($out);

    my $sel = IO::Select->new(@held);
    my ($closed, $bytes, $buf) = (0, 0);
    while ($sel->count() && time() < $start + 6) {
        for my $s ($sel->can_read(0.5)) {
            my $n = $s->sysread($buf, 4096);
            if ($n) {
                $bytes += $n;
                next;
            }
            $closed++;
            $sel->remove($s);
        }
    }
    my $took = time() - $start;
    is($closed, $held_n, sprintf("half header: all $held_n closed within %.1f s",
                             $took));
    is($bytes, 0, 'half header: nothing sent back');
    ok($took > 1.5, 'half header: held until preread_timeout');
    sleep 0.3;
    is(count_log(qr/vmess: incomplete header, 30 bytes received/), $held_n,
       "half header: $held_n times \"incomplete header, 30 bytes\"");
}

# random bytes: many connections, 0..4000 bytes each, then a half-close
{
    my $lines_before = () = read_file("$dir/access.log") =~ /\n/g;
    my ($back, $done, $start) = (0, 0, time());
    my $batch = 100;
    for (my $i = 0; $i < $conns && time() < $start + 120; $i += $batch) {
        my @s;
        for (1 .. ($conns - $i < $batch ? $conns - $i : $batch)) {
            my $s = IO::Socket::INET->new(PeerAddr => $server)
                or die "connect: $!";
            my $n = int rand 4001;
            $s->syswrite(pack('N*', map { int rand 4294967296 }
                                    1 .. ($n + 3) / 4), $n) if $n;
            shutdown($s, SHUT_WR);
            push @s, $s;
        }
        my $sel = IO::Select->new(@s);
        my $end = time() + 10;
        my $buf;
        while ($sel->count() && time() < $end) {
            for my $s ($sel->can_read(1)) {
                my $n = $s->sysread($buf, 65536);
                if ($n) {
                    $back += $n;
                    next;
                }
                $sel->remove($s);
                $done++;
            }
        }
    }
    is($done, $conns, sprintf('random bytes: %d connections, all closed by'
                              . ' the server (%.1f s)', $conns,
                              time() - $start));
    is($back, 0, 'random bytes: not a byte sent back');
    my $lines;
    for (1 .. 50) {
        $lines = () = read_file("$dir/access.log") =~ /\n/g;
        last if $lines - $lines_before >= $conns;
        sleep 0.1;
    }
    is($lines - $lines_before, $conns,
       'random bytes: every connection ended and was logged');
}

# the header's sealed length field: authentic, but out of range
my $bad_before = count_log(qr/vmess: bad header/);
for my $l (0, 41, 513, 600, 65535) {
    my ($h) = fresh_header($target);
    my $real = VMessCrypto::header_length($alice, $h);
    ok(defined $real && $real >= 42 && $real < 512,
       "EncLen $l: the real header's length ($real) opens in Perl")
        if $l == 0;
    my $forged = VMessCrypto::header_with_length($alice, $h, $l);
    is(VMessCrypto::header_length($alice, $forged), $l,
       "EncLen $l: forged length field opens");
    my ($got, $closed) = raw($forged . noise(), 5);
    is($got, '', "EncLen $l: nothing sent back");
    ok($closed, "EncLen $l: closed");
}
is(count_log(qr/vmess: bad header/) - $bad_before, 5,
   'forged header lengths: 5 times "bad header"');

# --- body phase: lying chunk lengths, flipped bytes -----------------------

# positive control: the Perl writer's chunks reach the target
{
    my ($h, $keys) = fresh_header($target);
    my $w = VMessCrypto::writer($keys);
    raw($h . $w->chunk('control-chunk-0.') . $w->chunk('control-chunk-1.')
        . $w->chunk(''), 5);
    sleep 0.3;
    is((target_lines())[-1], '32 ' . unpack('H*', 'control-chunk-0.'
                                               . 'control-chunk-1.'),
       'Perl-sealed chunks reach the target (the writer is right)');
}

my $target_before = scalar target_lines();
my @bad_lengths = (0, 1, 15, 65535);
for my $l (@bad_lengths) {
    for my $opt ('05', '0d') {
        my ($h, $keys) = fresh_header($target, $opt);
        my $w = VMessCrypto::writer($keys);
        my $bytes = $h . $w->length_field($l) . ('x' x 100);
        my (undef, $closed) = raw($bytes, 5);
        ok($closed, "chunk length $l (options $opt), too little data:"
                    . ' session ended');
    }
}
# with padding, L below 16 + padding leaves no room for the tag
{
    my ($h, $keys) = fresh_header($target, '0d');
    my $w = VMessCrypto::writer($keys);
    my $probe = VMessCrypto::writer($keys);
    my (undef, $pad) = $probe->chunk('');
    my $l = 15 + $pad;
    my (undef, $closed) = raw($h . $w->length_field($l) . ('x' x $l), 5);
    ok($closed, "chunk length $l < 16 + padding $pad: session ended");
}
my @after;
for (1 .. 50) {
    @after = target_lines();
    last if @after - $target_before >= 2 * @bad_lengths + 1;
    sleep 0.1;
}
is(scalar(@after) - $target_before, 2 * @bad_lengths + 1,
   'lying chunk lengths: each session connected to the target');
is(scalar(grep { !/^0 $/ } @after[$target_before .. $#after]), 0,
   'lying chunk lengths: no byte reached the target');

# every byte of a first chunk flipped in turn, a valid second chunk behind
# it, each with a fresh header: options 05 (no padding) and 0d (padding:
# its bytes are not authenticated, so flipping the first 8 of them must
# deliver the data intact)
my $flips = 0;
for my $opt ('05', '0d') {
    my $before = scalar target_lines();
    my ($sessions, $ended, $padflips) = (0, 0, 0);
    my $last = $opt eq '05' ? 33 : 41;
    my @pool = fresh_headers($last + 20, $target, $opt);
    for my $i (0 .. $last) {
        my ($h, $keys, $w, $c, $pad);
        for my $k (0 .. $#pool) {
            ($h, $keys) = @{$pool[$k]};
            $w = VMessCrypto::writer($keys);
            ($c, $pad) = $w->chunk('0123456789abcdef');
            next unless $i < length $c;
            splice @pool, $k, 1;
            last;
        }
        die "no header with room for byte $i" unless $i < length $c;
        $padflips++ if $i >= 34;
        substr($c, $i, 1) = chr(ord(substr($c, $i, 1)) ^ (1 << ($i % 8)));
        my (undef, $closed) = raw($h . $c . $w->chunk('SECOND-CHUNK....'),
                                  5);
        $sessions++;
        $ended++ if $closed;
    }
    $flips += $sessions;
    is($ended, $sessions, "flipped bytes ($opt): all $sessions sessions"
                          . ' ended');
    # the recorder (a forking Perl daemon) can take seconds to write its
    # lines on a loaded machine although nginx closed promptly
    my @lines;
    for (1 .. 200) {
        @lines = target_lines();
        last if @lines - $before >= $sessions;
        sleep 0.1;
    }
    @lines = @lines[$before .. $#lines];
    is(scalar @lines, $sessions,
       "flipped bytes ($opt): the target saw every session end");
    my $good = '32 ' . unpack('H*', '0123456789abcdefSECOND-CHUNK....');
    is(scalar(grep { $_ eq $good } @lines), $padflips,
       "flipped bytes ($opt): only the $padflips padding flips delivered,"
       . ' intact');
    is(scalar(grep { $_ ne $good && $_ ne '0 ' } @lines), 0,
       "flipped bytes ($opt): no other byte reached the target");
}
ok($t->wait_log(qr/vmess: bad request chunk: authentication failed/, 3),
   'flipped bytes: chunk authentication failures logged');

# one unused header raced on 4 connections at once, 2 workers: exactly one
# session is answered (the zone is shared); returns the rounds won
sub race {
    my ($to, $rounds, @extra) = @_;
    my $won = 0;
    for my $hk (fresh_headers($rounds, $echo, '0d', @extra)) {
        my ($h, $keys) = @$hk;
        my $w = VMessCrypto::writer($keys);
        my $bytes = $h . $w->chunk('race');
        my @s = map { IO::Socket::INET->new(PeerAddr => $to)
                          or die "connect: $!" } 1 .. 4;
        $_->syswrite($bytes) for @s;
        my $sel = IO::Select->new(@s);
        my %got;
        # the losers are drained (held open): wait for the winner, then
        # 0.3 s more for a second one
        my $end = time() + 2;
        while ($sel->count() && time() < $end) {
            for my $s ($sel->can_read(0.1)) {
                my $n = $s->sysread(my $buf, 4096);
                if ($n && !$got{$s}++) {
                    $end = time() + 0.3 if keys %got == 1;
                }
                $sel->remove($s) unless $n;
            }
        }
        $won++ if keys %got == 1;
    }
    return $won;
}

is(race($server, 20), 20, 'replay race: 20 headers x 4 connections,'
                          . ' one answered each time');

# the same with legacy (MD5) headers: their auth, key and IV in the zone
{
    my $before = () = $t->error_log() =~ /vmess: replayed header/g;
    is(race('127.0.0.1:' . $t->port('legacy'), 20, '--legacy'), 20,
       'legacy replay race: 20 headers x 4 connections, one answered each'
       . ' time');
    my $after = () = $t->error_log() =~ /vmess: replayed header/g;
    is($after - $before, 60, 'legacy replay race: 60 replays logged');
}

# --- back-pressure --------------------------------------------------------

# a client that never reads: serve-source pushes 200 MiB at it
{
    pipe(my $in_r, my $in_w) or die;
    pipe(my $out_r, my $out_w) or die;
    my $pid = fork() // die;
    if ($pid == 0) {
        open STDIN, '<&', $in_r or exit 1;
        open STDOUT, '>&', $out_w or exit 1;
        open STDERR, '>', '/dev/null';
        exec($t->{client}, '-s', $server, '-u', $alice, '-t',
             "127.0.0.1:$source", '--timeout', 30, 'raw') or exit 1;
    }
    close $in_r;
    close $out_w;
    syswrite($in_w, pack('Q>', 200 * 1048576));
    my $peak = 0;
    for (1 .. 20) {
        sleep 0.25;
        my $r = $t->workers_rss();
        $peak = $r if $r > $peak;
    }
    ok(waitpid($pid, POSIX::WNOHANG()) == 0,
       'client that never reads: session still open after 5 s');
    my $grew = $peak - $baseline;
    ok($grew < 32768 + $asan_slack, "client that never reads: workers grew"
       . " $grew KiB (< 32 MiB$asan_note) with 200 MiB waiting upstream");
    kill 'TERM', $pid;
    waitpid($pid, 0);
    close $in_w;
    close $out_r;
}

# a target that never reads (a listen queue nobody accepts from): the
# client uploads 200 MiB into it
{
    my $ls = IO::Socket::INET->new(LocalAddr => '127.0.0.1:0', Listen => 8)
        or die "listen: $!";
    my $pid = fork() // die;
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        exec($t->{client}, '-s', $server, '-u', $alice, '-t',
             '127.0.0.1:' . $ls->sockport(), '-n', '200m', '--timeout', 30,
             'upload') or exit 1;
    }
    my $peak = 0;
    for (1 .. 20) {
        sleep 0.25;
        my $r = $t->workers_rss();
        $peak = $r if $r > $peak;
    }
    ok(waitpid($pid, POSIX::WNOHANG()) == 0,
       'target that never reads: upload still blocked after 5 s');
    my $grew = $peak - $baseline;
    ok($grew < 32768 + $asan_slack, "target that never reads: workers grew"
       . " $grew KiB (< 32 MiB$asan_note) with 200 MiB pushed at them");
    kill 'TERM', $pid;
    waitpid($pid, 0);
    close $ls;
}

# after all that: a real session works, memory is back near the baseline
($rc, $out) = $t->client('-s', $server, '-u', $alice, '-t',
                         "127.0.0.1:$echo", '-n', '4m', '-c', 4, 'echo');
is($rc, 0, 'real sessions still work at the end') or diag($out);
sleep 1;
my $end_rss = $t->workers_rss();
ok($end_rss - $baseline < 8192 + $asan_slack,
   "workers back near baseline: $baseline -> $end_rss KiB"
   . " (< +8 MiB$asan_note)");
is(scalar($t->workers()), 2, 'both workers alive');

$t->stop();
like($t->error_log(), qr/vmess/, 'error log written');
unlike($t->error_log(), qr/exited on signal|exited with code [1-9]/,
       'no worker died');

$t->finish();
done_testing();

sub noise { return join '', map { chr int rand 256 } 1 .. 1000 }
