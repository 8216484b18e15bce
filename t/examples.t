#!/usr/bin/perl
# Every file in conf-examples/ passes nginx -t once its machine-specific
# paths and ports are pointed at the test dir.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use VMessTest qw/read_file write_file/;

my $t = VMessTest->new();
my $dir = $t->dir();

system("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test "
       . "-keyout $dir/key.pem -out $dir/cert.pem 2>/dev/null") == 0
    or BAIL_OUT('openssl req failed');

my @examples = sort glob(VMessTest::top() . '/conf-examples/*.conf');
ok(@examples >= 4, 'examples present');

for my $path (@examples) {
    (my $name = $path) =~ s{.*/}{};
    my $conf = read_file($path);
    my $globals = $t->globals();

    $conf =~ s/^load_module .*ngx_stream_vmess_module\.so;\n/$globals/m;
    $conf =~ s/^(\s*listen\s+)(?:[\d.]+:)?(\d+)/$1 . '127.0.0.1:'
        . $t->port("$name-$2")/gme;
    $conf =~ s/^(\s*vmess_dynamic_port)((?:\s+\d+)+)/$1 . join('',
        map { ' ' . $t->port("$name-$_") } split ' ', $2)/gme;
    $conf =~ s{/var/log/nginx/}{$dir/}g;
    $conf =~ s{/run/nginx-vmess/}{$dir/}g;
    $conf =~ s{/etc/ssl/certs/\S+\.pem}{$dir/cert.pem}g;
    $conf =~ s{/etc/ssl/private/\S+\.key}{$dir/key.pem}g;
    $conf =~ s{/etc/nginx/vmess\.users}
              {VMessTest::top() . '/conf-examples/vmess.users'}ge;
    $conf =~ s/^(\s*root\s+).*;/$1$dir;/gm;

    write_file("$dir/$name", $conf);
    my ($rc, $out) = $t->test_conf($name);
    is($rc, 0, "nginx -t $name") or diag($out);
}

done_testing();
