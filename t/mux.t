#!/usr/bin/perl
# Mux.Cool (command 3): a v2ray 4.34 client with mux on carries 20
# parallel TCP sessions of 4 MiB each, sha256 checked; hand-built frames
# through our client's raw mode: TCP and UDP sub-sessions in one
# connection, unknown session, sub-session cap, unknown status, oversize
# metadata; access log with $vmess_mux_sessions.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use VMessTest qw/random_uuid read_file write_file/;

my $t = VMessTest->new();
my $alice = random_uuid();

$t->write_conf(<<'EOF' =~ s/ALICE/$alice/gr);
%%GLOBALS%%
events { worker_connections 1024; }
stream {
    vmess_zone vmess:1m;
    log_format vmess '$vmess_status|$vmess_command|$vmess_mux_sessions|'
                     '$bytes_received|$bytes_sent';
    server {
        listen 127.0.0.1:%%PORT_vmess%%;
        vmess on;
        vmess_user ALICE alice@example.com;
        vmess_allow_private on;
        proxy_pass $vmess_target;
        access_log %%TESTDIR%%/access.log vmess;
    }
    server {
        listen 127.0.0.1:%%PORT_capped%%;
        vmess on;
        vmess_user ALICE;
        vmess_allow_private on;
        vmess_mux_sessions 2;
        proxy_pass $vmess_target;
        access_log %%TESTDIR%%/capped.log vmess;
    }
}
EOF
$t->run();

my $echo = $t->target('echo');
my $uecho = $t->target('udp-echo');

# v2ray with mux, concurrency 8: 20 parallel sessions of 4 MiB
my $port = $t->v2ray_client(server => $t->port('vmess'), uuid => $alice,
                            security => 'aes-128-gcm',
                            target_host => '127.0.0.1',
                            target_port => $echo, mux => 8);
my %kids;
for my $i (1 .. 20) {
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        my $r = $t->plain_echo($port, 4 * 1048576, 120);
        print STDERR "session $i: $r\n" unless $r eq '1';
        POSIX::_exit($r eq '1' ? 0 : 1);
    }
    $kids{$pid} = $i;
}
my $good = 0;
for (keys %kids) {
    waitpid($_, 0);
    $good++ if $? == 0;
}
is($good, 20, 'v2ray mux: 20 parallel 4 MiB sessions echoed (sha256)');

