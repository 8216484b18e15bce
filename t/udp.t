#!/usr/bin/perl
# The UDP command (2): our client with each security, a v2ray 4.34 client
# through dokodemo-door network udp, plain and inside Mux.Cool, datagrams
# over 2048 bytes dropped and counted, the idle timeout, access log.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Digest::SHA qw/sha256_hex/;
use IO::Select;
use IO::Socket::INET;
use Test::More;
use VMessTest qw/random_uuid/;

my $t = VMessTest->new();
my $alice = random_uuid();

$t->write_conf(<<'EOF' =~ s/ALICE/$alice/r);
%%GLOBALS%%
events { worker_connections 1024; }
stream {
    vmess_zone vmess:1m;
    log_format vmess '$vmess_status|$vmess_command|$vmess_target|'
                     '$vmess_security|$vmess_mux_sessions|$bytes_sent';
    server {
        listen 127.0.0.1:%%PORT_vmess%%;
        vmess on;
        vmess_user ALICE alice@example.com;
        vmess_allow_private on;
        vmess_udp_timeout 2s;
        proxy_pass $vmess_target;
        access_log %%TESTDIR%%/access.log vmess;
    }
}
EOF
$t->run();

my $uecho = $t->target('udp-echo');
my $server = '127.0.0.1:' . $t->port('vmess');

my @secs = (
    ['aes-128-gcm', []],
    ['aes-128-gcm', ['--padding']],
    ['aes-128-gcm', ['--auth-length', '--padding']],
    ['chacha20-poly1305', []],
    ['none', []],
    ['aes-128-cfb', []],
);

for my $c (@secs) {
    my ($sec, $opts) = @$c;
    my ($rc, $out) = $t->client('-s', $server, '-u', $alice,
                                '-t', "127.0.0.1:$uecho", '-S', $sec, @$opts,
                                '-n', '256k', '--udp', 'echo');
    ok($rc == 0 && $out =~ /^echo ok datagrams=256 bytes=262144 /m,
       "udp echo 256 KiB in 1 KiB datagrams, $sec @$opts") or diag($out);
}

my ($rc, $out) = $t->client('-s', $server, '-u', $alice,
                            '-t', "127.0.0.1:$uecho", '-n', '1m',
                            '--chunk', '2030', '--udp', 'echo');
ok($rc == 0 && $out =~ /^echo ok datagrams=517 /m,
   'udp echo 1 MiB in 2030-byte datagrams (v2ray maximum)') or diag($out);

# security zero has no chunks, so no datagram boundaries: refused
($rc, $out) = $t->client('-s', $server, '-u', $alice,
                         '-t', "127.0.0.1:$uecho", '-S', 'zero',
                         '-n', '4k', '--udp', 'echo');
ok($rc != 0 && $t->wait_log(
       qr/vmess: udp command without chunk stream refused/),
   'udp with security zero refused, logged') or diag($out);

# a v2ray 4.34 client: dokodemo-door udp -> vmess command 2 (and mux)
sub v2ray_udp {
    my ($name, $mux) = @_;
    my $port = $t->v2ray_client(server => $t->port('vmess'), uuid => $alice,
                                security => 'aes-128-gcm',
                                target_host => '127.0.0.1',
                                target_port => $uecho, network => 'udp',
                                mux => $mux, name => $name);
    sleep 1;
    my $s = IO::Socket::INET->new(Proto => 'udp',
                                  PeerAddr => "127.0.0.1:$port")
        or die "udp socket: $!";
    my $sel = IO::Select->new($s);
    my ($ok, $bad) = (0, '');
    for my $i (1 .. 20) {
        my $d = pack('N', $i) . join '', map { chr rand 256 } 1 .. 200 + $i;
        $s->send($d);
        my $got = '';
        if ($sel->can_read(3)) {
            $s->recv($got, 65536);
        }
        if (sha256_hex($got) eq sha256_hex($d)) {
            $ok++;
        } else {
            $bad = "datagram $i: sent " . length($d) . ', got '
                   . length($got);
        }
    }
    is($ok, 20, "v2ray udp through $name: 20 datagrams echoed")
        or diag($bad);
}

v2ray_udp('v2ray-udp', 0);
v2ray_udp('v2ray-udp-mux', 4);

# an upstream datagram over 2048 bytes is dropped, not split; the session
# ends after vmess_udp_timeout
my $big = $t->daemon('perl', '-MIO::Socket::INET', '-e', <<'BIG');
my $s = IO::Socket::INET->new(Proto => 'udp', LocalAddr => '127.0.0.1:0')
    or die;
$| = 1;
print "listening ", $s->sockport(), "\n";
while (defined $s->recv(my $d, 65536)) {
    $s->send('x' x 3000);
    $s->send($d);
}
BIG
($rc, $out) = $t->client('-s', $server, '-u', $alice,
                         '-t', "127.0.0.1:$big", '-n', '10k', '--udp',
                         'echo');
ok($rc == 0 && $out =~ /^echo ok datagrams=10 /m,
   'datagrams over 2048 bytes dropped, the others intact') or diag($out);
ok($t->wait_log(qr/vmess: udp datagrams dropped: 0 to the client \(client not reading\), 0 to the target \(send buffer full\), 0 to the target \(sent while it was resolved\), 10 over 2048 bytes/),
   'dropped datagrams counted in the log');

# idle: the session ends after vmess_udp_timeout without traffic
system("$t->{client} -s $server -u $alice -t 127.0.0.1:$uecho -n 1k "
       . "--udp --timeout 1 raw </dev/null >/dev/null 2>&1");
ok($t->wait_log(qr/vmess: udp session idle timeout/, 6),
   'idle udp session ends after vmess_udp_timeout');

$t->stop();

my @log = split /\n/, VMessTest::read_file($t->dir() . '/access.log');
ok((grep { /^ok\|udp\|127\.0\.0\.1:$uecho\|aes-128-gcm\|-\|\d+$/ } @log),
   'access log: udp command, target, no mux sessions');
ok((grep { /^ok\|udp\|.*\|chacha20-poly1305\|/ } @log),
   'access log: chacha20 udp session');
ok((grep { /^denied\|udp\|.*\|zero\|-\|0$/ } @log),
   'access log: udp with security zero denied');

$t->finish();
done_testing();
