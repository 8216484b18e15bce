#!/usr/bin/perl
# nginx -t: a valid configuration passes; each kind of bad configuration is
# refused with an emerg message naming the file and line.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use VMessTest qw/random_uuid write_file/;

my $t = VMessTest->new();
my $uuid = random_uuid();

sub conf {
    my (%o) = @_;
    my $zone = $o{zone} // "    vmess_zone vmess:1m;\n";
    my $extra = $o{extra} // '';
    return <<"EOF";
%%GLOBALS%%
events { }
stream {
$zone    server {
        listen 127.0.0.1:%%PORT_vmess%%;
        vmess on;
        vmess_user $uuid;
$extra        proxy_pass \$vmess_target;
    }
}
EOF
}

# line number of the first line of the generated file matching re
sub line_of {
    my ($name, $re) = @_;
    my @lines = split /\n/, VMessTest::read_file($t->dir() . "/$name");
    for my $i (0 .. $#lines) {
        return $i + 1 if $lines[$i] =~ $re;
    }
    return -1;
}

sub refused {
    my ($name, $conf, $marker, $msg) = @_;
    $t->write_conf($conf, "$name.conf");
    my ($rc, $out) = $t->test_conf("$name.conf");
    my $line = line_of("$name.conf", $marker);
    isnt($rc, 0, "$name: nginx -t fails");
    like($out, qr/\[emerg\] .*\Q$msg\E.* in \Q@{[$t->dir()]}\E\/$name\.conf:$line/,
         "$name: message with file:line") or diag($out);
}

$t->write_conf(conf(extra => "        vmess_security aes-128-gcm none;\n"
                    . "        vmess_fallback 127.0.0.1:8080;\n"
                    . "        vmess_legacy on;\n"
                    . "        vmess_strict_nonce on;\n"
                    . "        vmess_allow_private off;\n"
                    . "        vmess_websocket /ray max_frame=64k;\n"
                    . "        vmess_httpupgrade /up host=a.test;\n"),
               'good.conf');
my ($rc, $out) = $t->test_conf('good.conf');
is($rc, 0, 'a valid configuration passes nginx -t') or diag($out);

refused('bad_uuid', conf(extra => "        vmess_user 1234-not-a-uuid;\n"),
        qr/1234-not-a-uuid/, 'invalid UUID "1234-not-a-uuid"');
refused('bad_security',
        conf(extra => "        vmess_security aes-256-gcm;\n"),
        qr/aes-256-gcm/, 'unknown security "aes-256-gcm"');
refused('bad_fallback',
        conf(extra => "        vmess_fallback no_such_host_x:notaport;\n"),
        qr/vmess_fallback/, 'invalid port in "vmess_fallback" address');
refused('bad_alter_id',
        conf(extra => "        vmess_user $uuid bob alter_id=70000;\n"),
        qr/alter_id=70000/, 'invalid parameter "alter_id=70000"');
refused('no_zone', conf(zone => ''), qr/vmess on;/,
        '"vmess_zone" is not defined for "vmess"');
refused('upgrade_same_path',
        conf(extra => "        vmess_websocket /ray;\n"
                      . "        vmess_httpupgrade /ray;\n"),
        qr/vmess_httpupgrade/,
        '"vmess_websocket" and "vmess_httpupgrade" need different paths,'
        . ' "/ray" is both');
refused('upgrade_max_frame',
        conf(extra => "        vmess_httpupgrade /up max_frame=64k;\n"),
        qr/vmess_httpupgrade/, 'invalid parameter "max_frame=64k"');
refused('upgrade_bad_path',
        conf(extra => "        vmess_httpupgrade up;\n"),
        qr/vmess_httpupgrade/, 'invalid httpupgrade path "up"');
my $off = conf(extra => "        vmess_httpupgrade /up;\n")
    =~ s/vmess on;/vmess off;/r;
refused('upgrade_no_vmess', $off, qr/vmess_httpupgrade \/up/,
        '"vmess_httpupgrade" needs "vmess on"');
refused('upgrade_twice',
        conf(extra => "        vmess_httpupgrade /a;\n"
                      . "        vmess_httpupgrade /b;\n"),
        qr/vmess_httpupgrade \/b/, '"vmess_httpupgrade" directive is duplicate');

refused('mux_stall_bad',
        conf(extra => "        vmess_mux_stall_timeout 5q;\n"),
        qr/vmess_mux_stall_timeout/,
        '"vmess_mux_stall_timeout" directive invalid value');

write_file($t->dir() . '/users', "# users\n" . random_uuid() . " carol\n"
                                 . "\nnot-a-uuid dave\n");
$t->write_conf(conf(extra => "        vmess_user_file %%TESTDIR%%/users;\n"),
               'bad_user_file.conf');
($rc, $out) = $t->test_conf('bad_user_file.conf');
isnt($rc, 0, 'bad user file: nginx -t fails');
like($out, qr/\[emerg\] .*invalid UUID "not-a-uuid".* in \Q@{[$t->dir()]}\E\/users:4/,
     'bad user file: message names the user file and its line')
    or diag($out);

done_testing();
