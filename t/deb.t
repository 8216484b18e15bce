#!/usr/bin/perl
# make deb (issue #18): the package built, lintian clean, installed with
# dpkg -i on this machine: the module in /usr/lib/nginx/modules, its
# load_module file in modules-available enabled by a modules-enabled link,
# Depends on the installed nginx's ABI; nginx -t with the stock
# /etc/nginx/nginx.conf plus a vmess stream server, and the installed
# vmess-links prints its link from that config; one v2ray 4.34 session
# (1 MiB each way) through an nginx that loads only what modules-enabled
# loads; then dpkg -r: the module gone, the stock config still passes
# nginx -t, the vmess server no longer does; dpkg --purge leaves
# modules-enabled as it was.  Always /usr/sbin/nginx, the nginx the
# package is for.
#
# It changes the system, so it runs only as root (CI does) and only when
# the package is not installed already; otherwise it is skipped, saying
# why.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MIME::Base64 qw/decode_base64/;
use VMessTest qw/random_uuid read_file write_file/;

my $PKG = 'libnginx-mod-stream-vmess';
my $ENABLED = '/etc/nginx/modules-enabled';
my $LINK = "$ENABLED/70-mod-stream-vmess.conf";
my $SO = '/usr/lib/nginx/modules/ngx_stream_vmess_module.so';
my $LINKS = "/usr/share/$PKG/vmess-links";

plan skip_all => 'deb.t installs a package into the system: run it as root'
    if $> != 0;
plan skip_all => 'not a Debian system with nginx and dpkg-buildpackage'
    unless -f '/etc/nginx/nginx.conf' && -x '/usr/bin/dpkg-buildpackage';
plan skip_all => "$PKG is installed already: deb.t leaves it alone"
    if installed();

sub installed {
    my $st = `dpkg-query -W -f '\${Status}' $PKG 2>/dev/null`;
    return $st =~ /\b(installed|config-files|unpacked|half-\w+)$/;
}

# dpkg, waiting while another apt or dpkg holds the lock
sub dpkg {
    my @cmd = @_;
    my ($rc, $out);
    for (1 .. 90) {
        $out = `dpkg @cmd 2>&1`;
        $rc = $? >> 8;
        last unless $rc && $out =~ /lock/i;
        sleep 2;
    }
    return ($rc, $out);
}

my $t = VMessTest->new(nginx => '/usr/sbin/nginx');
my $dir = $t->dir();
my $top = VMessTest::top();
my $alice = random_uuid();
my $enabled_before = join ' ', sort map { s{.*/}{}r } glob "$ENABLED/*";

# whatever happens, the system is left as it was
my $touched;
END {
    local $?;
    dpkg('--purge', $PKG) if $touched && installed();
}

# ---- build

my $version = `dpkg-parsechangelog -l $top/debian/changelog -S Version`;
my $arch = `dpkg --print-architecture`;
chomp($version, $arch);
my $deb = "$top/objs/${PKG}_${version}_$arch.deb";
unlink $deb;

system("make -C $top deb > $dir/make-deb.log 2>&1");
is($? >> 8, 0, 'make deb') or diag(read_file("$dir/make-deb.log"));
ok(-f $deb, "built $deb");
my @tags = grep { /^[EW]: / } split /\n/, read_file("$dir/make-deb.log");
ok(!@tags, 'lintian: no error or warning') or diag(join "\n", @tags);

my $abi = `dpkg-query -W -f '\${Provides}' nginx` =~ /(nginx-abi-[\w.+~-]+)/
    ? $1 : 'no nginx-abi in nginx\'s Provides';
my $depends = `dpkg-deb -f $deb Depends`;
like($depends, qr/(^|, )\Q$abi\E(,|$)/m,
     "Depends on the installed nginx's ABI ($abi)");
like($depends, qr/(^|, )libnginx-mod-stream(,|$)/m,
     'Depends on libnginx-mod-stream (loaded before it)');

# ---- install

