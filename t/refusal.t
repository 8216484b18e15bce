#!/usr/bin/perl
# Bad input: random bytes, truncated and tampered headers, a wrong user, a
# replayed header (two workers), clock skew, private destinations, and the
# fallback.  Each refusal is checked for its error-log line, for silence
# towards the client, and for nothing reaching the VMess target.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw/time sleep/;
use VMessTest qw/random_uuid read_file/;

my $t = VMessTest->new();
my $alice = random_uuid();
my $dir = $t->dir();

my $target_log = "$dir/target.log";
my $fallback_log = "$dir/fallback.log";
my $target = $t->recorder($target_log);
my $fallback = $t->recorder($fallback_log);
my $echo = $t->target('echo');

$t->write_conf(<<'EOF' =~ s/ALICE/$alice/gr =~ s/FALLBACK/$fallback/r);
%%GLOBALS%%
worker_processes 2;
events { worker_connections 1024; }
stream {
    vmess_zone vmess:1m;
    log_format vmess '$vmess_status $vmess_target';
    access_log %%TESTDIR%%/access.log vmess;
    preread_timeout 3s;

    server {
        listen 127.0.0.1:%%PORT_drain%% reuseport;
        vmess on;
        vmess_user ALICE;
        vmess_allow_private on;
        proxy_pass $vmess_target;
    }

    server {
        listen 127.0.0.1:%%PORT_fallback%%;
        vmess on;
        vmess_user ALICE;
        vmess_allow_private on;
        vmess_fallback 127.0.0.1:FALLBACK;
        proxy_pass $vmess_target;
    }

    server {
        listen 127.0.0.1:%%PORT_policy%%;
        vmess on;
        vmess_user ALICE;
        proxy_pass $vmess_target;
    }
}
EOF
$t->run();

my $drain = '127.0.0.1:' . $t->port('drain');

