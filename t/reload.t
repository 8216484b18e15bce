#!/usr/bin/perl
# Reload under load: nginx -s reload (HUP) with a changed user file while
# 500 sessions stream through two workers: every stream completes byte for
# byte, the new user works, the removed user is refused for new sessions.
# (10,000 sessions held at once: load.t.)
#
# RELOAD_STREAMS (default 500): sessions streaming across the reload.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw/sleep time/;
use VMessTest qw/random_uuid read_file write_file/;

my $t = VMessTest->new();
my ($alice, $bob, $carol) = (random_uuid(), random_uuid(), random_uuid());
my $dir = $t->dir();
my $streams = $ENV{RELOAD_STREAMS} || 500;
my $nofile = 4 * $streams + 1024;

write_file("$dir/users", "$alice alice\n$carol carol\n");
chmod 0644, "$dir/users";

$t->write_conf(<<"EOF2");
%%GLOBALS%%
worker_processes 2;
worker_rlimit_nofile $nofile;
events { worker_connections $nofile; }
stream {
    vmess_zone vmess:16m;
    log_format vmess '\$vmess_status \$vmess_user';
    server {
        listen 127.0.0.1:%%PORT_vmess%% reuseport backlog=4096;
        vmess on;
        vmess_user_file %%TESTDIR%%/users;
        vmess_allow_private on;
        proxy_pass \$vmess_target;
        access_log %%TESTDIR%%/access.log vmess;
    }
}
EOF2
$t->run();

my $port = $t->port('vmess');
my $echo = $t->target('echo');
my @base = ('-s', "127.0.0.1:$port", '-t', "127.0.0.1:$echo");

# established TCP connections from /proc/net/tcp: field 1 (local) or 2
# (remote) ending in port p
sub established {
    my ($field, $p) = @_;
    my $hex = sprintf ':%04X', $p;
    my $n = 0;
    for (split /\n/, read_file('/proc/net/tcp')) {
        my @f = split ' ';
        $n++ if @f > 3 && $f[$field] =~ /$hex$/ && $f[3] eq '01';
    }
    return $n;
}

# client connections nginx holds
sub proxied { return established(1, $port) }

sub lines { my $n = () = read_file("$dir/access.log") =~ /\n/g; $n }

# starts the client in the background; returns (pid, output file)
sub client_bg {
    my (@args) = @_;
    my $file = "$dir/client-" . int(rand(1e9));
    my $pid = fork() // die;
    if ($pid == 0) {
        open STDOUT, '>', $file;
        open STDERR, '>&', \*STDOUT;
        exec($t->{client}, @args) or exit 1;
    }
    return ($pid, $file);
}

# --- reload under load ----------------------------------------------------

my ($rc, $out) = $t->client(@base, '-u', $carol, '-n', '64k', 'echo');
is($rc, 0, 'before reload: carol works') or diag($out);

my $before = lines();
# alice stays in the user file: a session still in its header phase at
# the HUP meets the new list and must pass too
my ($pid, $file) = client_bg(@base, '-u', $alice, '-n', '2m', '-c',
                             $streams, '--timeout', 90, 'echo');
my $open = 0;
for (1 .. 1000) {
    $open = proxied();
    last if $open >= $streams * 3 / 4;
    sleep 0.02;
}
ok($open >= $streams * 3 / 4,
   "streams open before the reload ($open of $streams)");

write_file("$dir/users", "$alice alice\n$bob bob\n");
$t->reload();
my $done_at_reload = lines() - $before;
ok($done_at_reload < $streams,
   "HUP while streaming ($done_at_reload of $streams done at that moment)");

# new workers: bob gets in once they run
for (1 .. 50) {
    ($rc, $out) = $t->client(@base, '-u', $bob, '-n', '64k', 'echo');
    last if $rc == 0;
    sleep 0.1;
}
is($rc, 0, 'after reload: the new user works') or diag($out);
($rc, $out) = $t->client(@base, '-u', $carol, '-n', '64k', 'echo');
isnt($rc, 0, 'after reload: the removed user is refused for new sessions');
($rc, $out) = $t->client(@base, '-u', $alice, '-n', '64k', 'echo');
is($rc, 0, 'after reload: a kept user works') or diag($out);

waitpid($pid, 0);
$out = read_file($file);
like($out, qr/^echo ok sessions=$streams /m,
     "the $streams streams across the reload: all complete, verified")
    or diag($out);

$t->stop();
my @log = split /\n/, read_file("$dir/access.log");
is(scalar(grep { $_ eq 'ok alice' } @log), $streams + 1,
   'every alice session logged ok');
is(scalar(grep { $_ eq 'ok carol' } @log), 1,
   'carol: the one session before the reload only');
like($t->error_log(), qr/signal 1 \(SIGHUP\) received/, 'the HUP arrived');
unlike($t->error_log(), qr/exited on signal|exited with code [1-9]/,
       'no worker died');

$t->finish();
done_testing();
