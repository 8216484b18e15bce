#!/usr/bin/perl
# The destination policy, one table of refused destinations (IPv4-mapped,
# -compatible and NAT64 IPv6, unspecified, loopback, link-local, private,
# ULA, multicast, broadcast, port 0, names resolving to any of them in
# either order, A or AAAA) against every path: the TCP command, the UDP
# command, Mux.Cool TCP and UDP sub-sessions, a UDP sub-session's Keep
# frames that carry an address of their own, the relay (vmess on +
# proxy_vmess) and the relay's proxy_vmess_target.  Each row must be
# refused with its log line while an allowed target works on the same
# path; vmess_allow / vmess_deny order; nginx -t errors for bad CIDRs.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw/sleep/;
use VMessTest qw/random_uuid read_file write_file/;

my $t = VMessTest->new();
my $alice = random_uuid();
my $ok_host = '127.0.0.77';     # the one allowed target address

my $echo = $t->daemon($t->{client}, 'serve-echo', "$ok_host:0");
my $uecho = $t->daemon($t->{client}, 'serve-udp-echo', "$ok_host:0");

# a UDP port on every local address: a datagram sent to a refused row
# would arrive here
my $trap = IO::Socket::INET->new(LocalAddr => "0.0.0.0:" . $t->port("trap"),
                                 Proto => "udp")
    or die "udp: $!";
$trap->blocking(0);
my $tport = $trap->sockport();

my %dns = (
    'ok.test'             => $ok_host,
    'loop.test'           => '127.0.0.1',
    'ten.test'            => '10.1.2.3',
    'first-private.test'  => ['10.0.0.1', $ok_host],
    'second-private.test' => [$ok_host, '10.0.0.1'],
    'aaaa-private.test'   => [$ok_host, 'fd00::1'],
    'a-private.test'      => ['192.168.0.1', '2001:db8::1'],
    'mapped.test'         => ['::ffff:127.0.0.1'],
    'linklocal.test'      => ['fe80::1'],
);
$t->dns(%dns);

# [destination as the client sends it, address the log names]
my @rows = (
    (map { [$_, $_] } qw/0.0.0.0 127.0.0.1 127.255.255.254 10.0.0.1
        172.16.0.1 192.168.1.1 100.64.0.1 169.254.169.254 224.0.0.1
        239.255.255.250 240.0.0.1 255.255.255.255/),
    (map { ["[$_]", "[$_]"] } qw/:: ::1 ::ffff:127.0.0.1 ::127.0.0.1
        ::ffff:10.0.0.1 64:ff9b::7f00:1 64:ff9b::a9fe:a9fe fc00::1
        fd12:3456::1 fe80::1 febf::1 ff02::1 ff0e::1/),
    ['loop.test', '127.0.0.1'],
    ['ten.test', '10.1.2.3'],
    ['first-private.test', '10.0.0.1'],
    ['second-private.test', '10.0.0.1'],
    ['aaaa-private.test', '[fd00::1]'],
    ['a-private.test', '192.168.0.1'],
    ['mapped.test', '[::ffff:127.0.0.1]'],
    ['linklocal.test', '[fe80::1]'],
);
my @literal = grep { $_->[0] !~ /\.test$/ } @rows;

my ($n, %fwd) = (0);
my $listen = '';
for my $r (@literal) {
    my $name = 'fwd' . $n++;
    $fwd{$r->[0]} = $name;
    $listen .= "        listen 127.0.0.1:%%PORT_$name%%;\n";
}
my $map = join '',
    map { "        %%PORT_$fwd{$_->[0]}%% \"$_->[0]:$tport\";\n" } @literal;

$t->write_conf(<<"EOF");
%%GLOBALS%%
events { worker_connections 1024; }
stream {
    vmess_zone vmess:1m;
    resolver 127.0.0.1:%%PORT_dns%% valid=1s;
    log_format st '\$server_port \$vmess_status';

    map \$server_port \$row_target {
$map        default $ok_host:$echo;
    }

    server {
        listen 127.0.0.1:%%PORT_vmess%%;
        vmess on;
        vmess_user $alice;
        vmess_allow $ok_host;
        proxy_pass \$vmess_target;
        access_log %%TESTDIR%%/vmess.log st;
    }

    # a relay whose clients' destinations are checked before the exit
    server {
        listen 127.0.0.1:%%PORT_relay%%;
        vmess on;
        vmess_user $alice;
        vmess_allow $ok_host;
        proxy_vmess on;
        proxy_vmess_user $alice;
        proxy_pass 127.0.0.1:%%PORT_exit%%;
        access_log %%TESTDIR%%/relay.log st;
    }

    # a relay whose proxy_vmess_target is one row per listening port
    server {
$listen        vmess on;
        vmess_user $alice;
        vmess_allow $ok_host;
        proxy_vmess on;
        proxy_vmess_user $alice;
        proxy_vmess_target \$row_target;
        proxy_pass 127.0.0.1:%%PORT_exit%%;
    }

    # the exit lets everything through: only the relay's policy decides
    server {
        listen 127.0.0.1:%%PORT_exit%%;
        vmess on;
        vmess_user $alice;
        vmess_allow_private on;
        proxy_pass \$vmess_target;
        access_log %%TESTDIR%%/exit.log st;
    }

    # rules in order, the first match decides
    server {
        listen 127.0.0.1:%%PORT_rules%%;
        vmess on;
        vmess_user $alice;
        vmess_allow_private on;
        vmess_deny 127.0.0.78;
        vmess_allow 127.0.0.0/8;
        vmess_deny all;
        proxy_pass \$vmess_target;
    }
}
EOF
$t->run();