# frames: New/Keep/End with data (VMESS-SPEC.md §8)
sub frame {
    my ($sid, $status, %o) = @_;
    my $opt = ($o{opt} // 0) | (defined $o{data} ? 1 : 0);
    my $meta = pack('nCC', $sid, $status, $opt);
    if ($status == 1) {
        $meta .= pack('Cn', $o{udp} ? 2 : 1, $o{port})
                 . pack('CC4', 1, 127, 0, 0, 1);
    }
    my $f = pack('n', length $meta) . $meta;
    $f .= pack('n', length $o{data}) . $o{data} if defined $o{data};
    return $f;
}

# parses the response body into a list of [sid, status, opt, data]
sub frames {
    my ($b) = @_;
    $b //= '';
    my @f;
    while (length $b >= 2) {
        my $ml = unpack('n', $b);
        last if length $b < 2 + $ml;
        my ($sid, $st, $opt) = unpack('nCC', substr($b, 2, 4));
        $b = substr($b, 2 + $ml);
        my $data = '';
        if ($opt & 1) {
            my $dl = unpack('n', $b);
            $data = substr($b, 2, $dl);
            $b = substr($b, 2 + $dl);
        }
        push @f, [$sid, $st, $opt, $data];
    }
    return @f;
}

# sends frames through our client (raw, command 3), waits, returns
# (response frames, status line)
my $n = 0;
sub raw_mux {
    my ($server, $bytes, $wait) = @_;
    $n++;
    my $dir = $t->dir();
    write_file("$dir/in$n", $bytes);
    system("(cat $dir/in$n; sleep " . ($wait // 1) . ") | $t->{client} "
           . "-s 127.0.0.1:$server -u $alice --command 3 raw "
           . ">$dir/out$n 2>$dir/err$n");
    return ([frames(read_file("$dir/out$n"))], read_file("$dir/err$n"));
}

sub data_of {
    my ($f, $sid) = @_;
    return join '', map { $_->[3] } grep { $_->[0] == $sid && $_->[1] == 2 }
        @$f;
}

my $vmess = $t->port('vmess');

# TCP and UDP sub-sessions in one connection, unknown session id
my ($f, $err) = raw_mux($vmess,
    frame(1, 1, port => $echo, data => 'hello ')
    . frame(2, 1, port => $uecho, udp => 1, data => 'datagram one')
    . frame(1, 2, data => 'world')
    . frame(2, 2, data => 'datagram two')
    . frame(9, 2, data => 'nobody')
    . frame(3, 4)
    . frame(1, 2, data => '!'));
is(data_of($f, 1), 'hello world!', 'tcp sub-session echoed') or diag($err);
is(join('|', map { $_->[3] } grep { $_->[0] == 2 && $_->[1] == 2 } @$f),
   'datagram one|datagram two', 'udp sub-session: datagrams kept whole');
ok((grep { $_->[0] == 9 && $_->[1] == 3 } @$f),
   'unknown session: End frame for it');
ok($t->wait_log(qr/vmess: mux session 9 unknown, ending it/),
   'unknown session logged');

# End closes only that sub-session
($f, $err) = raw_mux($vmess,
    frame(1, 1, port => $echo, data => 'one')
    . frame(2, 1, port => $echo, data => 'two')
    . frame(1, 3)
    . frame(2, 2, data => ' more'));
is(data_of($f, 2), 'two more', 'End of one sub-session, the other goes on')
    or diag($err);

# the sub-session cap: a third New is refused with End + Error
($f, $err) = raw_mux($t->port('capped'),
    frame(1, 1, port => $echo, data => 'a')
    . frame(2, 1, port => $echo, data => 'b')
    . frame(3, 1, port => $echo, data => 'c')
    . frame(1, 2, data => 'a2'));
ok((grep { $_->[0] == 3 && $_->[1] == 3 && $_->[2] == 2 } @$f),
   'cap: session 3 ended with error') or diag($err);
is(data_of($f, 1) . data_of($f, 2), 'aa2b', 'cap: sessions 1 and 2 work');
is(data_of($f, 3), '', 'cap: nothing for session 3');
ok($t->wait_log(qr/vmess: mux session limit 2 reached, session 3 refused/),
   'cap logged');

# unknown status and oversize metadata end the connection
($f, $err) = raw_mux($vmess,
    frame(1, 1, port => $echo, data => 'x') . pack('nnCC', 4, 1, 5, 0), 2);
ok($t->wait_log(
       qr/\[info\].*vmess: bad mux frame \(bad mux frame\), closing/),
   'unknown status: connection ended, logged');
my $before = () = $t->error_log() =~ /vmess: bad mux frame/g;
($f, $err) = raw_mux($vmess, pack('n', 600) . ("\0" x 600), 2);
my $after = () = $t->error_log() =~ /vmess: bad mux frame/g;
is($after, $before + 1, 'oversize metadata: connection ended, logged');

# other sessions still fine
($f, $err) = raw_mux($vmess, frame(1, 1, port => $echo, data => 'still'));
is(data_of($f, 1), 'still', 'server still serves after bad frames');

$t->stop();

my @log = split /\n/, read_file($t->dir() . '/access.log');
my $subs = 0;
$subs += (split /\|/)[2] for grep { /^ok\|mux\|/ } @log;
my @v2 = grep { /^ok\|mux\|/ } @log;
ok(@v2 >= 3, 'access log: one line per mux connection');
SKIP: {
    # a single process (valgrind) quits at once: v2ray's idle mux
    # connection is not closed gracefully, so it is never logged
    skip 'single process: no graceful quit', 1 if $t->single_process();
    # v2ray 20; then 2, 2, 1 (bad status after a New), 0, 1
    is($subs, 20 + 2 + 2 + 1 + 0 + 1,
       'access log: $vmess_mux_sessions adds up to the sub-sessions opened');
}
like(read_file($t->dir() . '/capped.log'), qr/^ok\|mux\|2\|\d+\|\d+$/m,
     'capped: 2 sub-sessions logged');

$t->finish();
done_testing();
