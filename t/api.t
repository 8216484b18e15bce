#!/usr/bin/perl
# The per-user counters and the HTTP API (vmess_api): the real v2ray 4.34
# client moves 16 MiB up and down for alice, 4 MiB for bob, 1 MiB through
# a mux connection for carol and 20 datagrams for dave, over two workers;
# the API's numbers equal the payload bytes exactly, survive a reload, are
# zeroed by ?reset=1 without losing any, and /metrics passes the
# Prometheus text parser of python3-prometheus-client.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use Test::More;
use Time::HiRes qw/sleep time/;
use VMessTest qw/random_uuid write_file/;

my $t = VMessTest->new();
my ($alice, $bob, $carol, $dave) = map { random_uuid() } 1 .. 4;

my $echo = $t->target('echo');
my $uecho = $t->target('udp-echo');
my %ids = (ALICE => $alice, BOB => $bob, CAROL => $carol, DAVE => $dave,
           ECHO => $echo);
$t->write_conf(<<'EOF' =~ s/\b(ALICE|BOB|CAROL|DAVE|ECHO)\b/$ids{$1}/gr);
%%GLOBALS%%
worker_processes 2;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %%TESTDIR%%/body;
    server {
        listen 127.0.0.1:%%PORT_api%%;
        location /vmess/ {
            allow 127.0.0.1;
            deny all;
            vmess_api zone=vmess;
        }
    }
}
stream {
    vmess_zone vmess:1m;
    server {
        listen 127.0.0.1:%%PORT_vmess%% reuseport;
        vmess on;
        vmess_user ALICE alice@example.com;
        vmess_user BOB "bob \"the builder\"";
        vmess_user CAROL carol;
        vmess_user DAVE dave;
        vmess_allow_private on;
        vmess_udp_timeout 2s;
        proxy_pass $vmess_target;
    }

    # nginx as a VMess client of the server above, as alice (outbound)
    server {
        listen 127.0.0.1:%%PORT_forward%%;
        proxy_vmess on;
        proxy_vmess_user ALICE;
        proxy_vmess_target 127.0.0.1:ECHO;
        proxy_pass 127.0.0.1:%%PORT_vmess%%;
    }
}
EOF
$t->run();

my $base = 'http://127.0.0.1:' . $t->port('api') . '/vmess/';

# (HTTP status, body)
sub api {
    my ($path) = @_;
    my $out = `curl -s -w '\n%{http_code}' '$base$path'`;
    my ($body, $code) = $out =~ /^(.*)\n(\d+)$/s or return (0, $out);
    return ($code, $body);
}

sub users {
    my ($code, $body) = api('users');
    return {} unless $code == 200;
    return { map { $_->{uuid} . ($_->{outbound} ? ' out' : '') => $_ }
             @{decode_json($body)->{users}} };
}

# the counters are in the zone once every session has ended
sub settled {
    my $end = time() + 15;
    while (time() < $end) {
        my $u = users();
        return $u unless grep { $_->{sessions_active} } values %$u;
        sleep 0.2;
    }
    return users();
}

my %common = (server => $t->port('vmess'), target_host => '127.0.0.1',
              target_port => $echo, security => 'aes-128-gcm');
my $mib = 1024 * 1024;

my $pa = $t->v2ray_client(%common, name => 'alice', uuid => $alice);
is($t->plain_echo($pa, 16 * $mib), 1, 'alice: 16 MiB each way');

my $pb = $t->v2ray_client(%common, name => 'bob', uuid => $bob);
is($t->plain_echo($pb, 4 * $mib), 1, 'bob: 4 MiB each way');

my $pc = $t->v2ray_client(%common, name => 'carol', uuid => $carol,
                          mux => 4);
is($t->plain_echo($pc, $mib), 1, 'carol: 1 MiB each way through mux');

my $pd = $t->v2ray_client(%common, name => 'dave', uuid => $dave,
                          network => 'udp', target_port => $uecho);
sleep 1;
my $s = IO::Socket::INET->new(Proto => 'udp', PeerAddr => "127.0.0.1:$pd")
    or die "udp socket: $!";
my $sel = IO::Select->new($s);
my ($echoed, $udp_bytes) = (0, 0);
for my $i (1 .. 20) {
    my $d = join "", map { chr rand 256 } 1 .. 50 * $i;
    $s->send($d);
    my $got = '';
    $s->recv($got, 65536) if $sel->can_read(3);
    $echoed++ if $got eq $d;
    $udp_bytes += length $d;
}
is($echoed, 20, 'dave: 20 datagrams echoed over udp');

# a session that does not authenticate: counted for the server only
my $junk = IO::Socket::INET->new(PeerAddr => '127.0.0.1:'
                                             . $t->port('vmess'))
    or die "connect: $!";
print $junk 'x' x 64;
close $junk;

my %want = ($alice => [16 * $mib, 'alice@example.com'],
            $bob => [4 * $mib, 'bob "the builder"'],
            $carol => [$mib, 'carol'], $dave => [$udp_bytes, 'dave']);

sub check_counts {
    my ($when) = @_;
    my $u = settled();
    for my $id ($alice, $bob, $carol, $dave) {
        my ($n, $name) = @{$want{$id}};
        my $got = $u->{$id} // {};
        is_deeply([@$got{qw/user uplink_bytes downlink_bytes sessions_total
                             sessions_active outbound/}],
                  [$name, $n, $n, 1, 0, JSON::PP::false],
                  "$when: $name: $n bytes each way, one session");
    }
}

check_counts('after the sessions');
ok(users()->{$alice}{last_seen} >= time() - 120, 'last_seen is recent');

