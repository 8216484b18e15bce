#!/usr/bin/perl
# proxy_vmess: a relay nginx (VMess in) in front of a balanced pool of VMess
# exits (v2ray 4.34 and an nginx server with this module), re-encrypting
# with the exits' own user; a plain TCP listener as a VMess client (port
# forward); proxy_next_upstream when an exit dies; wrong outbound
# credentials refused by the exit and logged at the relay.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX qw/WNOHANG/;
use Time::HiRes qw/sleep/;
use VMessTest qw/random_uuid read_file write_file/;

my $t = VMessTest->new();
my $client_user = random_uuid();    # client -> relay
my $exit_user = random_uuid();      # relay -> exits (both)
my $wrong_user = random_uuid();     # known to no exit

my $echo = $t->target('echo');
my $dir = $t->dir();

# the v2ray exit: vmess inbound with the exit user, freedom outbound
my $v2port = $t->port('v2exit');
write_file("$dir/v2exit.json", <<"JSON");
{
  "log": {"loglevel": "info", "access": "$dir/v2exit-access.log"},
  "inbounds": [{"listen": "127.0.0.1", "port": $v2port,
    "protocol": "vmess",
    "settings": {"clients": [{"id": "$exit_user", "alterId": 0}]}}],
  "outbounds": [{"protocol": "freedom"}]
}
JSON

my $v2pid = fork() // die "fork: $!";
if ($v2pid == 0) {
    open STDOUT, '>>', "$dir/v2exit.log";
    open STDERR, '>&', \*STDOUT;
    exec('v2ray', '-config', "$dir/v2exit.json") or exit 1;
}
for (1 .. 100) {
    last if VMessTest::port_open($v2port);
    sleep 0.05;
}

system("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test "
       . "-keyout $dir/key.pem -out $dir/cert.pem 2>/dev/null") == 0
    or BAIL_OUT('openssl req failed');

my $conf = <<'EOF';
%%GLOBALS%%
events { worker_connections 1024; }
stream {
    vmess_zone vmess:1m;
    log_format relay '$vmess_status $vmess_user $vmess_target '
                     '$upstream_addr $status';
    log_format exit '$vmess_status $vmess_user $vmess_target';

    upstream exits {
        server 127.0.0.1:%%PORT_v2exit%% max_fails=1 fail_timeout=60s;
        server 127.0.0.1:%%PORT_ngxexit%% max_fails=1 fail_timeout=60s;
    }

    # the relay: VMess in, VMess out to the pool
    server {
        listen 127.0.0.1:%%PORT_relay%%;
        vmess on;
        vmess_user CLIENT client;
        vmess_allow_private on;
        proxy_vmess on;
        proxy_vmess_user EXIT;
        proxy_pass exits;
        proxy_connect_timeout 2s;
        access_log %%TESTDIR%%/relay.log relay;
    }

    # the same with chacha20-poly1305 outbound
    server {
        listen 127.0.0.1:%%PORT_relay_chacha%%;
        vmess on;
        vmess_user CLIENT client;
        vmess_allow_private on;
        proxy_vmess on;
        proxy_vmess_user EXIT;
        proxy_vmess_security chacha20-poly1305;
        proxy_pass exits;
        access_log %%TESTDIR%%/relay.log relay;
    }

    # the same with security none outbound, to the nginx exit only
    server {
        listen 127.0.0.1:%%PORT_relay_none%%;
        vmess on;
        vmess_user CLIENT client;
        vmess_allow_private on;
        proxy_vmess on;
        proxy_vmess_user EXIT;
        proxy_vmess_security none;
        proxy_pass 127.0.0.1:%%PORT_ngxexit%%;
        access_log %%TESTDIR%%/relay.log relay;
    }

    # wrong outbound credentials
    server {
        listen 127.0.0.1:%%PORT_relay_wrong%%;
        vmess on;
        vmess_user CLIENT client;
        vmess_allow_private on;
        proxy_vmess on;
        proxy_vmess_user WRONG;
        proxy_pass 127.0.0.1:%%PORT_ngxexit%%;
        access_log %%TESTDIR%%/relay.log relay;
    }

    # plain TCP in: nginx as a VMess client (port forward)
    server {
        listen 127.0.0.1:%%PORT_forward%%;
        proxy_vmess on;
        proxy_vmess_user EXIT;
        proxy_vmess_target 127.0.0.1:ECHO;
        proxy_pass exits;
        access_log %%TESTDIR%%/relay.log relay;
    }

    # to the nginx exit over TLS
    server {
        listen 127.0.0.1:%%PORT_relay_tls%%;
        vmess on;
        vmess_user CLIENT client;
        vmess_allow_private on;
        proxy_vmess on;
        proxy_vmess_user EXIT;
        proxy_pass 127.0.0.1:%%PORT_tlsexit%%;
        proxy_ssl on;
        access_log %%TESTDIR%%/relay.log relay;
    }

    # the nginx exit, also behind TLS
    server {
        listen 127.0.0.1:%%PORT_tlsexit%% ssl;
        ssl_certificate %%TESTDIR%%/cert.pem;
        ssl_certificate_key %%TESTDIR%%/key.pem;
        vmess on;
        vmess_user EXIT exit;
        vmess_allow_private on;
        proxy_pass $vmess_target;
        access_log %%TESTDIR%%/exit.log exit;
    }

    # the nginx exit
    server {
        listen 127.0.0.1:%%PORT_ngxexit%%;
        vmess on;
        vmess_user EXIT exit;
        vmess_allow_private on;
        proxy_pass $vmess_target;
        access_log %%TESTDIR%%/exit.log exit;
    }
}
EOF
$conf =~ s/CLIENT/$client_user/g;
$conf =~ s/EXIT/$exit_user/g;
$conf =~ s/WRONG/$wrong_user/g;
$conf =~ s/ECHO/$echo/g;
$t->write_conf($conf)->run();

