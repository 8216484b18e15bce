#!/usr/bin/perl
# vmess_httpupgrade (issue #18): the HTTP/1.1 upgrade handshake that Xray,
# sing-box and v2fly 5 clients send, then raw VMess bytes.
# Our client (vmess-client --httpupgrade) moves 8 MiB each way, sha256
# compared, in each request shape: sing-box's (no key), Xray's (a
# Sec-WebSocket-Key, whose accept must come back) and Xray's early data
# (the VMess header sent with the request, before the 101); on a plain
# port and through TLS on a port that also serves WebSocket, raw VMess and
# a web site.  A hand-built bad-handshake table: each one's exact outcome
# (the fallback gets the exact bytes, or the connection is closed without
# a byte, and the log line).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA qw/sha256_hex/;
use Time::HiRes qw/sleep time/;
use VMessTest qw/random_uuid read_file write_file/;

my $t = VMessTest->new();
my $dir = $t->dir();
my $alice = random_uuid();

VMessTest::make_cert($dir, 'www.example.test');

mkdir "$dir/html";
my $page = "<html><body>site " . random_uuid() . "</body></html>\n";
write_file("$dir/html/index.html", $page);

my $fallback_log = "$dir/fallback.log";
my $recorder = $t->recorder($fallback_log);

$t->write_conf(<<'EOF' =~ s/ALICE/$alice/gr =~ s/RECORDER/$recorder/r);
%%GLOBALS%%
events { worker_connections 1024; }
http {
    access_log off;
    server {
        listen 127.0.0.1:%%PORT_site%%;
        root %%TESTDIR%%/html;
    }
}
stream {
    vmess_zone vmess:1m;
    log_format vmess '$vmess_status $vmess_user $vmess_target';
    server {
        listen 127.0.0.1:%%PORT_plain%%;
        vmess on;
        vmess_user ALICE alice;
        vmess_allow_private on;
        vmess_httpupgrade /up host=hu.test;
        vmess_fallback 127.0.0.1:RECORDER;
        proxy_pass $vmess_target;
        access_log %%TESTDIR%%/plain.log vmess;
    }
    server {
        listen 127.0.0.1:%%PORT_closing%%;
        vmess on;
        vmess_user ALICE alice;
        vmess_httpupgrade /up;
        proxy_pass $vmess_target;
    }
    server {
        listen 127.0.0.1:%%PORT_tls%% ssl;
        ssl_certificate %%TESTDIR%%/server.crt;
        ssl_certificate_key %%TESTDIR%%/server.key;
        vmess on;
        vmess_user ALICE alice;
        vmess_allow_private on;
        vmess_websocket /ray;
        vmess_httpupgrade /up;
        vmess_fallback 127.0.0.1:%%PORT_site%%;
        proxy_pass $vmess_target;
        access_log %%TESTDIR%%/tls.log vmess;
    }
}
EOF
$t->run();

my $plain = $t->port('plain');
my $echo = $t->target('echo');
my $n = 8 * 1024 * 1024;

sub client_echo {
    my ($port, @opts) = @_;
    my ($rc, $out) = $t->client('-s', "127.0.0.1:$port", '-u', $alice,
                                '-t', "127.0.0.1:$echo", '-n', $n, @opts,
                                'echo');
    return $rc == 0 && $out =~ /^echo ok bytes=$n sha256=[0-9a-f]{64} /m
        ? 1 : $out;
}

is(client_echo($plain, '--httpupgrade', '/up', '--host', 'hu.test'), 1,
   'sing-box shape: 8 MiB each way');
is(client_echo($plain, '--httpupgrade', '/up?ed=2048', '--host',
               'hu.test:8443', '--upgrade-key'), 1,
   'Xray shape (a key, its accept checked; a query, a port in Host)');
is(client_echo($plain, '--httpupgrade', '/up', '--host', 'hu.test',
               '--upgrade-key', '--early'), 1,
   'Xray early data: the VMess header before the 101');

# one TLS port: HTTPUpgrade, raw VMess and the site
my $bridge = $t->tls_bridge($t->port('tls'), 'www.example.test');
is(client_echo($bridge, '--httpupgrade', '/up'), 1,
   'TLS: HTTPUpgrade, 8 MiB each way');
is(client_echo($bridge), 1, 'TLS, same port: raw VMess, 8 MiB each way');
my $tls = $t->port('tls');
my $got = `curl -sS --max-time 10 --cacert $dir/ca.crt --resolve www.example.test:$tls:127.0.0.1 https://www.example.test:$tls/ 2>&1`;
is(sha256_hex($got), sha256_hex($page), 'TLS, same port: curl gets the site')
    or diag($got);