sub denials {
    my ($text) = @_;
    my @m = $t->error_log() =~ /vmess: destination \Q$text\E:\d+ denied/g;
    return scalar @m;
}

# one refused session: client exit 2, and its log line (the server's
# clock and the log are a little behind the client's exit)
sub refused {
    my ($what, $log_re, @args) = @_;
    my $before = () = $t->error_log() =~ /$log_re/g;
    my ($rc, $out) = $t->client('-u', $alice, '-n', 10, '--timeout', 5,
                                @args, 'raw');
    my $after = $before;
    for (1 .. 40) {
        $after = () = $t->error_log() =~ /$log_re/g;
        last if $after > $before;
        sleep 0.05;
    }
    ok($rc == 2 && $after == $before + 1, $what)
        or diag("exit $rc, log lines $before -> $after: $out");
}

my $vmess = '127.0.0.1:' . $t->port('vmess');
my $relay = '127.0.0.1:' . $t->port('relay');

for my $path (['tcp', $vmess], ['udp', $vmess, '--udp'],
              ['relay', $relay])
{
    my ($name, $server, @opt) = @$path;
    my $port = $name eq 'udp' ? $uecho : $echo;
    for my $r (@rows) {
        refused("$name: $r->[0] refused",
                qr/vmess: destination \Q$r->[1]\E:$port denied/,
                '-s', $server, @opt, '-t', "$r->[0]:$port");
    }
    refused("$name: port 0 refused",
            qr/vmess: destination \Q$ok_host\E:0 denied/,
            '-s', $server, @opt, '-t', "$ok_host:0");

    for my $target ("$ok_host:$port", "ok.test:$port") {
        my ($rc, $out) = $name eq 'udp'
            ? $t->client('-s', $server, '-u', $alice, '-t', $target,
                         '--udp', '-n', 4096, 'echo')
            : $t->client('-s', $server, '-u', $alice, '-t', $target,
                         '-n', 65536, 'echo');
        is($rc, 0, "$name: allowed $target echoed") or diag($out);
    }
}

# proxy_vmess_target: the inbound target is allowed, the outbound one is
# the row of the port connected to
for my $r (@literal) {
    my $port = $t->port($fwd{$r->[0]});
    # ngx_inet_addr() cannot tell 255.255.255.255 from an error
    my $why = $r->[0] eq '255.255.255.255' ? 'invalid ' : '';
    my $end = $why ? '' : ' denied';
    refused("proxy_vmess_target $r->[0] refused",
            qr/vmess: ${why}proxy_vmess_target "\Q$r->[0]\E:$tport"$end/,
            '-s', "127.0.0.1:$port", '-t', "$ok_host:$echo");
}

# Mux.Cool: every row a sub-session of one connection, next to an allowed
# one; refused ones get End with the error option
sub addr {
    my ($host) = @_;
    $host =~ s/^\[(.*)\]$/$1/;
    return pack('CC4', 1, split /\./, $host) if $host =~ /^[\d.]+$/;
    if ($host =~ /:/) {
        require Socket;
        return pack('C', 3) . Socket::inet_pton(Socket::AF_INET6(), $host);
    }
    return pack('CC', 2, length $host) . $host;
}

sub frame {
    my ($sid, $status, %o) = @_;
    my $opt = defined $o{data} ? 1 : 0;
    my $meta = pack('nCC', $sid, $status, $opt);
    $meta .= pack('Cn', $o{udp} ? 2 : 1, $o{port}) . addr($o{host})
        if defined $o{host};
    my $f = pack('n', length $meta) . $meta;
    $f .= pack('n', length $o{data}) . $o{data} if defined $o{data};
    return $f;
}

