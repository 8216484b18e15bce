#!/usr/bin/perl
# vmess_websocket on a plain port: handshake checks (bad handshakes go to
# vmess_fallback byte for byte, each logged), frame checks (bad frames
# close, logged), and a WebSocket bridge of our own between a real v2ray
# 4.34 client (network tcp) and nginx: early data in
# Sec-WebSocket-Protocol, every message fragmented, pings in between whose
# pongs must come back; 4 MiB each way, sha256 compared.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA qw/sha1/;
use IO::Socket::INET;
use IO::Select;
use MIME::Base64 qw/encode_base64/;
use Time::HiRes qw/sleep time/;
use VMessTest qw/random_uuid read_file write_file/;

my $t = VMessTest->new();
my $dir = $t->dir();
my $alice = random_uuid();

my $fallback_log = "$dir/fallback.log";
my $recorder = $t->recorder($fallback_log);

$t->write_conf(<<'EOF' =~ s/ALICE/$alice/gr =~ s/RECORDER/$recorder/r);
%%GLOBALS%%
events { worker_connections 1024; }
stream {
    vmess_zone vmess:1m;
    log_format vmess '$vmess_status $vmess_user $vmess_target';
    server {
        listen 127.0.0.1:%%PORT_plain%%;
        vmess on;
        vmess_user ALICE alice;
        vmess_allow_private on;
        vmess_websocket /ray max_frame=64k;
        vmess_fallback 127.0.0.1:RECORDER;
        proxy_pass $vmess_target;
        access_log %%TESTDIR%%/plain.log vmess;
    }
}
EOF
$t->run();
my $plain = $t->port('plain');

sub raw {
    my ($bytes, $timeout) = @_;
    return $t->exchange($plain, $bytes, $timeout);
}

sub accept_of {
    return encode_base64(sha1($_[0] . '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'),
                         '');
}

