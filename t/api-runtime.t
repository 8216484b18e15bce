#!/usr/bin/perl
# Users added and removed at runtime through the HTTP API (POST users,
# DELETE users/ID): a v2ray 4.34 client with an added user connects on
# both workers at once, a removed user's next sessions are refused and
# logged, "?kill=1" ends its open session, the user file is rewritten at
# each change and is what a reload loads, 100 parallel adds lose none, and
# bad requests get their documented JSON errors.

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

$SIG{PIPE} = 'IGNORE';

my $t = VMessTest->new();
my ($alice, $filer, $dave, $erin, $frank, $gina)
    = map { random_uuid() } 1 .. 6;
# the workers (nobody) write the file: a temporary one beside it, renamed
my $file = $t->dir() . '/users/users.txt';
mkdir $t->dir() . '/users';
chmod 0777, $t->dir() . '/users';
write_file($file, "# the API's users\n$filer filer\n");

$t->write_conf(<<'EOF' =~ s/\bALICE\b/$alice/gr);
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
    vmess_zone vmess:4m;
    log_format vmess '$pid $vmess_status $vmess_user';
    server {
        listen 127.0.0.1:%%PORT_vmess%% reuseport;
        vmess on;
        vmess_user ALICE alice;
        vmess_user_file %%TESTDIR%%/users/users.txt;
        vmess_legacy on;
        vmess_allow_private on;
        proxy_pass $vmess_target;
        access_log %%TESTDIR%%/access.log vmess;
    }
}
EOF
$t->run();

my $base = 'http://127.0.0.1:' . $t->port('api') . '/vmess/';
write_file($t->dir() . '/big.json',
           '{"id":"' . (' ' x 1048576) . '"}');

# (HTTP status, body) of curl ARGS... on PATH
sub api {
    my ($path, @args) = @_;
    my $cmd = join ' ', 'curl -s', (map { quotemeta } @args),
        "-w '\\n%{http_code}'", quotemeta "$base$path";
    my $out = `$cmd`;
    my ($body, $code) = $out =~ /^(.*)\n(\d+)$/s or return (0, $out);
    return ($code, $body);
}

