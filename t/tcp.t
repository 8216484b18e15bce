#!/usr/bin/perl
# VMess over TCP with our own client: every security and option
# combination, AEAD and legacy headers, chunk sizes, byte-exact echo, and
# the access log variables.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use VMessTest qw/random_uuid/;

my $t = VMessTest->new();
my $alice = random_uuid();
my $bob = random_uuid();
my $source = $t->target('source');
my $sink = $t->target('sink');

my $conf = <<'EOF';
%%GLOBALS%%
events { worker_connections 1024; }
stream {
    vmess_zone vmess:1m;
    log_format vmess '$vmess_status|$vmess_user|$vmess_uuid|$vmess_target|'
                     '$vmess_target_host|$vmess_target_port|$vmess_command|'
                     '$vmess_security|$vmess_header';
    server {
        listen 127.0.0.1:%%PORT_vmess%%;
        vmess on;
        vmess_user ALICE alice@example.com;
        vmess_user BOB alter_id=4;
        vmess_legacy on;
        vmess_allow_private on;
        proxy_pass $vmess_target;
        access_log %%TESTDIR%%/access.log vmess;
    }
    server {
        listen 127.0.0.1:%%PORT_plainsource%%;
        proxy_pass 127.0.0.1:SOURCE;
    }
    server {
        listen 127.0.0.1:%%PORT_plainsink%%;
        proxy_pass 127.0.0.1:SINK;
    }
}
EOF
$conf =~ s/ALICE/$alice/;
$conf =~ s/BOB/$bob/;
$conf =~ s/SOURCE/$source/;
$conf =~ s/SINK/$sink/;
$t->write_conf($conf);
$t->run();

my $echo = $t->target('echo');
my $server = '127.0.0.1:' . $t->port('vmess');

sub echo_ok {
    my ($name, $n, @args) = @_;
    my ($rc, $out) = $t->client('-s', $server, '-t', "127.0.0.1:$echo",
                                '-n', $n, @args, 'echo');
    ok($rc == 0 && $out =~ /^echo ok .*bytes=\d+ sha256=[0-9a-f]{64}/m
       || $rc == 0 && $out =~ /^echo ok sessions=/m, $name) or diag($out);
}

my @cases = (
    ['aes-128-gcm', []],
    ['aes-128-gcm', ['--padding']],
    ['aes-128-gcm', ['--auth-length']],
    ['aes-128-gcm', ['--padding', '--auth-length']],
    ['aes-128-gcm', ['-o', '01']],
    ['chacha20-poly1305', []],
    ['chacha20-poly1305', ['--padding', '--auth-length']],
    ['chacha20-poly1305', ['-o', '05']],
    ['none', []],
    ['none', ['-o', '01']],
    ['none', ['--padding']],
    ['zero', []],
    ['aes-128-cfb', []],
    ['aes-128-cfb', ['-o', '05']],
    ['aes-128-cfb', ['-o', '00']],
);

for my $c (@cases) {
    my ($sec, $opts) = @$c;
    echo_ok("echo 1 MiB, $sec @$opts", 1048576, '-u', $alice, '-S', $sec,
            @$opts);
}

echo_ok('echo 4 MiB in v2ray-sized chunks', 4194304, '-u', $alice,
        '--chunk', '2030');
echo_ok('echo 1 MiB in 60000-byte chunks', 1048576, '-u', $alice,
        '--chunk', '60000');
# none: a chunk over several proxy buffers is passed on as it comes
echo_ok('echo 1 MiB in 60000-byte chunks, none', 1048576, '-u', $alice,
        '-S', 'none', '--chunk', '60000');
echo_ok('echo 1 byte', 1, '-u', $alice);
echo_ok('legacy header, primary id', 1048576, '-u', $alice, '--legacy');
echo_ok('legacy header, alter ids', 1048576, '-u', $bob, '--legacy',
        '--alter-id', '4', '-S', 'aes-128-cfb');
echo_ok('8 parallel sessions', 524288, '-u', $alice, '-c', '8');

# a target that closes every connection at once: the whole response is the
# header and the end marker, sealed in one go
my $closer = $t->daemon($^X, '-MIO::Socket::INET', '-e',
    '$| = 1; my $l = IO::Socket::INET->new(LocalAddr => "127.0.0.1:0",'
    . ' Listen => 16, ReuseAddr => 1) or die; print "listening ",'
    . ' $l->sockport(), "\n"; while (my $c = $l->accept()) { close $c }');

my @empty = (
    ['aes-128-gcm', []],
    ['aes-128-gcm', ['--padding', '--auth-length']],
    ['chacha20-poly1305', ['--padding']],
    ['none', []],
    ['aes-128-cfb', []],
    ['zero', []],
);

for my $c (@empty) {
    my ($sec, $opts) = @$c;
    # zero has no chunks, so no end marker: the close ends the response
    my $end = $sec eq 'zero' ? 'no' : 'yes';
    my ($rc, $out) = $t->client('-s', $server, '-u', $alice,
                                '-t', "127.0.0.1:$closer", '-S', $sec,
                                @$opts, '-n', 0, 'raw');
    ok($rc == 0 && $out =~ /^raw ok bytes=0 end=$end /m,
       "target closes at once, $sec @$opts: header, end marker $end")
        or diag($out);
}

# the bench's floor: the same client over plain TCP through plain
# proxy_pass, the bytes checked as in VMess downloads
for my $dirn (qw/download upload/) {
    my $port = $t->port($dirn eq 'download' ? 'plainsource' : 'plainsink');
    my ($rc, $out) = $t->client('--plain', '-s', "127.0.0.1:$port",
                                '-n', '3m', '-c', 2, $dirn);
    ok($rc == 0 && $out =~ /^$dirn ok sessions=2 bytes=6291456 /m,
       "--plain $dirn through plain proxy_pass") or diag($out);
}

my ($unchecked_rc, $unchecked_out) = $t->client('--plain', '--unchecked',
    '-s', '127.0.0.1:' . $t->port('plainsource'), '-n', '1m', 'download');
ok($unchecked_rc == 0 && $unchecked_out =~ /^download ok bytes=1048576 /m,
   '--plain --unchecked download') or diag($unchecked_out);

my ($plain_rc, $plain_out) = $t->client('--plain', '-s', $server, 'raw');
ok($plain_rc == 1
   && $plain_out =~ /--plain works with echo, upload, download and hold/,
   '--plain refused for raw') or diag($plain_out);

$t->stop();

my @log = split /\n/, VMessTest::read_file($t->dir() . '/access.log');
my $sessions = @cases + 6 + 8 + @empty;
is(scalar @log, $sessions, "one access log line per session ($sessions)");
is($log[0], "ok|alice\@example.com|$alice|127.0.0.1:$echo|127.0.0.1|$echo|"
            . "tcp|aes-128-gcm|aead", 'variables of an AEAD session');
ok((grep { $_ eq "ok|$bob|$bob|127.0.0.1:$echo|127.0.0.1|$echo|tcp|"
                 . "aes-128-cfb|legacy" } @log),
   'variables of a legacy session (no email: user is the uuid)');
ok((grep { /\|chacha20-poly1305\|aead$/ } @log), 'chacha20 logged');
ok((grep { /\|zero\|aead$/ } @log), 'zero logged');

$t->finish();
done_testing();
