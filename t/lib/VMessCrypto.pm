package VMessCrypto;

# Just enough VMess crypto in Perl (CryptX) to forge what a hostile client
# sends after a real header: reseal a header's length field (EncLen) with
# any value, and seal request body chunks (aes-128-gcm, masking, padding)
# with the body keys vmess-client saves in F.keys (--replay-file F).
# VMESS-SPEC.md §3.1, §3.3, §7.

use strict;
use warnings;

use Crypt::AuthEnc::GCM qw/gcm_encrypt_authenticate gcm_decrypt_verify/;
use Crypt::Digest::SHAKE;
use Digest::MD5 qw/md5/;
use Digest::SHA qw/hmac_sha256/;

# H_level(msg) over path[0..level-1] (§3.1)
sub _kdf_h {
    my ($level, $path, $msg) = @_;
    return hmac_sha256($msg, 'VMess AEAD KDF') if $level == 0;
    my $k = $path->[$level - 1];
    $k = _kdf_h($level - 1, $path, $k) if length $k > 64;
    $k .= "\0" x (64 - length $k);
    my $inner = _kdf_h($level - 1, $path, ($k ^ ("\x36" x 64)) . $msg);
    return _kdf_h($level - 1, $path, ($k ^ ("\x5c" x 64)) . $inner);
}

sub kdf {
    my ($key, @path) = @_;
    return _kdf_h(scalar @path, \@path, $key);
}

sub cmd_key {
    my ($uuid) = @_;
    (my $hex = $uuid) =~ s/-//g;
    return md5(pack('H*', $hex) . 'c48619fe-8f02-49e0-b9e9-edf763e17e21');
}

sub _len_keys {
    my ($uuid, $header) = @_;
    my $ck = cmd_key($uuid);
    my $authid = substr($header, 0, 16);
    my $nonce = substr($header, 34, 8);
    my $key = substr(kdf($ck, 'VMess Header AEAD Key_Length', $authid,
                         $nonce), 0, 16);
    my $iv = substr(kdf($ck, 'VMess Header AEAD Nonce_Length', $authid,
                        $nonce), 0, 12);
    return ($key, $iv, $authid);
}

# the L sealed in a header's EncLen, or undef when it does not open
sub header_length {
    my ($uuid, $header) = @_;
    my ($key, $iv, $authid) = _len_keys($uuid, $header);
    # plain copies: CryptX misreads substr() arguments
    my ($ct, $tag) = (substr($header, 16, 2), substr($header, 18, 16));
    my $pt = gcm_decrypt_verify('AES', $key, $iv, $authid, $ct, $tag);
    return defined $pt ? unpack('n', $pt) : undef;
}

# the header with its EncLen resealed to carry L (authentic, but a lie)
sub header_with_length {
    my ($uuid, $header, $l) = @_;
    my ($key, $iv, $authid) = _len_keys($uuid, $header);
    my ($ct, $tag) = gcm_encrypt_authenticate('AES', $key, $iv, $authid,
                                              pack('n', $l));
    my $h = $header;
    substr($h, 16, 18) = $ct . $tag;
    return $h;
}

# F.keys of vmess-client: { security, options, key, iv }
sub read_keys {
    my ($file) = @_;
    open my $fh, '<', $file or die "$file: $!";
    my $line = <$fh>;
    my %k = $line =~ /(\w+)=(\S+)/g;
    return { security => $k{security}, options => hex $k{options},
             key => pack('H*', $k{key}), iv => pack('H*', $k{iv}) };
}

# a request body writer for aes-128-gcm with options 0x04 (masking) and
# optionally 0x08 (padding): ->chunk(data), ->raw_length(L) draws like a
# chunk and returns the masked length field for L
sub writer {
    my ($keys) = @_;
    die "aes-128-gcm only" unless $keys->{security} == 3;
    die "masking needed" unless $keys->{options} & 0x04;
    my $sh = Crypt::Digest::SHAKE->new(128);
    $sh->add($keys->{iv});
    return bless { %$keys, shake => $sh->done(8192), pos => 0, count => 0 },
        'VMessCrypto::Writer';
}

package VMessCrypto::Writer;

sub _next16 {
    my ($self) = @_;
    my $v = unpack('n', substr($self->{shake}, $self->{pos}, 2));
    $self->{pos} += 2;
    return $v;
}

# padding length and mask for the next chunk (padding drawn first)
sub _draw {
    my ($self) = @_;
    my $pad = ($self->{options} & 0x08) ? $self->_next16() % 64 : 0;
    return ($pad, $self->_next16());
}

# one sealed chunk; in list context also its padding length
sub chunk {
    my ($self, $data) = @_;
    my ($pad, $mask) = $self->_draw();
    my $nonce = pack('n', $self->{count}++) . substr($self->{iv}, 2, 10);
    my ($ct, $tag) = Crypt::AuthEnc::GCM::gcm_encrypt_authenticate(
        'AES', $self->{key}, $nonce, '', $data);
    my $l = length($ct) + 16 + $pad;
    my $c = pack('n', $l ^ $mask) . $ct . $tag
        . join('', map { chr int rand 256 } 1 .. $pad);
    return wantarray ? ($c, $pad) : $c;
}

# only a length field carrying l (the chunk counter moves on)
sub length_field {
    my ($self, $l) = @_;
    my (undef, $mask) = $self->_draw();
    $self->{count}++;
    return pack('n', $l ^ $mask);
}

1;