# what a request gets: (bytes back, closed by the server)
sub raw {
    my ($port, $bytes, $timeout) = @_;
    return $t->exchange($port, $bytes, $timeout // 1);
}

sub request {
    my (%h) = @_;
    my $r = ($h{line} // "GET /up HTTP/1.1") . "\r\n";
    $r .= "Host: " . ($h{host} // 'hu.test') . "\r\n";
    $r .= "Upgrade: " . ($h{upgrade} // 'websocket') . "\r\n"
        unless $h{no_upgrade};
    $r .= "Connection: " . ($h{connection} // 'Upgrade') . "\r\n";
    $r .= $h{extra} // '';
    return $r . "\r\n";
}

# the 101s, exactly
my ($back) = raw($plain, request(), 0.5);
is($back, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
          . "Connection: Upgrade\r\n\r\n", 'the 101 without a key');
($back) = raw($plain, request(
    extra => "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             . "Sec-WebSocket-Version: 13\r\n"
             . "Sec-WebSocket-Protocol: c29tZSBieXRlcw\r\n"), 0.5);
is($back, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
          . "Connection: Upgrade\r\n"
          . "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
   'the 101 with a key: its accept, no early data protocol echoed');

# bad handshakes: the fallback gets the exact bytes, one log line each
my @bad = (
    ['no websocket upgrade', request(no_upgrade => 1)],
    ['no websocket upgrade', request(upgrade => 'h2c')],
    ['incomplete handshake', request(connection => 'keep-alive')],
    ['other host', request(host => 'other.test')],
    ['bad request line', request(line => 'GET /up HTTP/1.0')],
    ['bad request line', request(line => 'GET /up?a b HTTP/1.1')],
    ['bad header line', request(extra => "no colon here\r\n")],
    ['request header too large',
     request(extra => 'X-Pad: ' . ('a' x 9000) . "\r\n")],
);
# no request for the path: raw VMess that does not authenticate
my @vmess = (
    ['POST', request(line => 'POST /up HTTP/1.1')],
    ['another path', request(line => 'GET /upload HTTP/1.1')],
    ['random bytes', join('', map { chr int rand 256 } 1 .. 100)],
);

for my $case (@bad, @vmess) {
    my ($b, $closed) = raw($plain, $case->[1]);
    is($b, '', "$case->[0]: no answer");
}
sleep 0.5;
my %fb;
$fb{$_}++ for split /\n/, read_file($fallback_log);
for my $case (@bad, @vmess) {
    my $b = $case->[1];
    my $line = sprintf '%d %s', length $b, unpack('H*', substr($b, 0, 64));
    ok($fb{$line}, "$case->[0]: the fallback got the exact bytes");
}
my $log = $t->error_log();
my %want;
$want{$_->[0]}++ for @bad;
for my $reason (sort keys %want) {
    my $count = () = $log =~ /\[info\] .*vmess httpupgrade: \Q$reason\E, fallback to 127\.0\.0\.1:$recorder/g;
    is($count, $want{$reason}, "$reason: logged $want{$reason} time(s)");
}
my $unknown = () = $log =~ /\[info\] .*vmess: unknown user, fallback to 127\.0\.0\.1:$recorder/g;
is($unknown, scalar @vmess, 'no request for the path: logged as unknown users');

# after the 101 the site cannot take the bytes: drained, not sent to it
my $junk = join '', map { chr int rand 256 } 1 .. 64;
my ($b101, $closed) = raw($plain, request() . $junk, 3);
like($b101, qr/^HTTP\/1\.1 101 Switching Protocols\r\n.*\r\n\r\n\z/s,
     'junk after the 101: only the 101 came back');
ok($t->wait_log(qr/\[info\] .*vmess: unknown user, drain \d+ bytes/),
   'junk after the 101: drained');
sleep 0.3;
%fb = ();
$fb{$_}++ for split /\n/, read_file($fallback_log);
my $after = request() . $junk;
ok(!$fb{sprintf '%d %s', length $after, unpack('H*', substr($after, 0, 64))},
   'junk after the 101: the fallback got nothing');

# no fallback: a bad handshake is closed without a byte
my ($none, $shut) = raw($t->port('closing'), request(no_upgrade => 1), 3);
is($none, '', 'no fallback: nothing back');
ok($shut, 'no fallback: closed');
ok($t->wait_log(qr/\[info\] .*vmess httpupgrade: no websocket upgrade, closing/),
   'no fallback: logged');

$t->stop();
my $plain_log = read_file("$dir/plain.log");
my $oks = () = $plain_log =~ /^ok alice 127\.0\.0\.1:$echo$/mg;
is($oks, 3, 'plain port: the three sessions logged ok');
my $tls_log = read_file("$dir/tls.log");
$oks = () = $tls_log =~ /^ok alice 127\.0\.0\.1:$echo$/mg;
is($oks, 2, 'TLS port: both sessions logged ok') or diag($tls_log);

$t->finish();
done_testing();