sub add {
    my ($json, $query) = @_;
    return api('users' . ($query // ''), '-X', 'POST', '--data-binary',
               $json);
}

sub access_lines {
    my ($re) = @_;
    my $log = VMessTest::read_file($t->dir() . '/access.log');
    return $log =~ /$re/mg;
}

my $echo = $t->target('echo');
my %common = (server => $t->port('vmess'), target_host => '127.0.0.1',
              target_port => $echo, security => 'aes-128-gcm');
my %uuid = (alice => $alice, filer => $filer, dave => $dave,
            erin => $erin, frank => $frank);
my %port = map { $_ => $t->v2ray_client(%common, name => $_,
                                         uuid => $uuid{$_}) }
    sort keys %uuid;
# gina's client sends the legacy (alterId) header
$port{gina} = $t->v2ray_client(%common, name => 'gina', uuid => $gina,
                               alter_id => 4, legacy => 1);

# n sessions of 64 KiB through user's v2ray, one after the other, each
# ended in the zone before the next: how many echoed
sub sessions {
    my ($user, $n) = @_;
    my $ok = 0;
    for (1 .. $n) {
        $ok++ if $t->plain_echo($port{$user}, 65536, 5) eq '1';
        my $end = time() + 5;
        while (time() < $end) {
            my ($code, $body) = api("users/$user");
            last if $code != 200 || !decode_json($body)->{sessions_active};
            sleep 0.05;
        }
    }
    return $ok;
}

sub file_users {
    my $text = VMessTest::read_file($file);
    return join ',', sort map { (split ' ')[0] . ' ' . ((split ' ')[1] // '') }
        grep { !/^#/ && /\S/ } split /\n/, $text;
}

is(sessions('alice', 2), 2, 'alice (vmess_user): sessions work');
is(sessions('filer', 2), 2, 'filer (vmess_user_file): sessions work');
is(sessions('dave', 2), 0, 'dave: unknown before the API adds him');

# add: the next sessions of dave work at once, on both workers
my $start = time();
my ($code, $body) = add(qq({"id":"$dave","email":"dave"}));
is($code, 201, 'POST users dave: 201');
my $u = decode_json($body);
is_deeply([@$u{qw/uuid user enabled sessions_total/}],
          [$dave, 'dave', JSON::PP::true, 0], 'the answer is the new user');
# 8 sessions at once: reuseport spreads them over both workers
my @kids;
for (1 .. 8) {
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        exit($t->plain_echo($port{dave}, 65536, 5) eq '1' ? 0 : 1);
    }
    push @kids, $pid;
}
my $echoed = 0;
for (@kids) {
    waitpid($_, 0);
    $echoed++ if $? == 0;
}
my $took = time() - $start;
is($echoed, 8, 'dave: 8 parallel sessions right after the POST echo');
ok($took < 1, sprintf 'all within 1 s of the POST (%.2f s)', $took);
my %pids = map { $_ => 1 } access_lines(qr/^(\d+) ok dave$/m);
is(scalar keys %pids, 2, 'dave served by both workers');
is(sessions('dave', 4), 4, 'dave: 4 more sessions');
($code, $body) = api('users/dave');
is(decode_json($body)->{sessions_total}, 12, 'dave: 12 sessions counted');
is(file_users(), join(',', sort "$filer filer", "$dave dave"),
   'the user file holds filer and dave');
ok($t->wait_log(qr/vmess: user "dave" added by the API/), 'the add logged');

# a user added with an alter_id authenticates with the legacy header too
($code, $body) = add(qq({"id":"$gina","email":"gina","alter_id":4}));
is($code, 201, 'POST users gina (alter_id 4): 201');
is(sessions('gina', 4), 4, 'gina: 4 sessions with the legacy header');
ok(VMessTest::read_file($file) =~ /^$gina gina alter_id=4$/m,
   'the user file keeps her alter_id');
($code, $body) = api('users/gina', '-X', 'DELETE');
is($code, 200, 'DELETE users/gina: 200');
is(sessions('gina', 2), 0, 'gina refused');

# remove: dave's next sessions are refused, alice's are not
($code, $body) = api('users/dave', '-X', 'DELETE');
is($code, 200, 'DELETE users/dave: 200');
is(decode_json($body)->{uuid}, $dave, 'the answer is the removed user');
my $before = () = access_lines(qr/^\d+ unknown_user -$/m);
is(sessions('dave', 8), 0, 'dave refused at once: 8 of 8 sessions');
my $refused = () = access_lines(qr/^\d+ unknown_user -$/m);
is($refused - $before, 8, 'each logged as unknown_user');
%pids = map { $_ => 1 } access_lines(qr/^(\d+) unknown_user -$/m);
is(scalar keys %pids, 2, 'refused by both workers');
ok($t->wait_log(qr/unknown user, drain \d+ bytes/), 'the refusal logged');
is(sessions('alice', 2), 2, 'alice unaffected');
is(sessions('filer', 2), 2, 'filer unaffected');
is(file_users(), "$filer filer", 'the user file: dave gone');
($code, $body) = api('users/dave');
is($code, 404, 'GET users/dave: 404 after the removal');

# kill: erin's open session ends with her removal
($code, $body) = add(qq({"id":"$erin","email":"erin"}));
is($code, 201, 'POST users erin: 201');
my $held = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port{erin}")
    or die "connect: $!";
syswrite $held, 'x' x 1000;
my $sel = IO::Select->new($held);
my ($got, $buf) = ('', '');
while (length $got < 1000 && $sel->can_read(5)) {
    sysread($held, $buf, 65536) or last;
    $got .= $buf;
}
is(length $got, 1000, 'erin: a session open, echoing');
$start = time();
($code, $body) = api('users/erin?kill=1', '-X', 'DELETE');
is($code, 200, 'DELETE users/erin?kill=1: 200');
my $closed = 0;
while (time() < $start + 5 && $sel->can_read($start + 5 - time())) {
    if (!sysread($held, $buf, 65536)) {
        $closed = 1;
        last;
    }
}
ok($closed, sprintf 'the open session ended (%.1f s)', time() - $start);
ok($t->wait_log(qr/vmess: session of user "erin" ended by the API/),
   'the kill logged');
close $held;

# a user file's user may be removed (the file is the API's); a vmess_user
# may not
($code, $body) = api('users/filer', '-X', 'DELETE');
is($code, 200, 'DELETE users/filer: 200');
is(sessions('filer', 2), 0, 'filer refused');
ok($t->wait_log(qr/vmess: user "filer" removed, drain \d+ bytes/),
   'the refusal names filer');
is(file_users(), '', 'the user file: no user left');
($code, $body) = api("users/$alice", '-X', 'DELETE');
is_deeply([$code, $body],
          [409, qq({"error":"the user is in the configuration (vmess_user)"}\n)],
          'DELETE of a vmess_user: 409');

# filer comes back; frank is added; a reload loads the file
($code, $body) = add(qq({"id":"$filer","email":"filer"}));
is($code, 201, 'filer added again: 201');
is(sessions('filer', 2), 2, 'filer: sessions work again');
($code, $body) = add(qq({"id":"$frank","email":"frank","alter_id":0}));
is($code, 201, 'POST users frank: 201');
is(sessions('frank', 2), 2, 'frank: sessions work');
is(file_users(), join(',', sort "$filer filer", "$frank frank"),
   'the user file holds filer and frank');

my @old = sort $t->workers();
$t->reload();
my $end = time() + 10;
sleep 0.1 while (join(' ', sort $t->workers()) eq join(' ', @old)
                 || $t->workers() != 2) && time() < $end;
is(sessions('frank', 4), 4, 'after a reload frank (now from the file) works');
is(sessions('filer', 2), 2, 'filer too');
is(sessions('dave', 2), 0, 'dave is still gone');
($code, $body) = api('users/frank');
is(decode_json($body)->{sessions_total}, 6, 'frank: the counters survived');
($code, $body) = api('users/frank', '-X', 'DELETE');
is($code, 200, 'frank, from the file since the reload, removed: 200');
is(sessions('frank', 2), 0, 'frank refused');

# 100 adds in parallel lose none
my @many = map { random_uuid() } 1 .. 100;
@kids = ();
for my $i (0 .. $#many) {
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        my ($c) = add(qq({"id":"$many[$i]","email":"many$i"}));
        exit($c == 201 ? 0 : 1);
    }
    push @kids, $pid;
}
my $created = 0;
for (@kids) {
    waitpid($_, 0);
    $created++ if $? == 0;
}
is($created, 100, '100 parallel POSTs: 100 x 201');
($code, $body) = api('users');
my %listed = map { $_->{uuid} => 1 } @{decode_json($body)->{users}};
is(scalar(grep { $listed{$_} } @many), 100, 'GET users lists all 100');
my %infile = map { (split ' ')[0] => 1 } split /\n/,
    VMessTest::read_file($file);
is(scalar(grep { $infile{$_} } @many), 100, 'the user file holds all 100');
$port{many7} = $t->v2ray_client(%common, name => 'many7', uuid => $many[7]);
is(sessions('many7', 2), 2, 'one of them connects');

# bad requests: status and JSON error
my @bad = (
    ['{"id":"not-a-uuid"}', '', 400, 'invalid UUID'],
    [qq({"id":"$many[0]"}), '', 409, 'duplicate user'],
    [qq({"id":"$alice"}), '', 409, 'duplicate user'],
    [qq({"id":"@{[random_uuid()]}","email":"many3"}), '', 409,
     'duplicate email'],
    [qq({"id":"@{[random_uuid()]}"}), '?server=127.0.0.1:1', 400,
     'unknown server'],
    [qq({"id":"@{[random_uuid()]}","alter_id":70000}), '', 400,
     '\"alter_id\" takes 0 to 65535, \"kill\" is for a user'],
    [qq({"id":"@{[random_uuid()]}","email":"a b"}), '', 400,
     '\"id\" and \"email\" take 1 to 255 characters, no blank, quote, '
     . q{backslash or '#'}],
    ['{"email":"x"}', '', 400, '\"id\" is required'],
);
for my $b (@bad) {
    my ($json, $query, $want, $err) = @$b;
    ($code, $body) = add($json, $query);
    is_deeply([$code, $body], [$want, qq({"error":"$err"}\n)],
              "POST users $json$query: $want");
}
($code, $body) = api('users', '-X', 'POST', '--data-binary',
                     '@' . $t->dir() . '/big.json');
is_deeply([$code, $body], [413, qq({"error":"body too large"}\n)],
          '1 MiB body: 413');
($code, $body) = api('users/' . random_uuid(), '-X', 'DELETE');
is_deeply([$code, $body], [404, qq({"error":"unknown user"}\n)],
          'DELETE of an unknown user: 404');
($code, $body) = api("users/$dave", '-X', 'DELETE');
is($code, 404, 'DELETE of a removed user: 404');

$t->stop();
$t->finish();
done_testing();