sub frames {
    my ($b) = @_;
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

my $runs = 0;
sub raw_mux {
    my ($bytes) = @_;
    my $dir = $t->dir();
    $runs++;
    write_file("$dir/mux$runs", $bytes);
    system("(cat $dir/mux$runs; sleep 2) | $t->{client} -s $vmess -u $alice"
           . " --command 3 raw >$dir/mux$runs.out 2>$dir/mux$runs.err");
    return frames(read_file("$dir/mux$runs.out"));
}

for my $udp (0, 1) {
    my $kind = $udp ? 'udp' : 'tcp';
    my $port = $udp ? $uecho : $echo;
    my $before = join ',', map { denials($_->[1]) } @rows;
    my $zero = denials($ok_host);
    my $bytes = frame(1, 1, host => $ok_host, port => $port, udp => $udp,
                      data => 'allowed');
    my $sid = 2;
    for my $r (@rows) {
        $bytes .= frame($sid++, 1, host => $r->[0], port => $port,
                        udp => $udp, data => 'refused');
    }
    $bytes .= frame($sid, 1, host => $ok_host, port => 0, udp => $udp,
                    data => 'refused');
    my @f = raw_mux($bytes);
    my %ended = map { $_->[0] => 1 } grep { $_->[1] == 3 && $_->[2] & 2 } @f;
    my %data = map { $_->[0] => 1 } grep { $_->[1] == 2 } @f;
    is(join('', map { $_->[3] } grep { $_->[0] == 1 && $_->[1] == 2 } @f),
       'allowed', "mux $kind: allowed sub-session echoed");
    my @bad = grep { !$ended{$_} || $data{$_} } 2 .. $sid;
    ok(!@bad, "mux $kind: all " . ($sid - 1) . ' refused rows ended with'
       . ' an error, no data') or diag("sessions @bad");
    my @grew = map { denials($_->[1]) } @rows;
    my @was = split /,/, $before;
    my @miss = map { $rows[$_][0] } grep { $grew[$_] <= $was[$_] } 0 .. $#rows;
    ok(!@miss && denials($ok_host) > $zero, "mux $kind: each row logged")
        or diag("not logged: @miss");
}

# a UDP sub-session's Keep frames may carry an address (XUDP style): it is
# never used, every datagram goes to the New frame's checked target
{
    my $bytes = frame(1, 1, host => $ok_host, port => $uecho, udp => 1,
                      data => 'first');
    my $i = 0;
    for my $r (@rows) {
        my $meta = pack('nCC', 1, 2, 1) . pack('Cn', 2, $tport)
            . addr($r->[0]);
        my $d = 'keep' . $i++;
        $bytes .= pack('n', length $meta) . $meta . pack('n', length $d) . $d;
    }
    my @f = raw_mux($bytes);
    my @got = map { $_->[3] } grep { $_->[0] == 1 && $_->[1] == 2 } @f;
    is(scalar @got, 1 + @rows, 'mux udp: every Keep datagram echoed by'
       . ' the New target') or diag("@got");
    my $buf;
    my $trapped = 0;
    $trapped++ while defined $trap->recv($buf, 4096) && length $buf;
    is($trapped, 0, 'mux udp: no datagram reached a Keep frame\'s address');
}

# rules: deny 127.0.0.78, allow 127/8, deny all (over allow_private on)
my $rules = '127.0.0.1:' . $t->port('rules');
my ($rc, $out) = $t->client('-s', $rules, '-u', $alice,
                            '-t', "$ok_host:$echo", '-n', 1000, 'echo');
is($rc, 0, 'rules: 127.0.0.77 allowed by 127.0.0.0/8') or diag($out);
for my $r (['127.0.0.78', '127.0.0.78'],
           ['[::ffff:127.0.0.78]', '[::ffff:127.0.0.78]'],
           ['192.0.2.1', '192.0.2.1'], ['[2001:db8::1]', '[2001:db8::1]'])
{
    refused("rules: $r->[0] refused",
            qr/vmess: destination \Q$r->[1]\E:$echo denied/,
            '-s', $rules, '-t', "$r->[0]:$echo");
}

# the exit authenticated only the relays' allowed sessions (a refused
# proxy_vmess_target closes its connection to the exit before a byte)
my @exit = split /\n/, read_file($t->dir() . '/exit.log');
is(scalar(grep { / ok$/ } @exit), 2, 'exit: only the 2 allowed sessions');
is(scalar(grep { !/ (ok|-)$/ } @exit), 0, 'exit: nothing else authenticated')
    or diag("@exit");

$t->finish();

# nginx -t: bad addresses and networks, with file:line
for my $bad ('10.0.0.300', '10.0.0.0/33', 'fe80::/129', 'example.com') {
    my $c = VMessTest->new();
    $c->write_conf(<<"EOF");
%%GLOBALS%%
events { }
stream {
    vmess_zone vmess:1m;
    server {
        listen 127.0.0.1:%%PORT_a%%;
        vmess on;
        vmess_user $alice;
        vmess_deny $bad;
        proxy_pass \$vmess_target;
    }
}
EOF
    my @conf = split /\n/, read_file($c->dir() . '/nginx.conf');
    my ($line) = grep { $conf[$_ - 1] =~ /vmess_deny/ } 1 .. @conf;
    my ($st, $msg) = $c->test_conf();
    my $want = qr/invalid address or network "\Q$bad\E" in \S+:$line$/m;
    ok($st != 0 && $msg =~ $want,
       "nginx -t: vmess_deny $bad rejected with file:line") or diag($msg);
}

done_testing();
