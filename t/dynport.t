#!/usr/bin/perl
# vmess_dynamic_port: the main server sends the switch-account command, the
# real v2ray 4.34 client (legacy header, alterId 4) opens later sessions on
# a detour port, 4 MiB echoed each way through it; the detour's IDs per
# period (computed here independently with Digest::SHA) are accepted in
# their period and grace window and refused as expired after it, by two
# workers and after a reload; bad configurations fail nginx -t with
# file:line.  No fake clock: refresh=1 puts the grace window and the
# expiry of the ID two periods back into any minute; for the end of a
# grace window a second list's refresh (2-7 min) is chosen so that its
# periods' second minute comes soon (no wait mostly; up to ~70 s when all
# of them begin a period together).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Digest::SHA qw/hmac_sha256/;
use Test::More;
use Time::HiRes qw/sleep time/;
use VMessTest qw/random_uuid read_file/;

my $t = VMessTest->new();
my $alice = random_uuid();
my $bob = random_uuid();
my $secret = 'dynport-test-secret-' . int(rand(1e9));

# the ID a detour port accepts from user uuid in period (refresh minutes)
sub dynamic_id {
    my ($uuid, $period) = @_;
    my $msg = pack('Q>', $period) . pack('H*', $uuid =~ s/-//gr);
    my @b = unpack('C16', substr(hmac_sha256($msg, $secret), 0, 16));
    $b[6] = ($b[6] & 0x0f) | 0x40;
    $b[8] = ($b[8] & 0x3f) | 0x80;
    return join '-', unpack('A8 A4 A4 A4 A12', unpack('H*', pack('C16', @b)));
}

# bob's list ends grace windows: the seconds 63 .. period - 10 of its
# periods are past one.  Its refresh (2 to 7 minutes) is the one whose
# next such second comes first after the sessions before that check
# (~20 s from now).
my ($bob_refresh, $bob_wait) = (2, 1e9);
for my $r (2 .. 7) {
    my $phase = (time() + 20) % ($r * 60);
    my $wait = $phase < 63 ? 63 - $phase
             : $phase > $r * 60 - 10 ? $r * 60 - $phase + 63 : 0;
    ($bob_refresh, $bob_wait) = ($r, $wait) if $wait < $bob_wait;
}

my %subst = (ALICE => $alice, BOB => $bob, SECRET => $secret,
             BOB_REFRESH => $bob_refresh);
$t->write_conf(<<'EOF' =~ s/\b(ALICE|BOB|SECRET|BOB_REFRESH)\b/$subst{$1}/gr);
%%GLOBALS%%
worker_processes 2;
events { worker_connections 1024; }
stream {
    vmess_zone vmess:1m;
    log_format dyn '$vmess_status $vmess_user $vmess_header $vmess_security '
                   '$vmess_dynamic_port $server_port $pid $bytes_sent '
                   '$bytes_received';
    server {
        listen 127.0.0.1:%%PORT_main%%;
        vmess on;
        vmess_user ALICE alice alter_id=4;
        vmess_legacy on;
        vmess_allow_private on;
        vmess_dynamic_port %%PORT_d1%% %%PORT_d2%% refresh=1 secret=SECRET
                           alter_id=4;
        proxy_pass $vmess_target;
        access_log %%TESTDIR%%/main.log dyn;
    }
    server {
        listen 127.0.0.1:%%PORT_d1%% reuseport;
        listen 127.0.0.1:%%PORT_d2%% reuseport;
        vmess on;
        vmess_legacy on;
        vmess_allow_private on;
        proxy_pass $vmess_target;
        access_log %%TESTDIR%%/detour.log dyn;
    }
    server {
        listen 127.0.0.1:%%PORT_aead%%;
        vmess on;
        vmess_user BOB bob;
        vmess_allow_private on;
        vmess_dynamic_port %%PORT_d4%% refresh=BOB_REFRESH secret=SECRET;
        proxy_pass $vmess_target;
        access_log %%TESTDIR%%/main.log dyn;
    }
    server {
        listen 127.0.0.1:%%PORT_d4%%;
        vmess on;
        vmess_allow_private on;
        proxy_pass $vmess_target;
        access_log %%TESTDIR%%/detour-aead.log dyn;
    }
}
EOF
$t->run();

my $echo = $t->target('echo');
my ($d1, $d2, $d4) = ($t->port('d1'), $t->port('d2'), $t->port('d4'));
my $n = 4 * 1024 * 1024;

# v2ray adds the detour as one more server per command and picks its
# servers round robin: the third session is the first on a detour port
my $v2ray = $t->v2ray_client(server => $t->port('main'), uuid => $alice,
                             alter_id => 4, legacy => 1,
                             security => 'aes-128-gcm',
                             target_host => '127.0.0.1',
                             target_port => $echo);
for my $i (1 .. 4) {
    is($t->plain_echo($v2ray, $n), 1, "v2ray session $i: 4 MiB each way");
}

ok($t->wait_log(qr/vmess: dynamic port (?:$d1|$d2) for 1 min sent/),
   'the command is logged at debug');

# sessions the client ran with an ID ($vmess_status, bytes: see below)
sub sessions {
    my ($log, $re) = @_;
    return grep { /$re/ } split /\n/, read_file($t->dir() . "/$log") // '';
}

# access log lines are written when a session ends: wait for the last one
for (1 .. 100) {
    last if sessions('main.log', qr/^ok/) + sessions('detour.log', qr/^ok/)
            >= 4;
    sleep 0.05;
}

my @main = sessions('main.log', qr/^ok alice legacy aes-128-gcm (\d+) /);
ok(@main >= 1, 'first sessions on the main port, legacy header');
ok(!grep({ !/^ok alice legacy aes-128-gcm (?:$d1|$d2) / } @main),
   '$vmess_dynamic_port is a port of the list on every main session')
    or diag(join "\n", @main);

# v2ray closes once the echo is back, so the server may have read up to a
# buffer less than it sent
my @detour = sessions('detour.log',
                      qr/^ok alice legacy aes-128-cfb - (?:$d1|$d2) /);
ok(@detour >= 1, 'later sessions on a detour port (aes-128-cfb, legacy, '
   . 'alterId 4, as v2ray switches)')
    or diag(read_file($t->dir() . '/detour.log'));
ok(grep({ my @f = split / /; $f[7] >= $n && $f[8] >= $n - 65536 } @detour),
   '4 MiB each way through the detour port')
    or diag(join "\n", @detour);
is(scalar(@main) + scalar(@detour), 4, 'every session was logged once');

# v2ray 4.34 reads the command from AEAD response headers too: with
# alterId 0 it opens the detour sessions with an AEAD header
my $aead = $t->v2ray_client(server => $t->port('aead'), uuid => $bob,
                            name => 'v2ray-aead', security => 'aes-128-gcm',
                            target_host => '127.0.0.1', target_port => $echo);
for my $i (1 .. 3) {
    is($t->plain_echo($aead, 1048576), 1, "v2ray AEAD session $i");
}
for (1 .. 100) {
    last if sessions('detour-aead.log', qr/^ok/);
    sleep 0.05;
}
ok(sessions('main.log', qr/^ok bob aead aes-128-gcm $d4 /),
   'AEAD: the command sent in an AEAD response header');
ok(sessions('detour-aead.log', qr/^ok bob aead aes-128-cfb - $d4 /),
   'AEAD: the client came to the detour port with an AEAD header')
    or diag(read_file($t->dir() . '/detour-aead.log'));

# the detour's IDs, with our client: refresh=1, so period p's ID is valid,
# p - 1's too (its grace window is this whole minute), p - 2's expired,
# p - 3's unknown.  Started at least 15 s before the period's turn (the
# seven sessions take well under that, even under ASan).
sleep 0.5 while time() % 60 < 3 || time() % 60 > 45;
my $p = int(time() / 60);

sub via_detour {
    my ($id, $port, @opts) = @_;
    my ($rc, $out) = $t->client('echo', '-s', "127.0.0.1:$port", '-u', $id,
                                '-t', "127.0.0.1:$echo", '-S', 'aes-128-cfb',
                                '-n', '64k', '--timeout', 5, @opts);
    return $rc == 0 && $out =~ /^echo ok/ ? 'ok' : 'refused';
}

my @legacy = ('--legacy', '--alter-id', 4);
is(via_detour(dynamic_id($alice, $p), $d1), 'ok', 'current ID (AEAD)');
is(via_detour(dynamic_id($alice, $p), $d2, @legacy), 'ok',
   'current ID (legacy header), the other port');
is(via_detour(dynamic_id($alice, $p - 1), $d1), 'ok',
   'previous ID within its grace window');
is(via_detour(dynamic_id($alice, $p - 2), $d1), 'refused',
   'ID of two periods ago refused (AEAD)');
is(via_detour(dynamic_id($alice, $p - 2), $d2, @legacy), 'refused',
   'ID of two periods ago refused (legacy header)');
is(via_detour(dynamic_id($alice, $p - 3), $d1), 'refused',
   'older ID refused');
is(via_detour($alice, $d1), 'refused', 'the main ID is refused on a detour');
is(int(time() / 60), $p, 'all in one period');

my @expired = $t->error_log()
              =~ /vmess: expired dynamic port ID, drain \d+ bytes/g;
is(scalar @expired, 2, 'two sessions logged as expired');
for (1 .. 100) {
    last if sessions('detour.log', qr/^expired alice/) >= 2;
    sleep 0.05;
}
is(scalar(sessions('detour.log', qr/^expired alice /)), 2,
   '$vmess_status expired, $vmess_user the user');
ok(sessions('detour.log', qr/^unknown_user /) >= 2,
   'unknown IDs are unknown_user');

# two workers agree: 40 sessions spread by reuseport, all accepted
my ($rc, $out) = $t->client('echo', '-s', "127.0.0.1:$d1", '-u',
                            dynamic_id($alice, $p), '-t', "127.0.0.1:$echo",
                            '-S', 'aes-128-cfb', '-n', '4k', '-c', 4,
                            '-r', 40);
like($out, qr/^echo ok sessions=40 /, '40 sessions with the current ID');
my %pids;
for (1 .. 100) {
    %pids = map { (split / /)[6] => 1 }
            sessions('detour.log', qr/^ok alice [a-z]+ aes-128-cfb - $d1 /);
    last if keys %pids >= 2;
    sleep 0.05;
}
is(scalar(keys %pids), 2, 'accepted by both workers');

# a reload derives the same IDs
$t->reload();
sleep 1;
is(via_detour(dynamic_id($alice, $p), $d1), 'ok',
   'current ID accepted after a reload');

# bob's list: past the first minute of a period the previous period's ID
# is past its 60 s grace window
my $period = $bob_refresh * 60;
sleep 0.5 while time() % $period < 63 || time() % $period > $period - 10;
my $p2 = int(time() / $period);
is(via_detour(dynamic_id($bob, $p2), $d4), 'ok',
   "refresh=$bob_refresh: current ID");
is(via_detour(dynamic_id($bob, $p2 - 1), $d4), 'refused',
   "refresh=$bob_refresh: the previous ID after its grace window");
for (1 .. 100) {
    last if sessions('detour-aead.log', qr/^expired bob /);
    sleep 0.05;
}
ok(sessions('detour-aead.log', qr/^expired bob - - - $d4 /),
   "refresh=$bob_refresh: logged as expired");

$t->stop();

# nginx -t: bad configurations, each with file:line
my $uuid = random_uuid();

sub conf {
    my ($main, $detour) = @_;
    return <<"EOF";
%%GLOBALS%%
events { }
stream {
    vmess_zone vmess:1m;
    server {
        listen 127.0.0.1:%%PORT_m2%%;
        vmess on;
        vmess_user $uuid;
        $main
        proxy_pass \$vmess_target;
    }
    server {
        listen 127.0.0.1:%%PORT_d3%%;
        $detour
        proxy_pass \$vmess_target;
    }
}
EOF
}

sub line_of {
    my ($name, $re) = @_;
    my @lines = split /\n/, read_file($t->dir() . "/$name");
    for my $i (0 .. $#lines) {
        return $i + 1 if $lines[$i] =~ $re;
    }
    return -1;
}

sub refused {
    my ($name, $main, $detour, $msg, $marker) = @_;
    $t->write_conf(conf($main, $detour), "$name.conf");
    my ($rc, $out) = $t->test_conf("$name.conf");
    my $line = line_of("$name.conf", $marker);
    isnt($rc, 0, "$name: nginx -t fails");
    like($out, qr/\[emerg\] (?:\d+#\d+: )?.*\Q$msg\E/, "$name: message")
        or diag($out);
    like($out, qr/ in \Q@{[$t->dir()]}\E\/$name\.conf:$line\b/,
         "$name: file:line") or diag($out);
}

my $d3 = $t->port('d3');
my $ok = "vmess_dynamic_port $d3 refresh=5 secret=$secret;";
$t->write_conf(conf($ok, 'vmess on; vmess_legacy on;'), 'good.conf');
($rc, $out) = $t->test_conf('good.conf');
is($rc, 0, 'a valid dynamic port configuration passes') or diag($out);

refused('no_ports', "vmess_dynamic_port refresh=5 secret=$secret;",
        'vmess on;', 'no port in "vmess_dynamic_port"', qr/dynamic_port/);
refused('refresh_0', "vmess_dynamic_port $d3 refresh=0 secret=$secret;",
        'vmess on;', 'invalid parameter "refresh=0"', qr/dynamic_port/);
refused('no_vmess', $ok, '',
        qq{the server on port $d3 of "vmess_dynamic_port" in},
        qr/dynamic_port/);
refused('short_secret', "vmess_dynamic_port $d3 refresh=5 secret=short;",
        'vmess on;', '"secret=" of "vmess_dynamic_port" needs at least 16',
        qr/dynamic_port/);
refused('no_listener', 'vmess_dynamic_port 1 refresh=5 secret=' . $secret
        . ';', '', 'no server listens on port 1 of',
        qr/dynamic_port/);
refused('no_cfb', $ok, 'vmess on; vmess_security aes-128-gcm;',
        'must allow "aes-128-cfb"', qr/vmess on; vmess_security/);
refused('no_legacy', "vmess_dynamic_port $d3 refresh=5 secret=$secret"
        . ' alter_id=4;', 'vmess on; # the detour',
        'must allow "aes-128-cfb" and have "vmess_legacy on"',
        qr/# the detour/);
refused('own_users', $ok, "vmess on; vmess_user $uuid;",
        'has users of its own', qr/vmess on; vmess_user/);

$t->finish();
done_testing();