$touched = 1;
my ($rc, $out) = dpkg('-i', $deb);
is($rc, 0, 'dpkg -i') or diag($out);
ok(-f $SO, "$SO installed");
is(read_file('/usr/share/nginx/modules-available/mod-stream-vmess.conf'),
   "load_module modules/ngx_stream_vmess_module.so;\n",
   'mod-stream-vmess.conf holds the load_module line');
is(readlink($LINK), '/usr/share/nginx/modules-available/mod-stream-vmess.conf',
   "$LINK links to it");
ok(-l "$ENABLED/50-mod-stream.conf",
   'the stream module is enabled with a lower number (loaded first)');

my $stream = <<'EOF' =~ s/ALICE/$alice/r;
stream {
    vmess_zone vmess:1m;
    log_format vmess '$vmess_status $vmess_user $vmess_target';
    server {
        listen 127.0.0.1:%%PORT_vmess%%;
        vmess on;
        vmess_user ALICE alice;
        vmess_allow_private on;
        proxy_pass $vmess_target;
        access_log %%TESTDIR%%/access.log vmess;
    }
}
EOF

$t->write_conf("include /etc/nginx/nginx.conf;\n$stream", 'stock.conf');
my $stock_test = "/usr/sbin/nginx -t -c $dir/stock.conf 2>&1";
$out = `$stock_test`;
is($? >> 8, 0, 'nginx -t: the stock nginx.conf plus a vmess stream server')
    or diag($out);
$out = `/usr/sbin/nginx -t -c /etc/nginx/nginx.conf 2>&1`;
is($? >> 8, 0, 'nginx -t: the stock nginx.conf') or diag($out);

# the installed vmess-links reads the same config (Debian's stock files
# included) and finds the one server and user
$out = `$LINKS -c $dir/stock.conf -f link 2>&1`;
my ($json) = $out =~ m{^vmess://(\S+)$} ? (decode_base64($1)) : ('');
my $vmess_port = $t->port('vmess');
like($json, qr/"add":"127\.0\.0\.1","port":"$vmess_port","id":"$alice"/,
     'the installed vmess-links prints the server\'s link') or diag($out);

# ---- one v2ray session through the installed module

# modules-enabled names "modules/…" relative to the prefix, which is
# /usr/share/nginx (its modules a link to /usr/lib/nginx/modules) for
# the system nginx and the test dir here
symlink('/usr/lib/nginx/modules', "$dir/modules") or die "symlink: $!";
$t->write_conf(<<"EOF");
include $ENABLED/*.conf;
daemon off;
error_log $dir/error.log info;
pid $dir/nginx.pid;
events { worker_connections 64; }
$stream
EOF
$t->run();
my $echo = $t->target('echo');
my $port = $t->v2ray_client(server => $t->port('vmess'), uuid => $alice,
                            security => 'aes-128-gcm',
                            target_host => '127.0.0.1',
                            target_port => $echo);
is($t->plain_echo($port, 1024 * 1024), 1,
   'v2ray 4.34 through the installed module: 1 MiB each way');
$t->stop();
like(read_file("$dir/access.log"), qr/^ok alice 127\.0\.0\.1:$echo$/m,
     'the session is logged');
$t->finish();

# ---- remove, purge

($rc, $out) = dpkg('-r', $PKG);
is($rc, 0, 'dpkg -r') or diag($out);
ok(!-e $SO && !-l $LINK && !-e $LINKS,
   'the module, its modules-enabled link and vmess-links are gone');
$out = `/usr/sbin/nginx -t -c /etc/nginx/nginx.conf 2>&1`;
is($? >> 8, 0, 'nginx -t: the stock nginx.conf still passes') or diag($out);
$out = `$stock_test`;
like($out, qr/unknown directive "vmess_zone"/,
     'the vmess server no longer does (the module is not loaded)');

($rc, $out) = dpkg('--purge', $PKG);
is($rc, 0, 'dpkg --purge') or diag($out);
is(join(' ', sort map { s{.*/}{}r } glob "$ENABLED/*"), $enabled_before,
   'modules-enabled is as it was before');

done_testing();
