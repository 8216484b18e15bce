#!/usr/bin/perl
# Flattens the JSON vectors into "file.path.to.key value" lines, one value
# a line, so the C unit tests need no JSON parser.  Arrays use indexes.

use strict;
use warnings;
use JSON::PP;

my ($dir) = @ARGV;
die "usage: $0 VECTOR_DIR\n" unless defined $dir && -d $dir;

sub walk {
    my ($prefix, $v) = @_;
    if (ref $v eq 'HASH') {
        walk("$prefix.$_", $v->{$_}) for sort keys %$v;
    } elsif (ref $v eq 'ARRAY') {
        print "$prefix.count ", scalar(@$v), "\n";
        walk("$prefix.$_", $v->[$_]) for 0 .. $#$v;
    } elsif (JSON::PP::is_bool($v)) {
        print "$prefix ", ($v ? 1 : 0), "\n";
    } elsif (defined $v) {
        (my $s = $v) =~ s/([^\x21-\x7e])/sprintf('\\x{%x}', ord $1)/ge;
        print "$prefix $s\n";
    }
}

for my $path (sort glob "$dir/*.json") {
    (my $name = $path) =~ s{.*/|\.json$}{}g;
    open my $fh, '<', $path or die "$path: $!\n";
    local $/;
    walk($name, JSON::PP->new->decode(<$fh>));
}