# sends bytes, reads until the server closes or timeout; returns the bytes
# received and whether the server closed
sub raw {
    my ($port, $bytes, $timeout) = @_;
    return $t->exchange($port, $bytes, $timeout // 5);
}

# the header of a real session, saved by the client
sub saved_header {
    my $file = "$dir/header-" . int(rand(1e9));
    my ($rc, $out) = $t->client('-s', $drain, '-u', $alice,
                                '-t', "127.0.0.1:$echo", '-n', 100,
                                '--replay-file', $file, 'echo');
    is($rc, 0, 'a real session to capture its header') or diag($out);
    return read_file($file);
}

sub log_has {
    my ($re, $name) = @_;
    ok($t->wait_log($re, 5), $name) or diag('error.log has no ' . $re);
}

my $noise = join '', map { chr int rand 256 } 1 .. 5000;

my ($got, $closed) = raw($t->port('drain'), substr($noise, 0, 100), 1.5);
is($got, '', 'random bytes: nothing sent back');
is($closed, 0, 'random bytes below the drain size: connection held open');

($got, $closed) = raw($t->port('drain'), $noise, 5);
is($got, '', 'random 5000 bytes: nothing sent back');
is($closed, 1, 'random 5000 bytes: closed after the drain');
log_has(qr/vmess: unknown user.*client: 127\.0\.0\.1/,
        'unknown user logged with the client address');

my $header = saved_header();
ok(length $header > 42, 'captured header (' . length($header) . ' bytes)');

($got, $closed) = raw($t->port('drain'), $header, 3);
is($got, '', 'replayed header: nothing sent back');
log_has(qr/vmess: replayed header/, 'replay logged');

# with two workers, replays land on both of them
my $refused = 0;
for (1 .. 6) {
    my $h = saved_header();
    for (1 .. 3) {
        my ($g) = raw($t->port('drain'), $h, 1);
        $refused++ if $g eq '';
    }
}
is($refused, 18, 'every replay refused, whichever worker took it');

# a header sent only to a silent recorder, so its AuthID is still unused
my $capture = $t->recorder("$dir/capture.log");
sub unsent_header {
    my $file = "$dir/unsent-" . int(rand(1e9));
    $t->client('-s', "127.0.0.1:$capture", '-u', $alice, '-t',
               "127.0.0.1:$echo", '-n', 10, '--timeout', 1,
               '--replay-file', $file, 'raw');
    return read_file($file);
}

my $tampered = unsent_header();
ok(length $tampered > 42, 'unsent header captured');
substr($tampered, 50, 1) = chr(ord(substr($tampered, 50, 1)) ^ 1);
($got) = raw($t->port('drain'), $tampered, 3);
is($got, '', 'tampered header: nothing sent back');
log_has(qr/vmess: (?:bad header|authentication failed)/,
        'tampered header logged');

my $truncated = substr(unsent_header(), 0, 30);
($got, $closed) = raw($t->port('drain'), $truncated, 5);
is($got, '', 'truncated header: nothing sent back');
log_has(qr/vmess: incomplete header, 30 bytes received/,
        'truncated header logged with its size');

my $unknown_before = () = $t->error_log() =~ /vmess: unknown user/g;
my ($rc, $out) = $t->client('-s', $drain, '-u', random_uuid(),
                            '-t', "127.0.0.1:$target", '-n', 10, 'raw');
is($rc, 2, 'wrong user: no response header') or diag($out);
my $unknown_after = () = $t->error_log() =~ /vmess: unknown user/g;
is($unknown_after, $unknown_before + 1, 'wrong user logged as unknown user');

for my $skew (130, -130) {
    ($rc, $out) = $t->client('-s', $drain, '-u', $alice,
                             '-t', "127.0.0.1:$target", '-n', 10,
                             '--time-offset', $skew, 'raw');
    is($rc, 2, "skew $skew s: refused") or diag($out);
    # the server's clock is cached per event loop pass: allow one second
    my $sign = $skew < 0 ? '-' : '';
    my $abs = abs $skew;
    log_has(qr/vmess: clock skew $sign(?:@{[$abs - 1]}|$abs|@{[$abs + 1]}) s/,
            "skew $skew s logged with the offset");
}

for my $skew (100, -100) {
    ($rc, $out) = $t->client('-s', $drain, '-u', $alice,
                             '-t', "127.0.0.1:$echo", '-n', 1000,
                             '--time-offset', $skew, 'echo');
    is($rc, 0, "skew $skew s: accepted") or diag($out);
}

my $policy = '127.0.0.1:' . $t->port('policy');
($rc, $out) = $t->client('-s', $policy, '-u', $alice,
                         '-t', "127.0.0.1:$target", '-n', 10, 'raw');
isnt($rc, 0, 'private destination refused') or diag($out);
log_has(qr/vmess: destination 127\.0\.0\.1:$target denied/,
        'denied destination logged');

# fallback: the site gets exactly what the client sent
my $http = "GET /index.html HTTP/1.0\r\nHost: example.com\r\n\r\n";
raw($t->port('fallback'), $http, 1);
my $wrong_file = "$dir/wrong-header";
($rc) = $t->client('-s', $drain, '-u', random_uuid(), '-t',
                   "127.0.0.1:$target", '-n', 10, '--replay-file',
                   $wrong_file, 'raw');
my $wrong = read_file($wrong_file);
ok(length $wrong > 42, 'a wrong user\'s header captured');
raw($t->port('fallback'), $wrong, 1);
raw($t->port('fallback'), $header, 1);
sleep 0.5;

my @fb = split /\n/, read_file($fallback_log);
ok((grep { $_ eq length($http) . ' ' . unpack('H*', $http) } @fb),
   'fallback: HTTP request arrives byte for byte');
ok((grep { $_ eq length($wrong) . ' '
                 . unpack('H*', substr($wrong, 0, 64)) } @fb),
   'fallback: a wrong user\'s header arrives unchanged');
ok((grep { $_ eq length($header) . ' '
                 . unpack('H*', substr($header, 0, 64)) } @fb),
   'fallback: a replayed header arrives unchanged');

$t->stop();
is(read_file($target_log), '', 'nothing ever reached the VMess target');

$t->finish();
done_testing();
