#!/usr/bin/perl
# Head-of-line isolation and the UDP budget.  Mux: sub-session 1 goes to a
# target that accepts and never reads, 2 to an echo target; 8 MiB for 1,
# then 1 MiB for 2, in one connection: 1 is ended after
# vmess_mux_stall_timeout (End with the error option, logged with the
# bytes waiting) and 2's 1 MiB comes back intact.  The control: a target
# that reads slowly but steadily gets all its 8 MiB, its sub-session is
# not ended.  UDP: a client that never reads while the target floods
# datagrams: they are dropped and counted (log line, $vmess_udp_dropped),
# the workers' RSS stays bounded.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Digest::SHA qw/sha256_hex/;
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw/time sleep/;
use VMessTest qw/random_uuid read_file write_file/;

my $t = VMessTest->new();
my $alice = random_uuid();
my $dir = $t->dir();

$t->write_conf(<<'EOF' =~ s/ALICE/$alice/gr);
%%GLOBALS%%
worker_processes 1;
events { worker_connections 1024; }
stream {
    vmess_zone vmess:1m;
    log_format vmess '$vmess_status|$vmess_command|$vmess_udp_dropped';
    server {
        listen 127.0.0.1:%%PORT_vmess%%;
        vmess on;
        vmess_user ALICE;
        vmess_allow_private on;
        vmess_mux_stall_timeout 2s;
        vmess_udp_timeout 2s;
        proxy_pass $vmess_target;
        access_log %%TESTDIR%%/access.log vmess;
    }
    server {
        listen 127.0.0.1:%%PORT_control%%;
        vmess on;
        vmess_user ALICE;
        vmess_allow_private on;
        vmess_mux_stall_timeout 1s;
        proxy_pass $vmess_target;
        access_log %%TESTDIR%%/access.log vmess;
    }
}
EOF
$t->run();

my $echo = $t->target('echo');

# accepts and holds every connection, never reads
my $hold = $t->daemon('perl', '-MIO::Socket::INET', '-e', <<'HOLD');
my $ls = IO::Socket::INET->new(LocalAddr => '127.0.0.1:0', Listen => 16)
    or die;
$| = 1;
print "listening ", $ls->sockport(), "\n";
my @held;
while (my $c = $ls->accept()) { push @held, $c }
HOLD

# reads 64 KiB every 50 ms through a 64 KiB receive buffer: 8 MiB take
# 6.5 s, the last 3 s or more (once the kernel's buffers are full) paused
# on a full sub-session buffer, never 1 s without a byte taken; at EOF
# writes "bytes sha256" to slow.out
my $slow = $t->daemon('perl', '-MIO::Socket::INET', '-MDigest::SHA',
                      '-MSocket', '-MTime::HiRes=sleep', '-e', <<"SLOW");
my \$ls = IO::Socket::INET->new(LocalAddr => '127.0.0.1:0', Listen => 16)
    or die;
\$ls->setsockopt(SOL_SOCKET, SO_RCVBUF, 65536) or die;
\$| = 1;
print "listening ", \$ls->sockport(), "\\n";
my \$c = \$ls->accept() or die;
my (\$n, \$sha) = (0, Digest::SHA->new(256));
while (my \$k = sysread(\$c, my \$buf, 65536)) {
    \$n += \$k;
    \$sha->add(\$buf);
    sleep 0.05;
}
open my \$fh, '>', "$dir/slow.out" or die;
print \$fh "\$n ", \$sha->hexdigest(), "\\n";
close \$fh;
sleep 60;
SLOW

# Mux.Cool frames (VMESS-SPEC.md §8): New to 127.0.0.1:port, Keep, End
sub frame {
    my ($sid, $status, %o) = @_;
    my $opt = ($o{opt} // 0) | (defined $o{data} ? 1 : 0);
    my $meta = pack('nCC', $sid, $status, $opt);
    $meta .= pack('CnCC4', $o{udp} ? 2 : 1, $o{port}, 1, 127, 0, 0, 1)
        if $status == 1;
    my $f = pack('n', length $meta) . $meta;
    $f .= pack('n', length $o{data}) . $o{data} if defined $o{data};
    return $f;
}

# the response body as [sid, status, opt, data]
sub frames {
    my ($body) = @_;
    $body //= '';
    my @f;
    while (length $body >= 2) {
        my $ml = unpack('n', $body);
        last if length $body < 2 + $ml;
        my ($sid, $st, $opt) = unpack('nCC', substr($body, 2, 4));
        my $rest = substr($body, 2 + $ml);
        my $data = '';
        if ($opt & 1) {
            last if length $rest < 2;
            my $dl = unpack('n', $rest);
            last if length $rest < 2 + $dl;
            $data = substr($rest, 2, $dl);
            $rest = substr($rest, 2 + $dl);
        }
        $body = $rest;
        push @f, [$sid, $st, $opt, $data];
    }
    return @f;
}

sub data_of {
    my ($f, $sid) = @_;
    return join '', map { $_->[3] } grep { $_->[0] == $sid && $_->[1] == 2 }
        @$f;
}

sub random_bytes {
    my ($n) = @_;
    my $d = '';
    $d .= pack('N*', map { int rand 4294967296 } 1 .. 16384)
        while length $d < $n;
    return substr($d, 0, $n);
}

# Keep frames of 16 KiB carrying data for sid
sub keeps {
    my ($sid, $data) = @_;
    my $f = '';
    for (my $off = 0; $off < length $data; $off += 16384) {
        $f .= frame($sid, 2, data => substr($data, $off, 16384));
    }
    return $f;
}

# our client in raw mode (command 3) in the background: stdin is the
# frames, then silence; returns its pid
my $run = 0;
sub raw_mux {
    my ($bytes, $wait, $server) = @_;
    $server //= $t->port('vmess');
    $run++;
    write_file("$dir/in$run", $bytes);
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        setpgrp(0, 0);
        exec('sh', '-c', "(cat $dir/in$run; sleep $wait) | $t->{client} "
             . "-s 127.0.0.1:$server -u $alice "
             . "--command 3 --timeout 30 raw >$dir/out$run 2>$dir/err$run")
            or exit 1;
    }
    return $pid;
}

