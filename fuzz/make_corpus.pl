#!/usr/bin/perl
# Writes the seed corpora of the fuzz harnesses, fuzz/corpus/<harness>/,
# from the known-answer vectors: each seed is a vector's bytes behind the
# harness's mode bytes (see the comment at the top of each fuzz_*.c), so
# the fuzzer starts from inputs that pass every tag and checksum.
#
#   perl fuzz/make_corpus.pl [VECTOR_DIR]    (default ../shared/vectors)
#
# The output is deterministic; the corpus directories are emptied first.

use strict;
use warnings;
use FindBin;
use JSON::PP;

my $top = "$FindBin::Bin/..";
my $vec = $ARGV[0] // "$top/../shared/vectors";
my $out = "$FindBin::Bin/corpus";

die "usage: $0 [VECTOR_DIR]\n" unless -d $vec;

my @securities = (1, 3, 4, 5);                  # fuzz_body.c, order kept
my @body_opts = (0x01, 0x05, 0x0d, 0x11, 0x1d, 0x00);
my @commands = (1, 2, 3);
my @resp_opts = (0x01, 0x05, 0x0d, 0x00, 0x11, 0x1d);  # response harness

my %count;

sub load {
    my ($name) = @_;
    open my $fh, '<', "$vec/$name.json" or die "$vec/$name.json: $!\n";
    local $/;
    return JSON::PP->new->decode(<$fh>);
}