my $relay = '127.0.0.1:' . $t->port('relay');

sub echo_via {
    my ($name, $server, $n, @args) = @_;
    my ($rc, $out) = $t->client('-s', $server, '-t', "127.0.0.1:$echo",
                                '-u', $client_user, '-n', $n, @args, 'echo');
    ok($rc == 0 && $out =~ /^echo ok /m, $name) or diag($out);
}

sub count {
    my ($file, $re) = @_;
    return scalar grep { /$re/ } split /\n/, read_file("$dir/$file");
}

# 16 MiB each way, sha256 compared by the client; round robin puts the
# two sessions on different exits
echo_via('16 MiB each way through the relay (1)', $relay, '16m');
echo_via('16 MiB each way through the relay (2)', $relay, '16m');

for my $sec (qw/chacha20-poly1305 none aes-128-cfb zero/) {
    echo_via("inbound $sec, outbound aes-128-gcm", $relay, '1m', '-S', $sec);
}

echo_via('outbound chacha20-poly1305', '127.0.0.1:' . $t->port('relay_chacha'),
         '1m');
echo_via('outbound chacha20-poly1305 (2)',
         '127.0.0.1:' . $t->port('relay_chacha'), '1m');
echo_via('outbound none', '127.0.0.1:' . $t->port('relay_none'), '1m');
echo_via('8 parallel sessions, v2ray-sized chunks', $relay, '1m', '-c', '8',
         '-r', '16', '--chunk', '2030');

echo_via('proxy_ssl: 4 MiB each way to an exit behind TLS',
         '127.0.0.1:' . $t->port('relay_tls'), '4m');

# plain TCP listener: nginx is the VMess client
is($t->plain_echo($t->port('forward'), 16 * 1024 * 1024), 1,
   'port forward through VMess: 16 MiB each way');
is($t->plain_echo($t->port('forward'), 100000), 1,
   'port forward through VMess (2)');

# balancing: both exits carried sessions
sleep 0.5;
my $v2n = count('v2exit-access.log', qr/accepted tcp:127\.0\.0\.1:$echo/);
my $ngxn = count('exit.log', qr/^ok exit 127\.0\.0\.1:$echo$/);
ok($v2n >= 5, "v2ray exit used ($v2n sessions)");
ok($ngxn >= 5, "nginx exit used ($ngxn sessions)");

# the v2ray exit dies: new sessions go to the nginx exit
kill 'TERM', $v2pid;
waitpid($v2pid, 0);

my $before = count('exit.log', qr/^ok exit /);
for my $i (1 .. 4) {
    echo_via("exit killed: session $i still works", $relay, '256k');
}
my $after = count('exit.log', qr/^ok exit /);
is($after - $before, 4, 'all four went to the nginx exit');
like($t->error_log(), qr/connect\(\) failed \(111: Connection refused\) while proxying connection.*upstream: "127\.0\.0\.1:$v2port"/,
     'the dead exit was tried and skipped (proxy_next_upstream)');

# wrong outbound credentials: the exit drains and closes, the relay logs it
my ($rc, $out) = $t->client('-s', '127.0.0.1:' . $t->port('relay_wrong'),
                            '-t', "127.0.0.1:$echo", '-u', $client_user,
                            '-n', '64k', '--timeout', '20', 'echo');
isnt($rc, 0, 'wrong outbound user: the client gets no echo');
ok($t->wait_log(qr/\[error\].*vmess: upstream closed before the response header/,
                20), 'relay: "upstream closed before the response header"');
like($t->error_log(), qr/\[info\].*vmess: unknown user/,
     'exit: unknown user');

$t->stop();

my $rlog = read_file("$dir/relay.log");
like($rlog, qr/^ok client 127\.0\.0\.1:$echo 127\.0\.0\.1:\d+ 200$/m,
     'relay access log: inbound user, target, exit address');

$t->finish();
done_testing();
