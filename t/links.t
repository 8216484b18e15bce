#!/usr/bin/perl
# tools/vmess-links (issue #18): client configs and share links read from
# a running config.
# The v2ray form, as printed (only its SOCKS inbound swapped for a
# dokodemo-door to our echo target), is run by the real v2ray 4.34 client
# over tcp, tls, ws and ws+tls; 1 MiB each way, sha256 compared, the access
# log shows the user, header and security the form chose.  The TLS forms
# verify the server's certificate (the test CA as v2ray's SSL_CERT_FILE),
# so their TLS name is checked too.
# Every form of every transport (httpupgrade from config text alone) is
# checked field by field against the fields its project documents: the
# vmess:// link (v2rayN's version 2), the v2ray/Xray outbound, sing-box's
# VMess outbound, mihomo's VMess proxy; the subscription is the base64 of
# the server's links.  Selection, include, vmess_user_file, inheritance
# and the refusals are checked on their output.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use MIME::Base64 qw/decode_base64/;
use YAML::XS ();
use VMessTest qw/random_uuid read_file write_file/;

$YAML::XS::Boolean = 'JSON::PP';

my $t = VMessTest->new();
my $dir = $t->dir();
my $tool = VMessTest::top() . '/tools/vmess-links';
my ($alice, $bob, $carol, $dave) = map { random_uuid() } 1 .. 4;

VMessTest::make_cert($dir, 'www.example.test');

write_file("$dir/users.txt", "# the tls server's own users\n"
           . "$carol carol\n\n$dave dave alter_id=2   # legacy off\n");

$t->write_conf(<<'EOF');
%%GLOBALS%%
events { worker_connections 1024; }
include stream.conf;
EOF

$t->write_conf(<<'EOF' =~ s/ALICE/$alice/r =~ s/BOB/$bob/r, 'stream.conf');
stream {
    vmess_zone vmess:1m;
    vmess_user ALICE alice@example.test;
    vmess_user BOB bob alter_id=4;
    vmess_legacy on;
    vmess_allow_private on;
    ssl_certificate server.crt;
    ssl_certificate_key server.key;
    log_format vmess '$vmess_status $vmess_user $vmess_header '
                     '$vmess_security $vmess_target';
    access_log %%TESTDIR%%/access.log vmess;

    server {
        listen 127.0.0.1:%%PORT_tcp%%;
        vmess on;
        proxy_pass $vmess_target;
    }
    server {
        listen 127.0.0.1:%%PORT_tls%% ssl;
        vmess on;
        vmess_user_file users.txt;
        vmess_legacy off;
        vmess_security none chacha20-poly1305;
        proxy_pass $vmess_target;
    }
    server {
        listen 127.0.0.1:%%PORT_ws%%;
        vmess on;
        vmess_websocket /ray host=cdn.example.test;
        proxy_pass $vmess_target;
    }
    server {
        listen 127.0.0.1:%%PORT_wss%% ssl;
        vmess on;
        vmess_websocket /wss;
        proxy_pass $vmess_target;
    }
    server {
        listen 127.0.0.1:%%PORT_plain%%;
        proxy_pass 127.0.0.1:1;
    }
}
EOF
$t->run();

my %port = map { $_ => $t->port($_) } qw/tcp tls ws wss/;

# runs the tool; returns (exit status, stdout, stderr)
sub links {
    my @args = @_;
    my $cmd = join ' ', map { quotemeta } $tool, @args;
    my $out = `$cmd 2>$dir/links.err`;
    return ($? >> 8, $out, read_file("$dir/links.err"));
}

sub form {
    my ($format, @args) = @_;
    my ($rc, $out, $err) = links('-c', "$dir/nginx.conf", '-f', $format,
                                 @args);
    is($rc, 0, "vmess-links -f $format @args") or diag($err);
    return $out;
}

# the file's text once it matches re (sessions are logged when they end)
sub wait_file {
    my ($file, $re) = @_;
    for (1 .. 100) {
        my $text = read_file($file);
        return $text if $text =~ $re;
        select undef, undef, undef, 0.05;
    }
    return read_file($file);
}

# ---- the v2ray form with the real client

my $echo = $t->target('echo');