sub hex2 { return pack 'H*', $_[0] // '' }

sub index_of {
    my ($v, @list) = @_;
    for my $i (0 .. $#list) {
        return $i if $list[$i] == $v;
    }
    die "value $v not in list\n";
}

sub seed {
    my ($harness, $name, $bytes) = @_;
    my $dir = "$out/$harness";
    open my $fh, '>:raw', "$dir/$name" or die "$dir/$name: $!\n";
    print $fh $bytes;
    close $fh or die "$dir/$name: $!\n";
    $count{$harness}++;
}

for my $h (qw/fuzz_aead_header fuzz_legacy_header fuzz_body fuzz_mux
              fuzz_response_header fuzz_ws_frame fuzz_http_upgrade/)
{
    mkdir $out unless -d $out;
    mkdir "$out/$h" unless -d "$out/$h";
    unlink grep { -f } glob "$out/$h/*";
}

my $req = load('request_headers');
my $resp = load('response_headers');
my $bodies = load('bodies');
my $mux = load('mux');
my $dyn = load('dynamic_port');
my $authid = load('authid');

# the request fields of a header vector, as the round-trip modes read them
sub request_fields {
    my ($f) = @_;
    my $cmd = hex $f->{command};
    my $b = hex2($f->{version}) . hex2($f->{body_iv}) . hex2($f->{body_key})
        . hex2($f->{response_v}) . hex2($f->{option})
        . hex2($f->{padlen_sec}) . hex2($f->{reserved}) . hex2($f->{command});
    if ($cmd == 1 || $cmd == 2) {
        my $addr = hex2($f->{addr});
        $addr = pack('C', length $addr) . $addr
            unless hex($f->{addr_type}) == 2;   # domains carry their length
        $b .= hex2($f->{port}) . hex2($f->{addr_type}) . $addr;
    } else {
        $b .= "\0\0\0\0";                       # port, type, length
    }
    return $b . hex2($f->{padding});
}

# request headers: raw wire, sealed plaintext, round trip
for my $c (@{ $req->{cases} }) {
    my $plain = hex2($c->{header_plain});
    my $prefix = substr($plain, 0, length($plain) - 4);

    if ($c->{mode} eq 'aead') {
        my $h = 'fuzz_aead_header';
        seed($h, "raw-$c->{name}", "\x00\x00" . hex2($c->{wire}));
        seed($h, "raw-split-$c->{name}",
             "\x00\x03\x00\x29\x05" . hex2($c->{wire}));
        seed($h, "deep-$c->{name}",
             "\x02\x03\x00" . hex2($c->{authid})
             . hex2($c->{connection_nonce})
             . pack('n', length $prefix) . $prefix);
        seed($h, "rt-$c->{name}",
             "\x03" . request_fields($c->{fields}) . hex2($c->{authid_random})
             . hex2($c->{connection_nonce}) . "\x00");
    } else {
        my $h = 'fuzz_legacy_header';
        seed($h, "raw-$c->{name}", "\x00\x00" . hex2($c->{wire}));
        seed($h, "raw-split-$c->{name}",
             "\x00\x02\x10\x00" . hex2($c->{wire}));
        seed($h, "deep-$c->{name}",
             "\x02\x01\x00" . hex2($c->{auth})
             . pack('n', length $prefix) . $prefix);
        seed($h, "rt-$c->{name}",
             "\x03" . request_fields($c->{fields}) . "\x02\x00");
    }
}

# round trips with addresses the parser rewrites or refuses: IP literals
# as domains (v2ray turns them into addresses), bad characters, unknown
# command and security, 0x08 without 0x04
{
    my ($aead) = grep { $_->{mode} eq 'aead' } @{ $req->{cases} };
    my %f = %{ $aead->{fields} };
    my @domains = ('10.0.0.1', '[2001:db8::1]', '0::ffff:10.0.0.1',
                   '[::ffff:192.0.2.7]', '1.2.3', 'a b.example', "x\0y",
                   '-_.', '[1.2.3.4]');
    my $i = 0;
    for my $d (@domains) {
        my %g = (%f, addr_type => '02',
                 addr => unpack('H*', pack('C', length $d) . $d));
        my $b = request_fields(\%g);
        seed('fuzz_aead_header', "rt-domain-$i",
             "\x03" . $b . "\xa1\xb2\xc3\xd4" . "\x01" x 8 . "\x00");
        seed('fuzz_legacy_header', "rt-domain-$i", "\x03" . $b . "\x00\x00");
        $i++;
    }
    for my $e (['command', '07'], ['padlen_sec', '52'], ['padlen_sec', '50'],
               ['option', '09'])
    {
        my %g = (%f, $e->[0] => $e->[1]);
        my $b = request_fields(\%g);
        seed('fuzz_aead_header', "rt-$e->[0]-$e->[1]",
             "\x03" . $b . "\xa1\xb2\xc3\xd4" . "\x01" x 8 . "\x00");
        seed('fuzz_legacy_header', "rt-$e->[0]-$e->[1]",
             "\x03" . $b . "\x00\x00");
    }
}

# AuthID trials: the vector's AuthID plaintext at T0, then edge times
{
    my $h = 'fuzz_aead_header';
    my $rand = hex2($authid->{random});
    seed($h, 'authid-vector', "\x01\x05" . hex2($authid->{plain}));
    seed($h, 'authid-t0', "\x01\x0d\x00\x00" . $rand);
    seed($h, 'authid-edge', "\x01\x0d\x00\x78" . $rand);
    seed($h, 'authid-skew', "\x01\x0d\xff\x87" . $rand);
    seed($h, 'authid-other-user', "\x01\x0e\x00\x10" . $rand);
    seed($h, 'authid-stranger', "\x01\x0f\x00\x00" . $rand);
}

# legacy index lookups: flags, user, ID, ts, now, [update times]
{
    my $h = 'fuzz_legacy_header';
    seed($h, 'auth-t0', "\x01\x00\x00\x00\x00\x00\x00\x00");
    seed($h, 'auth-alter', "\x01\x00\x00\x03\x00\x50\xff\xb0");
    seed($h, 'auth-edge', "\x01\x00\x02\x01\x00\x78\x00\x00");
    seed($h, 'auth-update', "\x01\x01\x00\x02\x00\x64\x00\x32\x00\x64");
    seed($h, 'auth-update2',
         "\x01\x03\x02\x00\xff\x9c\x00\x00\x00\x96\xff\x38");
    seed($h, 'auth-stranger', "\x01\x00\x03\x00\x00\x00\x00\x00");
}

# bodies: both streams of every case raw, and sealed seeds for each combo;
# the third byte picks the reader: 0 copies, 1 in place with stage 0 (the
# pieces glued), 2 with stage 1, 3 with stages from its high bits
{
    my $h = 'fuzz_body';
    my ($copy, $glue, $stage) = (0, 1, 2);
    my $mixed = 3 | (0x2d << 2);                # stages 1,0,1,1,0,1 ...
    for my $c (@{ $bodies->{cases} }) {
        my $combo = index_of($c->{security}, @securities)
                    + 4 * index_of(hex $c->{option}, @body_opts)
                    + 24 * index_of($c->{command}, @commands);
        my $legacy = $c->{header_mode} eq 'legacy' ? 0x02 : 0;
        my $resp_stream = substr(hex2($c->{response_stream}),
                                 $c->{response_header_len});
        seed($h, "raw-$c->{name}-req",
             pack('CCCC', $combo, $legacy, $copy, 0)
             . hex2($c->{request_stream}));
        seed($h, "raw-$c->{name}-resp",
             pack('CCCC', $combo, $legacy | 0x01, $copy, 0) . $resp_stream);
        seed($h, "raw-split-$c->{name}-req",
             pack('CCCCCCC', $combo, $legacy, $copy, 3, 0, 5, 0xc0)
             . hex2($c->{request_stream}));
        seed($h, "inplace-glue-$c->{name}-req",
             pack('CCCCCCC', $combo, $legacy, $glue, 3, 0, 5, 0xc0)
             . hex2($c->{request_stream}));
        seed($h, "inplace-mixed-$c->{name}-resp",
             pack('CCCCCC', $combo, $legacy | 0x01, $mixed, 2, 30, 1)
             . $resp_stream);
    }

    my $small = hex2($bodies->{payloads}{small});
    my $dgram = hex2($bodies->{payloads}{dgram2});
    for my $s (0 .. $#securities) {
        for my $o (0 .. $#body_opts) {
            my $name = sprintf 'sec%d-opt%02x', $securities[$s], $body_opts[$o];
            # request, TCP: 3 chunks (16 bytes, the largest, 2 KiB), end;
            # copied, and in place with stage 0 and with stage 1
            for my $r ([$copy, ''], [$glue, '-glue'], [$stage, '-stage']) {
                seed($h, "sealed-$name-tcp$r->[1]",
                     pack('CCCCCCCC', $s + 4 * $o, 0x14, $r->[0], 3, 0, 7,
                          0xc3, 3)
                     . pack('nnn', 15, 0x8000, 2047) . "\0\0\0" . $small);
            }
            # response, UDP, small out buffer, padding filler, end
            seed($h, "sealed-$name-udp",
                 pack('CCCCCC', $s + 4 * $o + 24, 0x9d, $copy, 2, 0x10, 0x03)
                 . pack('n', 50) . "\x02" . pack('nn', 99, 15) . "\0\0\0"
                 . ("\xa5" x 63) . $dgram);
        }
    }

    # many small chunks: the SHAKE stream goes past its first block
    seed($h, 'sealed-sec3-opt0d-many',
         pack('CCCCCC', 0 + 4 * 2 + 1, 0x14, $copy, 1, 0x20, 0x50)
         . pack('n', 3) x 0x50 . "\0\0\0" . $small);
    # option 0x10: a forged length over 65535, then one of 0
    for my $s (1, 2) {
        seed($h, "sealed-sec$securities[$s]-opt11-forge-big",
             pack('CCCCC', $s + 4 * 3, 0x14, $copy, 0, 2)
             . pack('nn', 100, 200) . "\x02\xff\xf0" . $small);
        seed($h, "sealed-sec$securities[$s]-opt1d-forge-zero",
             pack('CCCCC', $s + 4 * 4, 0x14, $copy, 0, 2)
             . pack('nn', 100, 200) . "\x01\x00\x00" . $small);
    }
}

# Mux.Cool: every frame, all of them, the body payloads; built frames
{
    my $h = 'fuzz_mux';
    my $all = '';
    my $i = 0;
    for my $f (@{ $mux->{frames} }) {
        my $w = hex2($f->{wire});
        $all .= $w;
        seed($h, sprintf('frame-%02d', $i++), "\x00\x00" . $w);
    }
    seed($h, 'frames-all', "\x00\x00" . $all);
    seed($h, 'frames-all-split', "\x00\x04\x00\x02\x07\x40" . $all);
    seed($h, 'body-request-frames',
         "\x00\x00" . hex2($bodies->{payloads}{mux_request_frames}));
    seed($h, 'body-response-frames',
         "\x00\x00" . hex2($bodies->{payloads}{mux_response_frames}));
    # built: New TCP example.com:80 + 4 bytes, Keep + 2, End with error
    seed($h, 'built',
         "\x01\x02\x00\x03\x03"
         . "\x01\x01\x00\x01\x01\x00\x50\x02\x0bexample.com\x00\x04GET "
         . "\x02\x01\x00\x01\x00\x02ok"
         . "\x03\x02\x00\x01");
}

# response headers: the vectors (both securities), whole response streams,
# the switch-account commands as deep plaintext, sealed seeds
{
    my $h = 'fuzz_response_header';
    my $i = 0;
    for my $c (@{ $resp->{cases} }) {
        my $legacy = $c->{header_mode} eq 'legacy' ? 0x01 : 0;
        for my $sec (1, 3) {
            seed($h, sprintf('hdr-%d-%s-sec%d', $i, $c->{header_mode}, $sec),
                 pack('CCC', $legacy, index_of($sec, @securities), 0)
                 . hex2($c->{wire}));
        }
        $i++;
    }

    for my $c (@{ $bodies->{cases} }) {
        next unless $c->{command} == 1 && $c->{response_header_len} > 0;
        my $legacy = $c->{header_mode} eq 'legacy' ? 0x01 : 0;
        my $combo = index_of($c->{security}, @securities)
                    + 4 * index_of(hex $c->{option}, @resp_opts);
        seed($h, "stream-$c->{name}",
             pack('CCC', $legacy, $combo, 0) . hex2($c->{response_stream}));
    }

    $i = 0;
    for my $c (@{ $dyn->{cases} }) {
        # wire = 01 M FNV body: the deep mode recomputes FNV and M
        my $body = substr(hex2($c->{wire}), 6);
        for my $legacy (0, 1) {
            seed($h, "deep-cmd-$i-" . ($legacy ? 'legacy' : 'aead'),
                 pack('CCC', 0x32 | $legacy, 0, 0) . "\x5a\x00\x01\x00"
                 . pack('C', length $body) . $body);
        }
        $i++;
    }
    seed($h, 'deep-nocmd-aead', "\x32\x00\x00\x5a\x00\x00\x00\x00");
    seed($h, 'deep-nocmd-legacy-cfb', "\x33\x00\x00\x5a\x00\x00\x00\x00"
         . hex2($bodies->{payloads}{resp}));

    my $resp_plain = hex2($bodies->{payloads}{resp});
    for my $s (0 .. $#securities) {
        for my $legacy (0, 1) {
            my $name = sprintf 'sealed-sec%d-%s', $securities[$s],
                       $legacy ? 'legacy' : 'aead';
            # no command, 2 chunks, end marker
            seed($h, $name,
                 pack('CCC', 0x84 | $legacy, $s + 4 * 2, 0) . "\x00\x00"
                 . "\x02" . pack('nn', 38, 700) . $resp_plain);
            # switch-account command, 1 chunk
            seed($h, "$name-cmd",
                 pack('CCC', 0x04 | $legacy, $s, 0) . "\x00\x01"
                 . "\x0bexample.net" . pack('n', 20000)
                 . hex2('2b5a9f5c52a14b139e363c1a4b7e6d80')
                 . pack('nCC', 16, 0, 255) . "\x01" . pack('n', 38)
                 . $resp_plain);
        }
    }
}

# fuzz_ws_frame.c: client frames, masked, as RFC 6455 has them; these
# seeds need no vector
sub ws_frame {
    my ($b0, $payload, %o) = @_;
    my $mask = $o{mask} // "\x37\xfa\x21\x3d";
    my $len = length $payload;
    my $h = pack 'C', $b0;
    if ($o{wide} || $len > 0xffff) {
        $h .= pack('C', 0x80 | 127) . pack('NN', 0, $len);
    } elsif ($len > 125) {
        $h .= pack('Cn', 0x80 | 126, $len);
    } else {
        $h .= pack('C', 0x80 | $len);
    }
    my $masked = $payload ^ substr($mask x (int($len / 4) + 1), 0, $len);
    return $h . $mask . $masked;
}

{
    my $h = 'fuzz_ws_frame';
    my ($aead) = grep { $_->{mode} eq 'aead' } @{ $req->{cases} };
    my $vmess = hex2($aead->{wire});
    my %raw = (
        'binary' => ws_frame(0x82, 'hello'),
        'binary-16' => ws_frame(0x82, 'x' x 300),
        'binary-64' => ws_frame(0x82, 'y' x 200, wide => 1),
        'fragments' => ws_frame(0x02, 'abc') . ws_frame(0x89, 'ping')
            . ws_frame(0x00, 'def') . ws_frame(0x8a, '')
            . ws_frame(0x80, 'g'),
        'close' => ws_frame(0x82, 'ab') . ws_frame(0x88, "\x03\xe8bye")
            . 'trailing bytes',
        'text' => ws_frame(0x81, 'text'),
        'unmasked' => "\x82\x04data",
        'reserved' => ws_frame(0xc2, 'x'),
        'long-ping' => ws_frame(0x89, 'p' x 126),
        'continuation' => ws_frame(0x80, 'c'),
        'vmess' => ws_frame(0x82, $vmess),
    );
    for my $name (sort keys %raw) {
        seed($h, "raw-$name", "\x00\x00" . $raw{$name});
        # cut into pieces of 1, 2 and 7 bytes
        seed($h, "raw-$name-split", "\x00\x03\x00\x01\x06" . $raw{$name});
    }
    seed($h, 'raw-small-max-frame', "\x02\x00\x04" . ws_frame(0x82, 'hello'));

    # fields: kind, length, mask, payload source
    my $mask = "\x01\x02\x03\x04";
    seed($h, 'fields-binary', "\x01\x00" . "\x00\x05$mask" . 'hello');
    seed($h, 'fields-mixed', "\x01\x02\x00\x02"
         . "\x01\x03${mask}abc" . "\x02\x04${mask}ping"
         . "\x08\x20${mask}wide" . "\x03\x00$mask"
         . "\x00\xff${mask}long" . "\x04\x02${mask}\x03\xe8" . 'after');
    seed($h, 'fields-big', "\x01\x01\xbf" . "\x70\x10${mask}big!");
}

# fuzz_http_upgrade.c: conf flags, a cut (BE16), the request
{
    my $h = 'fuzz_http_upgrade';
    my $key = 'dGhlIHNhbXBsZSBub25jZQ==';
    my $ws = "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        . "Sec-WebSocket-Key: $key\r\nSec-WebSocket-Version: 13\r\n";
    my %reqs = (
        'ws' => [0x00, "GET /ws HTTP/1.1\r\nHost: a\r\n$ws\r\n"],
        'ws-early' => [0x00, "GET /ws?ed=2048 HTTP/1.1\r\n$ws"
                       . "Sec-WebSocket-Protocol: AAECAwQ\r\n\r\nVMESS"],
        'ws-host' => [0x02, "GET /ws HTTP/1.1\r\nHost: example.COM:443\r\n"
                      . "$ws\r\n"],
        'ws-real-ip' => [0x04, "GET /ws HTTP/1.1\r\n$ws"
                         . "X-Forwarded-For:  192.0.2.1 \r\n\r\n"],
        'ws-root' => [0x08, "GET / HTTP/1.1\r\n$ws\r\n"],
        'ws-small' => [0x20, "GET /ws HTTP/1.1\r\n$ws"
                       . 'X-Pad: ' . ('p' x 600) . "\r\n\r\n"],
        'httpupgrade' => [0x01, "GET /ws HTTP/1.1\r\nHost: a\r\n"
                          . "Upgrade: websocket\r\n"
                          . "Connection: keep-alive, upgrade\r\n\r\nraw"],
        'httpupgrade-xray' => [0x03, "GET /a/b.c HTTP/1.1\r\n"
                               . "Host: [example.com]\r\n"
                               . "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                               . "Sec-WebSocket-Key: any\r\n\r\n"],
        'httpupgrade-empty-key' => [0x01, "GET /ws HTTP/1.1\r\n"
                                    . "Upgrade: websocket\r\n"
                                    . "Connection: upgrade\r\n"
                                    . "Sec-WebSocket-Key:\r\n\r\n"],
        'bad-version' => [0x00, "GET /ws HTTP/1.0\r\n$ws\r\n"],
        'bad-header' => [0x00, "GET /ws HTTP/1.1\r\nUpgrade websocket\r\n\r\n"],
        'bad-key' => [0x00, "GET /ws HTTP/1.1\r\n"
                      . "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=\r\n\r\n"],
        'bad-ws-version' => [0x00, "GET /ws HTTP/1.1\r\n"
                             . "Sec-WebSocket-Version: 8\r\n\r\n"],
        'other-path' => [0x00, "GET /wsx HTTP/1.1\r\n\r\n"],
        'partial' => [0x00, "GET /ws HTTP/1.1\r\nUpgr"],
    );
    for my $name (sort keys %reqs) {
        my ($flags, $bytes) = @{ $reqs{$name} };
        seed($h, $name, pack('Cn', $flags, length($bytes) / 2) . $bytes);
    }
}

printf "%s: %d seeds\n", $_, $count{$_} for sort keys %count;
