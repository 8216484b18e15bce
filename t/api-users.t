#!/usr/bin/perl
# Users controlled through the HTTP API (POST users/ID): disabled users are
# refused at their next session on both workers and enabled again; "kill"
# ends a live session; a quota and an expiry refuse new sessions past
# them; every bad request gets its documented 4xx JSON error.

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

# a write to a session the server ended must not kill the test
$SIG{PIPE} = 'IGNORE';

my $t = VMessTest->new();
my ($alice, $bob, $carol) = map { random_uuid() } 1 .. 3;
my %ids = (ALICE => $alice, BOB => $bob, CAROL => $carol);

$t->write_conf(<<'EOF' =~ s/\b(ALICE|BOB|CAROL)\b/$ids{$1}/gr);
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
    log_format vmess '$vmess_status $vmess_user';
    server {
        listen 127.0.0.1:%%PORT_vmess%% reuseport;
        vmess on;
        vmess_user ALICE alice;
        vmess_user BOB bob;
        vmess_user CAROL carol;
        vmess_allow_private on;
        proxy_pass $vmess_target;
        access_log %%TESTDIR%%/access.log vmess;
    }
}
EOF
$t->run();

my $base = 'http://127.0.0.1:' . $t->port('api') . '/vmess/';
write_file($t->dir() . '/big.json', '{"enabled":' . (' ' x 1048576) . 'true}');

# (HTTP status, body) of curl ARGS... on PATH
sub api {
    my ($path, @args) = @_;
    my $cmd = join ' ', 'curl -s', (map { quotemeta } @args),
        "-w '\\n%{http_code}'", quotemeta "$base$path";
    my $out = `$cmd`;
    my ($body, $code) = $out =~ /^(.*)\n(\d+)$/s or return (0, $out);
    return ($code, $body);
}

sub post {
    my ($id, $json) = @_;
    return api("users/$id", '-X', 'POST', '--data-binary', $json);
}

my $echo = $t->target('echo');
my %common = (server => $t->port('vmess'), target_host => '127.0.0.1',
              target_port => $echo, security => 'aes-128-gcm');
my %port = map { $_ => $t->v2ray_client(%common, name => $_,
                                         uuid => $ids{uc $_}) }
    qw/alice bob carol/;

# n sessions of 64 KiB each through user's v2ray, one after the other,
# each counted in the zone before the next: how many echoed
sub sessions {
    my ($user, $n) = @_;
    my $ok = 0;
    for (1 .. $n) {
        $ok++ if $t->plain_echo($port{$user}, 65536, 5) eq '1';
        my $end = time() + 5;
        while (time() < $end) {
            my ($code, $body) = api("users/$user");
            last if $code == 200 && !decode_json($body)->{sessions_active};
            sleep 0.05;
        }
    }
    return $ok;
}

is(sessions('alice', 4), 4, 'alice: 4 sessions before');

my ($code, $body) = post('alice', '{"enabled": false}');
is($code, 200, 'disable alice: 200');
is(decode_json($body)->{enabled}, JSON::PP::false, 'the answer says so');

# reuseport spreads the next sessions over both workers
is(sessions('alice', 12), 0, 'alice refused at once: 12 of 12 sessions');
is(sessions('bob', 2), 2, 'bob unaffected');
ok($t->wait_log(qr/vmess: user "alice" disabled, drain \d+ bytes/),
   'the refusal logged with the reason');
my @lines = $t->error_log()
    =~ /\[info\] (\d+)#\d+: \*\d+ vmess: user "alice" disabled/g;
my %workers = map { $_ => 1 } @lines;
is(scalar @lines, 12, 'logged for each refused session');
is(scalar keys %workers, 2, 'refused by both workers');

$t->wait_log(qr/^unknown_user -$/m);
my $access = VMessTest::read_file($t->dir() . '/access.log');
ok($access =~ /^unknown_user -$/m, 'logged as unknown_user');

($code, $body) = post('alice', '{"enabled":true}');
is(decode_json($body)->{enabled}, JSON::PP::true, 'alice enabled again');
is(sessions('alice', 4), 4, 'alice: sessions work again');

# kill: a session held open through the v2ray client ends
my $held = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port{carol}")
    or die "connect: $!";
syswrite $held, 'x' x 1000;
my $sel = IO::Select->new($held);
my ($got, $buf) = ('', '');
while (length $got < 1000 && $sel->can_read(5)) {
    sysread($held, $buf, 65536) or last;
    $got .= $buf;
}
is(length $got, 1000, 'carol: a session open, echoing');
my $start = time();
($code, $body) = post('carol', '{"enabled":false,"kill":true}');
is($code, 200, 'disable and kill carol: 200');
my $closed = 0;
while (time() < $start + 5 && $sel->can_read($start + 5 - time())) {
    my $k = sysread($held, $buf, 65536);
    if (!$k) {
        $closed = 1;
        last;
    }
}
ok($closed, sprintf 'the open session ended (%.1f s)', time() - $start);
ok($t->wait_log(qr/vmess: session of user "carol" ended by the API/),
   'the kill logged');