for my $c (['tcp', 'alice@example.test', 'aead aes-128-gcm'],
           ['tls', 'carol', 'aead chacha20-poly1305'],
           ['ws', 'alice@example.test', 'aead aes-128-gcm'],
           ['wss', 'bob', 'legacy aes-128-gcm'])
{
    my ($name, $user, $expect) = @$c;
    my $config = decode_json(form('v2ray', '-s', $port{$name}, '-u', $user));
    my $listen = $t->port("v2ray-$name");
    $config->{inbounds} = [{
        listen => '127.0.0.1', port => 0 + $listen,
        protocol => 'dokodemo-door',
        settings => { address => '127.0.0.1', port => 0 + $echo,
                      network => 'tcp' } }];
    write_file("$dir/v2ray-$name.json", encode_json($config));
    $t->v2ray("v2ray-$name", $listen, SSL_CERT_FILE => "$dir/ca.crt");
    is($t->plain_echo($listen, 1024 * 1024), 1,
       "$name: v2ray 4.34 with the printed config, 1 MiB each way")
        or diag(read_file("$dir/v2ray-$name.log"));
    like(wait_file("$dir/access.log", qr/^ok \Q$user\E /m),
         qr/^ok \Q$user\E $expect 127\.0\.0\.1:$echo$/m,
         "$name: session of $user ($expect) logged");
}

# ---- the documented fields of each form

# a schema: 'string', 'number', 'bool', ['one of', ...] (a string), list_of($s),
# { key => $s, '?key' => $s (optional) }; returns the
# differences
sub list_of { return bless [$_[0]], 'ListOf' }