my ($code, $body) = api('servers');
my $srv = $code == 200 ? decode_json($body)->{servers}[0] : {};
is($srv->{server}, '127.0.0.1:' . $t->port('vmess'), 'server by listen');
my $st = $srv->{sessions} // {};
is($st->{ok}, 4, 'four sessions ok');
my $start = time();
sleep 0.2 while (decode_json((api('servers'))[1])->{servers}[0]{sessions}
                 {unknown_user} // 0) < 1 && time() < $start + 10;
is(decode_json((api('servers'))[1])->{servers}[0]{sessions}{unknown_user},
   1, 'the junk session counted as unknown_user');

($code, $body) = api("users/alice\@example.com");
is($code, 200, 'one user by email');
is(decode_json($body)->{uuid}, $alice, 'the user found by email');
($code, $body) = api('users/' . uc $bob);
is(decode_json($body)->{user}, 'bob "the builder"', 'by uuid, any case');

($code, $body) = api('users/' . random_uuid());
is_deeply([$code, $body], [404, qq({"error":"unknown user"}\n)],
          'unknown user: 404 with a JSON error');
($code, $body) = api('nothing');
is_deeply([$code, $body], [404, qq({"error":"unknown endpoint"}\n)],
          'unknown endpoint: 404');
$code = `curl -s -o /dev/null -w '%{http_code}' -X PUT '${base}users'`;
is($code, 405, 'PUT: 405');

# the counters live in the zone: a reload keeps them
my @old = sort $t->workers();
$t->reload();
my $end = time() + 10;
sleep 0.1 while (join(' ', sort $t->workers()) eq join(' ', @old)
                 || $t->workers() != 2) && time() < $end;
isnt(join(' ', sort $t->workers()), join(' ', @old), 'workers replaced');
check_counts('after the reload');

# metrics through the real Prometheus parser: every line, with labels
($code, $body) = api('metrics');
is($code, 200, 'metrics: 200');
write_file($t->dir() . '/metrics.txt', $body);
my $py = <<'PY';
import sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1]).read()
for fam in text_string_to_metric_families(text):
    for s in fam.samples:
        labels = ",".join("%s=%s" % kv for kv in sorted(s.labels.items()))
        print("%s\t%s %s\t%d" % (fam.type, s.name, labels, s.value))
PY
write_file($t->dir() . '/parse.py', $py);
my @parsed = `/usr/bin/python3 @{[$t->dir()]}/parse.py @{[$t->dir()]}/metrics.txt`;
is($?, 0, 'the Prometheus parser accepts the metrics');
my $samples = () = $body =~ /^vmess_/mg;
is(scalar @parsed, $samples, "every sample parsed ($samples)");
chomp @parsed;
my %p = map { my @f = split /\t/; ($f[1] => "$f[0] $f[2]") } @parsed;
is($p{"vmess_user_uplink_bytes_total direction=inbound,"
      . "user=alice\@example.com,uuid=$alice"}, 'counter ' . 16 * $mib,
   'alice uplink as a counter');
is($p{"vmess_user_downlink_bytes_total direction=inbound,"
      . "user=bob \"the builder\",uuid=$bob"}, 'counter ' . 4 * $mib,
   'bob downlink, the quotes in his name escaped and parsed back');
is($p{"vmess_user_sessions_active direction=inbound,user=carol,"
      . "uuid=$carol"}, 'gauge 0', 'active sessions as a gauge');
is($p{'vmess_server_sessions_total server=127.0.0.1:' . $t->port('vmess')
      . ',status=ok'}, 'counter 4', 'server sessions by status');

# ?reset=1 answers the counters and zeroes them
($code, $body) = api("users/$alice?reset=1");
is(decode_json($body)->{uplink_bytes}, 16 * $mib, 'reset answers the bytes');
my $u = users();
is_deeply([@{$u->{$alice}}{qw/uplink_bytes downlink_bytes sessions_total/}],
          [0, 0, 0], 'then they are zero');
is($u->{$bob}{uplink_bytes}, 4 * $mib, 'the other users keep theirs');
is($t->plain_echo($pa, $mib), 1, 'alice: 1 MiB more');
is(settled()->{$alice}{uplink_bytes}, $mib, 'counted from zero');
($code, $body) = api('users?reset=1');
is(users()->{$bob}{downlink_bytes}, 0, 'users?reset=1 zeroes every user');

# proxy_vmess counts its outbound user apart from the same inbound user
is($t->plain_echo($t->port('forward'), 2 * $mib), 1,
   'port forward as alice: 2 MiB each way');
$u = settled();
is_deeply([@{$u->{"$alice out"}}{qw/uplink_bytes downlink_bytes
                                    sessions_total outbound/}],
          [2 * $mib, 2 * $mib, 1, JSON::PP::true],
          'the outbound user: 2 MiB each way, one session');
is_deeply([@{$u->{$alice}}{qw/uplink_bytes downlink_bytes sessions_total/}],
          [2 * $mib, 2 * $mib, 1], 'the inbound alice it reached: the same');

$t->stop();

# configuration errors, with file and line
for my $case (['vmess_api vmess;',
               qr/invalid parameter "vmess", expected zone=name in \S+api-bad\.conf:\d+$/m],
              ['vmess_api zone=other;',
               qr/zero size shared memory zone "other"/]) {
    my ($line, $re) = @$case;
    $t->write_conf(<<"EOF", 'api-bad.conf');
%%GLOBALS%%
events { }
http {
    server { listen 127.0.0.1:%%PORT_bad%%;
        location /vmess/ { $line }
    }
}
stream { vmess_zone vmess:1m; }
EOF
    my ($rc, $out) = $t->test_conf('api-bad.conf');
    ok($rc != 0 && $out =~ $re, "nginx -t refuses \"$line\"") or diag($out);
}

$t->finish();
done_testing();