post('carol', '{"enabled":true}');
is(sessions('carol', 2), 2, 'carol enabled again');

# quota: bob's bytes (up + down) since the last reset
api('users/bob?reset=1');
($code, $body) = post('bob', '{"quota_bytes": 500000}');
is(decode_json($body)->{quota_bytes}, 500000, 'bob: quota set');
is(sessions('bob', 3), 3, 'bob: 3 x 64 KiB each way, under 500 kB');
is(sessions('bob', 2), 1, 'bob: the next session passes the quota');
is(sessions('bob', 1), 0, 'then refused');
ok($t->wait_log(qr/vmess: user "bob" over quota/), 'over quota logged');
api('users/bob?reset=1');
is(sessions('bob', 1), 1, 'a reset starts the quota over');
post('bob', '{"quota_bytes":0}');

# expiry
($code, $body) = post('alice', '{"expire": ' . (int(time()) - 1) . '}');
is($code, 200, 'alice: expiry in the past');
is(sessions('alice', 2), 0, 'alice refused');
ok($t->wait_log(qr/vmess: user "alice" expired/), 'expiry logged');
post('alice', '{"expire": ' . (int(time()) + 3600) . '}');
is(sessions('alice', 1), 1, 'a later expiry lets alice in');

# bad requests: status and JSON error
my @bad = (
    ['{"enabled": fals}', 400,
     '\\"enabled\\" and \\"kill\\" take true or false'],
    ['{"enabled": true', 400, 'malformed JSON'],
    ['not json', 400, 'malformed JSON'],
    ['{"enabled": true} x', 400, 'malformed JSON'],
    ['{"colour": "red"}', 400, 'unknown field'],
    ['{"quota_bytes": -1}', 400,
     '\\"quota_bytes\\", \\"expire\\" and \\"alter_id\\" take an integer '
     . '0 or more'],
    ['{"expire": "tomorrow"}', 400,
     '\\"quota_bytes\\", \\"expire\\" and \\"alter_id\\" take an integer '
     . '0 or more'],
    ['{"quota_bytes": 99999999999999999999}', 400,
     '\\"quota_bytes\\", \\"expire\\" and \\"alter_id\\" take an integer '
     . '0 or more'],
);
for my $b (@bad) {
    my ($json, $want, $err) = @$b;
    ($code, $body) = post('alice', $json);
    is_deeply([$code, $body], [$want, qq({"error":"$err"}\n)],
              "$json: $want $err");
}
($code, $body) = api('users/alice', '-X', 'POST', '--data-binary',
                     '@' . $t->dir() . '/big.json');
is_deeply([$code, $body], [413, qq({"error":"body too large"}\n)],
          '1 MiB body: 413');
($code, $body) = api('users/alice', '-X', 'POST', '-H',
                     'Transfer-Encoding: chunked', '--data-binary', '{}');
is_deeply([$code, $body], [411, qq({"error":"length required"}\n)],
          'a chunked body: 411');
($code, $body) = post(random_uuid(), '{"enabled":false}');
is_deeply([$code, $body], [404, qq({"error":"unknown user"}\n)],
          'unknown user: 404');
($code, $body) = api('users', '-X', 'POST', '--data-binary', '{}');
is_deeply([$code, $body], [400, qq({"error":"\\"id\\" is required"}\n)],
          'POST on the list without an id: 400');
($code, $body) = api('users/alice', '-X', 'DELETE');
is_deeply([$code, $body],
          [409, qq({"error":"the user is in the configuration (vmess_user)"}\n)],
          'DELETE of a vmess_user: 409');
($code, $body) = api('users/alice', '-X', 'BREW');
is($code, 405, 'an unknown verb: 405');
($code, $body) = api('users/alice');
my $a = decode_json($body);
is_deeply([@$a{qw/enabled quota_bytes/}], [JSON::PP::true, 0],
          'the bad requests changed nothing');

# a kill belongs to the workers of its time: after a reload, carol's new
# sessions last
my @old = sort $t->workers();
$t->reload();
my $end = time() + 10;
sleep 0.1 while (join(' ', sort $t->workers()) eq join(' ', @old)
                 || $t->workers() != 2) && time() < $end;
$held = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port{carol}")
    or die "connect: $!";
$sel = IO::Select->new($held);
my $echoed = 0;
for my $i (1 .. 5) {
    syswrite $held, 'y' x 100;
    my $part = '';
    while (length $part < 100 && $sel->can_read(3)) {
        sysread($held, $buf, 65536) or last;
        $part .= $buf;
    }
    $echoed++ if $part eq 'y' x 100;
    sleep 0.5;
}
is($echoed, 5, 'after a reload an old kill ends no new session (2.5 s)');
close $held;

$t->stop();
$t->finish();
done_testing();