# the client, its shell and sleep: the process group raw_mux made
sub stop_client {
    my ($pid) = @_;
    kill 'TERM', -$pid;
    waitpid($pid, 0);
}

# 1: the stalled sub-session ends, 2 goes on
my $to_b = random_bytes(1048576);
my $start = time();
my $pid = raw_mux(frame(1, 1, port => $hold) . frame(2, 1, port => $echo)
                  . keeps(1, random_bytes(8 * 1048576)) . keeps(2, $to_b),
                  30);
my ($f, $took) = ([], 0);
while (time() - $start < 20) {
    $f = [frames(read_file("$dir/out$run"))];
    if (length data_of($f, 2) >= length $to_b) {
        $took = time() - $start;
        last;
    }
    sleep 0.1;
}
my $b_back = data_of($f, 2);
ok(length $b_back == length $to_b && sha256_hex($b_back) eq sha256_hex($to_b),
   'mux: 1 MiB of sub-session 2 echoed intact behind a stalled one')
    or diag(sprintf 'got %d of %d bytes; %s', length $b_back, length $to_b,
            read_file("$dir/err$run"));
# the first period may end with bytes taken after all (the kernel's
# buffers for the target grow a little): then the second one ends it
ok($took > 0 && $took < 2 * 2 + 5,
   sprintf 'mux: it came back within two stall timeouts + 5 s (%.1f s)',
   $took);
diag(sprintf 'stalled: sub-session 2 echoed 1 MiB in %.2f s', $took);
ok((grep { $_->[0] == 1 && $_->[1] == 3 && ($_->[2] & 2) } @$f),
   'mux: the stalled sub-session got End with the error option');
ok($t->wait_log(qr/\[info\].*vmess: mux session 1 \(127\.0\.0\.1:$hold\): upstream took no byte for 2000 ms with 65536 bytes waiting, ending it/),
   'mux: the stall logged with the session, target and bytes waiting');
is(scalar(() = $t->error_log() =~ /mux session 1 unknown/g), 0,
   'mux: its frames still in flight are discarded without a line each');
is(scalar(grep { $_->[0] == 1 && $_->[1] == 3 } @$f), 1,
   'mux: and without an End frame each');
stop_client($pid);

# the control: a slow but steady reader is not ended, on a server with
# vmess_mux_stall_timeout 1s (20 times the reader's pause)
my $to_slow = random_bytes(8 * 1048576);
$start = time();
$pid = raw_mux(frame(1, 1, port => $slow) . frame(2, 1, port => $echo)
               . keeps(1, $to_slow) . frame(1, 3)
               . keeps(2, 'after the slow one'), 30, $t->port('control'));
my $slow_out = '';
while (time() - $start < 25) {
    $slow_out = read_file("$dir/slow.out");
    last if $slow_out;
    sleep 0.1;
}
diag(sprintf 'slow reader: %s after %.1f s', $slow_out =~ s/\s+$//r,
     time() - $start);
is($slow_out, length($to_slow) . ' ' . sha256_hex($to_slow) . "\n",
   'mux: a slow but steady target gets all its 8 MiB');
$f = [frames(read_file("$dir/out$run"))];
is(data_of($f, 2), 'after the slow one', 'mux: and the other one echoes');
my $stalls = () = $t->error_log() =~ /upstream took no byte/g;
is($stalls, 1, 'mux: the slow reader was not ended as stalled');
ok(!(grep { $_->[0] == 1 && $_->[1] == 3 && ($_->[2] & 2) } @$f),
   'mux: no End with error for the slow reader');