sub check {
    my ($v, $s, $path) = @_;
    my $leaf = ref $v ? '' : JSON::PP->new->allow_nonref->encode($v);

    if (ref $s eq 'HASH') {
        return "$path: not an object" unless ref $v eq 'HASH';
        my %known = map { (my $k = $_) =~ s/^\?//; $k => $s->{$_} } keys %$s;
        my @e = map { "$path.$_: not documented" }
                grep { !exists $known{$_} } sort keys %$v;
        push @e, map { "$path.$_: missing" }
                 grep { !exists $v->{$_} } grep { !/^\?/ } sort keys %$s;
        push @e, map { check($v->{$_}, $known{$_}, "$path.$_") }
                 grep { exists $known{$_} } sort keys %$v;
        return @e;
    }
    if (ref $s eq 'ListOf') {
        return "$path: not a list" unless ref $v eq 'ARRAY';
        return map { check($v->[$_], $s->[0], "$path\[$_]") } 0 .. $#$v;
    }
    if (ref $s eq 'ARRAY') {
        return () if !ref $v && $leaf =~ /^"/ && grep { $_ eq $v } @$s;
        return "$path: \"" . ($v // 'null') . "\" not one of @$s";
    }
    return () if $s eq 'bool' && JSON::PP::is_bool($v);
    return () if $s eq 'number' && !ref $v && $leaf =~ /^\d+$/;
    return () if $s eq 'string' && !ref $v && $leaf =~ /^"/;
    return "$path: not a $s: " . ($leaf || ref $v);
}

# v2rayN's share link, version 2: every field a string
my $LINK = {
    v => ['2'], ps => 'string', add => 'string', port => 'string',
    id => 'string', aid => 'string',
    scy => [qw/auto aes-128-gcm chacha20-poly1305 none zero/],
    net => [qw/tcp kcp ws h2 quic grpc httpupgrade/],
    type => [qw/none http srtp utp wechat-video dtls wireguard/],
    host => 'string', path => 'string', tls => ['', 'tls'],
    sni => 'string', alpn => 'string',
};

# v2ray 4.x / Xray: OutboundObject, VMess settings, StreamSettingsObject
my $V2RAY_OUT = {
    tag => 'string', protocol => ['vmess'],
    settings => { vnext => list_of({
        address => 'string', port => 'number',
        users => list_of({ id => 'string', alterId => 'number',
                           security => [qw/aes-128-gcm chacha20-poly1305 auto
                                        none zero/] }) }) },
    streamSettings => {
        network => [qw/tcp kcp ws http domainsocket quic grpc
                       httpupgrade/],
        '?security' => ['none', 'tls'],
        '?tlsSettings' => { serverName => 'string',
                            '?alpn' => list_of('string'),
                            '?allowInsecure' => 'bool' },
        '?wsSettings' => { path => 'string', headers => { Host => 'string' } },
        '?httpupgradeSettings' => { path => 'string', host => 'string' },
    },
};
my $V2RAY = {
    log => { loglevel => [qw/debug info warning error none/] },
    inbounds => list_of({ tag => 'string', listen => 'string',
                         port => 'number', protocol => ['socks'],
                         settings => { udp => 'bool' } }),
    outbounds => list_of($V2RAY_OUT),
};

# sing-box: VMess outbound, TLS outbound, V2Ray transport (ws,
# httpupgrade)
my $SINGBOX = {
    inbounds => list_of({ type => ['socks'], tag => 'string',
                         listen => 'string', listen_port => 'number' }),
    outbounds => list_of({
        type => ['vmess'], tag => 'string', server => 'string',
        server_port => 'number', uuid => 'string',
        security => [qw/auto none zero aes-128-gcm chacha20-poly1305
                        aes-128-ctr/],
        alter_id => 'number',
        '?tls' => { enabled => 'bool', server_name => 'string',
                    '?alpn' => list_of('string') },
        '?transport' => { type => ['ws', 'httpupgrade'], path => 'string',
                          '?headers' => { Host => 'string' },
                          '?host' => 'string' } }),
};

# mihomo: the VMess proxy, its TLS fields and ws-opts
my $CLASH = {
    proxies => list_of({
        name => 'string', type => ['vmess'], server => 'string',
        port => 'number', uuid => 'string', alterId => 'number',
        cipher => [qw/auto none zero aes-128-gcm chacha20-poly1305/],
        udp => 'bool', '?tls' => 'bool', '?servername' => 'string',
        '?alpn' => list_of('string'), '?network' => [qw/ws http h2 grpc/],
        '?ws-opts' => { path => 'string', headers => { Host => 'string' },
                        '?v2ray-http-upgrade' => 'bool' } }),
};

sub decode_link {
    my ($link) = @_;
    my ($b64) = $link =~ m{^vmess://([A-Za-z0-9+/=]+)$} or return undef;
    return decode_json(decode_base64($b64));
}

# the forms of one user of one server: a hash of decoded forms
sub forms {
    my ($conf, $server, $user, @more) = @_;
    my %f;
    my @sel = ('-s', $server, '-u', $user, @more);
    my $run = sub {
        my ($rc, $out, $err) = links('-c', $conf, '-f', $_[0], @sel);
        is($rc, 0, "-f $_[0] @sel") or diag($err);
        return $out;
    };
    my @links = split /\n/, $run->('link');
    is(scalar @links, 1, 'one link');
    $f{link} = decode_link($links[0]);
    $f{v2ray} = decode_json($run->('v2ray'));
    $f{singbox} = decode_json($run->('sing-box'));
    $f{clash} = YAML::XS::Load($run->('clash'));
    for my $c (['link', $LINK], ['v2ray', $V2RAY], ['singbox', $SINGBOX],
               ['clash', $CLASH])
    {
        my @e = check($f{$c->[0]}, $c->[1], $c->[0]);
        ok(!@e, "$server $user: $c->[0] has the documented fields")
            or diag(join "\n", @e);
    }
    return \%f;
}

# what every form of a transport must say
sub expect {
    my ($f, %e) = @_;
    my $l = $f->{link};
    my $v = $f->{v2ray}{outbounds}[0];
    my $vs = $v->{streamSettings};
    my $vn = $v->{settings}{vnext}[0];
    my $s = $f->{singbox}{outbounds}[0];
    my $c = $f->{clash}{proxies}[0];
    my $tls = $e{tls} ? 'tls' : '';
    my $name = "$e{net}" . ($tls ? '+tls' : '');

    is_deeply([@$l{qw/v add port id aid scy net type host path tls sni
                      alpn/}],
              ['2', $e{add}, "$e{port}", $e{id}, "$e{aid}", $e{scy},
               $e{net}, 'none', $e{host} // '', $e{path} // '', $tls,
               $e{sni} // '', $e{alpn} // ''],
              "$name: link fields");
    is_deeply([$vn->{address}, $vn->{port}, $vn->{users}[0]{id},
               $vn->{users}[0]{alterId}, $vn->{users}[0]{security},
               $vs->{network}, $vs->{security} // ''],
              [$e{add}, $e{port}, $e{id}, $e{aid}, $e{scy}, $e{net}, $tls],
              "$name: v2ray outbound");
    is_deeply([@$s{qw/server server_port uuid alter_id security/}],
              [$e{add}, $e{port}, $e{id}, $e{aid}, $e{scy}],
              "$name: sing-box outbound");
    is_deeply([@$c{qw/server port uuid alterId cipher/}],
              [$e{add}, $e{port}, $e{id}, $e{aid}, $e{scy}],
              "$name: clash proxy");

    if ($tls) {
        my @alpn = $e{alpn} ? split(/,/, $e{alpn}) : ();
        is_deeply([$vs->{tlsSettings}{serverName},
                   $vs->{tlsSettings}{alpn} // []],
                  [$e{sni}, \@alpn], "$name: v2ray tlsSettings");
        is_deeply([$s->{tls}{enabled}, $s->{tls}{server_name},
                   $s->{tls}{alpn} // []],
                  [JSON::PP::true, $e{sni}, \@alpn], "$name: sing-box tls");
        is_deeply([$c->{tls}, $c->{servername}, $c->{alpn} // []],
                  [JSON::PP::true, $e{sni}, \@alpn], "$name: clash tls");
    } else {
        ok(!exists $vs->{tlsSettings} && !exists $s->{tls}
           && !exists $c->{tls}, "$name: no TLS in any form");
    }

    if ($e{net} eq 'tcp') {
        ok(!exists $s->{transport} && !exists $c->{network}
           && !exists $vs->{wsSettings}, "$name: no transport settings");
    } elsif ($e{net} eq 'ws') {
        is_deeply($vs->{wsSettings},
                  { path => $e{path}, headers => { Host => $e{host} } },
                  "$name: v2ray wsSettings");
        is_deeply($s->{transport}, { type => 'ws', path => $e{path},
                                     headers => { Host => $e{host} } },
                  "$name: sing-box transport");
        is_deeply([$c->{network}, $c->{'ws-opts'}],
                  ['ws', { path => $e{path},
                           headers => { Host => $e{host} } }],
                  "$name: clash ws-opts");
    } else {
        is_deeply($vs->{httpupgradeSettings},
                  { path => $e{path}, host => $e{host} },
                  "$name: Xray httpupgradeSettings");
        is_deeply($s->{transport}, { type => 'httpupgrade',
                                     path => $e{path}, host => $e{host} },
                  "$name: sing-box transport");
        is_deeply([$c->{network}, $c->{'ws-opts'}],
                  ['ws', { path => $e{path},
                           headers => { Host => $e{host} },
                           'v2ray-http-upgrade' => JSON::PP::true }],
                  "$name: mihomo ws-opts with v2ray-http-upgrade");
    }
}

my $conf = "$dir/nginx.conf";

expect(forms($conf, $port{tcp}, 'alice@example.test'),
       net => 'tcp', add => '127.0.0.1', port => $port{tcp}, id => $alice,
       aid => 0, scy => 'aes-128-gcm');
expect(forms($conf, "127.0.0.1:$port{tcp}", $bob),
       net => 'tcp', add => '127.0.0.1', port => $port{tcp}, id => $bob,
       aid => 4, scy => 'aes-128-gcm');
expect(forms($conf, $port{tls}, 'dave'),
       net => 'tcp', tls => 1, add => '127.0.0.1', port => $port{tls},
       id => $dave, aid => 0, scy => 'chacha20-poly1305',
       sni => 'www.example.test');
expect(forms($conf, $port{ws}, 'alice@example.test'),
       net => 'ws', add => '127.0.0.1', port => $port{ws}, id => $alice,
       aid => 0, scy => 'aes-128-gcm', host => 'cdn.example.test',
       path => '/ray');
expect(forms($conf, $port{wss}, 'bob', '-a', 'vpn.example.test'),
       net => 'ws', tls => 1, add => 'vpn.example.test', port => $port{wss},
       id => $bob, aid => 4, scy => 'aes-128-gcm', host => 'www.example.test',
       path => '/wss', sni => 'www.example.test', alpn => 'http/1.1');

# httpupgrade: from the config text alone (nginx does not run it here)
write_file("$dir/up.conf", <<'EOF' =~ s/ALICE/$alice/gr);
stream {
    vmess_zone vmess:1m;
    server {
        listen 443 ssl;
        ssl_certificate server.crt;
        ssl_certificate_key server.key;
        ssl_alpn http/1.1;
        vmess on;
        vmess_user ALICE alice;
        vmess_httpupgrade /up host=edge.example.test;
        vmess_fallback 127.0.0.1:8080;
        proxy_pass $vmess_target;
    }
    server {
        listen 8443;
        vmess on;
        vmess_user ALICE alice;
        vmess_httpupgrade /plain;
        proxy_pass $vmess_target;
    }
}
EOF
expect(forms("$dir/up.conf", 443, 'alice', '-a', '192.0.2.1'),
       net => 'httpupgrade', tls => 1, add => '192.0.2.1', port => 443,
       id => $alice, aid => 0, scy => 'aes-128-gcm',
       host => 'edge.example.test', path => '/up', sni => 'edge.example.test',
       alpn => 'http/1.1');
expect(forms("$dir/up.conf", 8443, 'alice', '-a', 'edge.example.test'),
       net => 'httpupgrade', add => 'edge.example.test', port => 8443,
       id => $alice, aid => 0, scy => 'aes-128-gcm', host => '',
       path => '/plain');

# ---- subscriptions, selection, the "all" output

my @sub = split /\n/, form('subscription', '-s', $port{tls});
is(scalar @sub, 1, 'one subscription body for one server');
my @sub_links = split /\n/, decode_base64($sub[0]);
is_deeply([map { decode_link($_)->{id} } @sub_links], [$carol, $dave],
          'tls subscription: the user file\'s users, in order (the server'
          . ' does not inherit the stream users)');
is_deeply(\@sub_links, [split /\n/, form('link', '-s', $port{tls})],
          'the subscription is the base64 of the links');

my @all_links = split /\n/, form('link');
is(scalar @all_links, 8, 'every user of every vmess server: 2+2+2+2');
is_deeply([sort map { decode_link($_)->{port} } @all_links],
          [sort map { ("$port{$_}") x 2 } qw/tcp tls ws wss/],
          'the plain proxy_pass server is not listed');

my $all = form('all', '-s', $port{ws});
like($all, qr/^## vmess:\/\/ link\nvmess:\/\/\S+\n/m, 'all: the link');
like($all, qr/^## v2ray\/Xray client config\n\{/m, 'all: v2ray');
like($all, qr/^## sing-box client config\n\{/m, 'all: sing-box');
like($all, qr/^## Clash\/mihomo proxy\nproxies:\n  - name: /m, 'all: clash');
like($all, qr/^# subscription of \S+stream\.conf:\d+ \(base64\)\n\S+$/m,
     'all: the subscription, named by the file and line of the server');

SKIP: {
    skip 'qrencode is not installed', 1
        unless system('sh -c "command -v qrencode" >/dev/null') == 0;
    my $out = form('link', '-s', $port{tcp}, '-u', 'bob', '--qr');
    my ($link) = $out =~ /^(vmess:\S+)$/m;
    my $qr = `qrencode -t UTF8 -m 2 \Q$link\E`;
    ok(length $qr > 1000 && index($out, "$link\n$qr") == 0,
       'the link, then its QR code as qrencode draws it');
}

# ---- refusals

for my $c ([['-u', 'nobody'], qr/^vmess-links: no user "nobody" in the selected servers$/m],
           [['-s', '1'], qr/^vmess-links: no "vmess on" server listening on 1 in /m],
           [['-f', 'yaml'], qr/^vmess-links: unknown format "yaml"$/m])
{
    my ($rc, $out, $err) = links('-c', $conf, @{$c->[0]});
    ok($rc != 0 && $out eq '' && $err =~ $c->[1], "refused: @{$c->[0]}")
        or diag("rc $rc: $err");
}

write_file("$dir/any.conf", <<'EOF' =~ s/ALICE/$alice/r);
stream { server { listen 10086; vmess on; vmess_user ALICE; } }
EOF
my ($rc, $out, $err) = links('-c', "$dir/any.conf");
like($err, qr/^vmess-links: the server at \S+any\.conf:1 listens on every address: give --address$/m,
     'a wildcard listen needs --address');
($rc, $out) = links('-c', "$dir/any.conf", '-a', 'vpn.example.test', '-f',
                    'link');
is(decode_link($out)->{ps}, "$alice tcp 10086",
   'a user without email is named by its UUID');

write_file("$dir/bad.conf", "stream { server { vmess on; vmess_user"
           . " not-a-uuid; listen 1; } }\n");
($rc, $out, $err) = links('-c', "$dir/bad.conf");
like($err, qr/^vmess-links: "not-a-uuid" is not a UUID in \S+bad\.conf:1$/m,
     'a bad UUID is refused with its file and line');

$t->finish();
done_testing();