sub request {
    my (%h) = @_;
    my $r = "GET " . ($h{path} // '/ray') . " HTTP/1.1\r\nHost: x.test\r\n";
    $r .= "Upgrade: websocket\r\n" unless $h{no_upgrade};
    $r .= "Connection: keep-alive, Upgrade\r\n";
    $r .= "Sec-WebSocket-Key: " . ($h{key} // 'dGhlIHNhbXBsZSBub25jZQ==')
          . "\r\n";
    $r .= "Sec-WebSocket-Version: " . ($h{version} // 13) . "\r\n";
    $r .= $h{extra} // '';
    return $r . "\r\n";
}

is(accept_of('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=',
   'RFC 6455 example accept value');

# bad handshakes: fallback with the exact bytes, one log line each
my %bad = (
    'bad Sec-WebSocket-Key' => request(key => 'c2hvcnQ='),
    'unsupported Sec-WebSocket-Version' => request(version => 8),
    'no websocket upgrade' => request(no_upgrade => 1),
    'request header too large' =>
        request(extra => "X-Pad: " . ('a' x 9000) . "\r\n"),
);

# not a request for the path: read as raw VMess, which fails to
# authenticate and goes to the fallback as on a server without WebSocket
my %not_ws = (
    'random bytes' => join('', map { chr int rand 256 } 1 .. 100),
    'another path' => request(path => '/rayx'),
    'a page' => "GET /index.html HTTP/1.1\r\nHost: x.test\r\n\r\n",
);

for my $reason (sort(keys %bad), sort(keys %not_ws)) {
    my ($got, $closed) = raw($bad{$reason} // $not_ws{$reason}, 1);
    is($got, '', "$reason: no 101");
}

$t->wait_log(qr/request header too large/);
sleep 0.5;
my %fb = map { $_ => 1 } split /\n/, read_file($fallback_log);
for my $reason (sort(keys %bad), sort(keys %not_ws)) {
    my $b = $bad{$reason} // $not_ws{$reason};
    my $line = sprintf '%d %s', length $b, unpack('H*', substr($b, 0, 64));
    ok($fb{$line}, "$reason: the site got the exact bytes");
}
for my $reason (sort keys %bad) {
    like($t->error_log(),
         qr/\[info\] .*vmess websocket: \Q$reason\E, fallback to 127\.0\.0\.1:$recorder/,
         "$reason: logged");
}
my $unknown = () = $t->error_log()
    =~ /\[info\] .*vmess: unknown user, fallback to 127\.0\.0\.1:$recorder/g;
is($unknown, scalar keys %not_ws,
   'not for the path: each one logged as an unknown VMess user');

# the 101, and bad frames after it: clean close, logged
my $mask = "\x01\x02\x03\x04";
my %frames = (
    'frame of 65537 bytes too large' =>
        "\x82\xff" . pack('Q>', 65537) . $mask,
    'unmasked client frame' => "\x82\x05hello",
    'text frame' => "\x81\x85${mask}abcde",
    'bad control frame' => "\x09\xfe" . pack('n', 200) . $mask,
);

for my $reason (sort keys %frames) {
    my ($got, $closed) = raw(request() . $frames{$reason});
    like($got, qr{^HTTP/1\.1 101 Switching Protocols\r\n.*Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n}s,
         "$reason: 101 with the right accept");
    ok($closed, "$reason: connection closed");
    like($t->error_log(),
         qr/\[info\] .*vmess websocket: \Q$reason\E, closing/,
         "$reason: logged");
}

# the bridge: v2ray (tcp) -> bridge (WebSocket) -> nginx -> echo
my $stats = "$dir/bridge.stats";
my $bridge = bridge($plain, $stats);
my $echo = $t->target('echo');
my $port = $t->v2ray_client(server => $bridge, uuid => $alice,
                            security => 'aes-128-gcm',
                            target_host => '127.0.0.1',
                            target_port => $echo);
is($t->plain_echo($port, 4 * 1024 * 1024), 1,
   'early data, fragments, pings: 4 MiB each way');
sleep 0.5;
my $st = read_file($stats);
like($st, qr/^accept ok early (\d+) pings (\d+) pongs \2$/m,
     'bridge: right accept, every ping answered') or diag($st);
my ($early, $pings) = $st =~ /early (\d+) pings (\d+)/;
ok(($early // 0) > 16, "early data carried the VMess header ($early bytes)");
ok(($pings // 0) > 3, "pings sent ($pings)");

$t->stop();
like(read_file("$dir/plain.log"), qr/^ok alice 127\.0\.0\.1:$echo$/m,
     'bridged session logged');

$t->finish();
done_testing();


sub bridge {
    my ($server, $stats) = @_;
    my $ls = IO::Socket::INET->new(LocalAddr => '127.0.0.1:0', Listen => 8,
                                   ReuseAddr => 1) or die "listen: $!";
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        $SIG{CHLD} = 'IGNORE';
        while (my $c = $ls->accept()) {
            next if fork();
            bridge_one($c, $server, $stats);
            exit 0;
        }
        exit 0;
    }
    push @{$t->{daemons}}, $pid;
    return $ls->sockport();
}

sub frame {
    my ($op, $payload) = @_;
    my $len = length $payload;
    my $h = chr($op);
    if ($len < 126) {
        $h .= chr(0x80 | $len);
    } elsif ($len < 65536) {
        $h .= chr(0x80 | 126) . pack('n', $len);
    } else {
        $h .= chr(0x80 | 127) . pack('Q>', $len);
    }
    my $m = pack('N', int rand 4294967296);
    my $k = substr($m x (int($len / 4) + 1), 0, $len);
    return $h . $m . ($payload ^ $k);
}

sub bridge_one {
    my ($c, $server, $stats) = @_;
    my ($first, $buf) = ('', '');
    my $sel = IO::Select->new($c);
    $sel->can_read(5);
    while ($sel->can_read(0.2) && length $first < 4000) {
        last unless $c->sysread($buf, 4000 - length $first);
        $first .= $buf;
    }
    my $ed = substr($first, 0, 1200, '');
    my $b64 = encode_base64($ed, '') =~ tr{+/}{-_}r =~ s/=+$//r;
    my $key = encode_base64(join('', map { chr int rand 256 } 1 .. 16), '');

    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$server")
        or exit 1;
    $s->syswrite(request(key => $key,
                         extra => "Sec-WebSocket-Protocol: $b64\r\n"));
    my $resp = '';
    while ($resp !~ /\r\n\r\n/) {
        $s->sysread($buf, 1) or exit 1;
        $resp .= $buf;
    }
    my $ok = $resp =~ /^HTTP\/1\.1 101 /
        && index($resp, 'Sec-WebSocket-Accept: ' . accept_of($key) . "\r\n")
           >= 0
        && index($resp, "Sec-WebSocket-Protocol: $b64\r\n") >= 0;

    my ($pings, $pongs, $in, $n) = (0, 0, '', 0);
    # rewritten as things happen: the bridge may be killed at any time
    my $report = sub {
        open my $fh, '>', "$stats.tmp" or exit 1;
        printf $fh "accept %s early %d pings %d pongs %d\n",
            $ok ? 'ok' : 'bad', length $ed, $pings, $pongs;
        close $fh;
        rename "$stats.tmp", $stats;
    };
    my $send = sub {
        my ($data) = @_;
        # every message in up to 3 fragments, a ping between two of them
        my @parts;
        while (length $data) {
            push @parts, substr($data, 0, 1 + int rand(length $data), '');
            last if @parts == 2;
        }
        push @parts, $data if length $data;
        for my $i (0 .. $#parts) {
            my $op = ($i == 0 ? 2 : 0) | ($i == $#parts ? 0x80 : 0);
            $s->syswrite(frame($op, $parts[$i]));
            if ($i == 0 && $n++ % 3 == 0) {
                $pings++;
                $s->syswrite(frame(0x89, "ping $pings"));
            }
        }
    };
    $send->($first) if length $first;

    my $all = IO::Select->new($c, $s);
    LOOP: while (1) {
        for my $h ($all->can_read(30)) {
            if ($h == $c) {
                my $k = $c->sysread($buf, 65536);
                last LOOP unless $k;
                $send->($buf);
                next;
            }
            my $k = $s->sysread($buf, 65536);
            last LOOP unless $k;
            $in .= $buf;
            while (length $in >= 2) {
                my ($b0, $b1) = unpack('CC', $in);
                my ($len, $off) = ($b1 & 0x7f, 2);
                if ($len == 126) {
                    last if length $in < 4;
                    ($len, $off) = (unpack('n', substr($in, 2, 2)), 4);
                }
                last if length $in < $off + $len;
                my $p = substr($in, $off, $len);
                substr($in, 0, $off + $len, '');
                my $op = $b0 & 0x0f;
                if ($op == 2) {
                    $c->syswrite($p);
                } elsif ($op == 0xa) {
                    $pongs++ if $p eq "ping " . ($pongs + 1);
                    $report->();
                } elsif ($op == 8) {
                    $s->syswrite(frame(0x88, $p));
                    last LOOP;
                }
            }
        }
    }
    $report->();
}