stop_client($pid);

# UDP: a client that never reads.  The bridge forwards the client's bytes
# to nginx and never reads nginx's answer (it closes both at the client's
# EOF); the target answers each datagram with 20,000 of 1,000 bytes.
my $bridge = $t->daemon('perl', '-MIO::Socket::INET', '-e', <<"BRIDGE");
my \$ls = IO::Socket::INET->new(LocalAddr => '127.0.0.1:0', Listen => 4)
    or die;
\$| = 1;
print "listening ", \$ls->sockport(), "\\n";
\$SIG{CHLD} = 'IGNORE';
while (my \$c = \$ls->accept()) {
    next if fork();
    my \$up = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1:@{[$t->port('vmess')]}') or die;
    while (sysread(\$c, my \$buf, 65536)) { syswrite(\$up, \$buf) }
    exit 0;
}
BRIDGE
my $flood = $t->daemon('perl', '-MIO::Socket::INET', '-MTime::HiRes=sleep',
                       '-e', <<'FLOOD');
my $s = IO::Socket::INET->new(Proto => 'udp', LocalAddr => '127.0.0.1:0')
    or die;
$| = 1;
print "listening ", $s->sockport(), "\n";
while (my $peer = $s->recv(my $d, 65536)) {
    for my $i (1 .. 20000) {
        $s->send(pack('N', $i) . ('d' x 996), 0, $peer);
        sleep 0.001 if $i % 50 == 0;
    }
}
FLOOD

my $drops = qr/vmess: udp datagrams dropped: (\d+) to the client \(client not reading\), (\d+) to the target \(send buffer full\), (\d+) to the target \(sent while it was resolved\), (\d+) over 2048 bytes/;

# runs one flooded session (sh command line of the client) for up to
# $hold s (the UDP command ends by itself after vmess_udp_timeout, a mux
# connection when the client is stopped); returns the counts of the
# $lines-th drop line and the workers' RSS growth at peak, KiB
sub flooded {
    my ($cmd, $lines, $hold) = @_;
    my $base = $t->workers_rss();
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        setpgrp(0, 0);
        exec('sh', '-c', $cmd) or exit 1;
    }
    my ($peak, @all) = (0);
    my $start = time();
    while (time() - $start < $hold) {
        my $r = $t->workers_rss();
        $peak = $r if $r > $peak;
        @all = $t->error_log() =~ /$drops/g;
        last if @all >= 4 * $lines;
        sleep 0.1;
    }
    stop_client($pid);
    $start = time();
    while (@all < 4 * $lines && time() - $start < 5) {
        sleep 0.1;
        @all = $t->error_log() =~ /$drops/g;
    }
    return ([@all[4 * ($lines - 1) .. 4 * $lines - 1]], $peak - $base);
}

my $bound = $t->sanitized() ? 32768 : 8192;
my %dropped;
for my $case (
    ['udp', "(echo datagram; sleep 30) | $t->{client} -s 127.0.0.1:$bridge "
     . "-u $alice -t 127.0.0.1:$flood --udp --timeout 30 raw"],
    ['mux', "(cat $dir/udp-mux; sleep 30) | $t->{client} "
     . "-s 127.0.0.1:$bridge -u $alice --command 3 --timeout 30 raw"])
{
    my ($name, $cmd) = @$case;
    # mux: the UDP sub-session ends after vmess_udp_timeout, then the
    # client is stopped and the bridge closes the connection
    write_file("$dir/udp-mux", frame(1, 1, port => $flood, udp => 1,
                                     data => 'datagram'));
    my ($n, $grew) = $name eq 'udp' ? flooded("$cmd >/dev/null 2>&1", 1, 30)
                                    : flooded("$cmd >/dev/null 2>&1", 2, 6);
    diag(sprintf '%s flood, client not reading: workers +%d KiB at peak; '
         . 'dropped %s', $name, $grew, join('/', map { $_ // '-' } @$n));
    ok(($n->[0] // 0) > 0, "$name: the drops to the client logged, by "
       . 'reason (' . ($n->[0] // 'no line') . ')');
    ok($grew < $bound, "$name: workers' RSS +$grew KiB (< $bound KiB)");
    $dropped{$name} = 0;
    $dropped{$name} += $_ // 0 for @$n;
}

$t->stop();
my $access = read_file("$dir/access.log");
my @udp = $access =~ /^ok\|udp\|(\d+)$/mg;
is("@udp", $dropped{udp},
   'udp: $vmess_udp_dropped in the access log equals the counts logged');
ok(scalar(grep { $_ == $dropped{mux} } $access =~ /^ok\|mux\|(\d+)$/mg),
   'mux: $vmess_udp_dropped in the access log equals the counts logged');
like($access, qr/^ok\|mux\|0$/m,
     '$vmess_udp_dropped is 0 for a mux session without drops');

$t->finish();
done_testing();
