#!/usr/bin/perl
# Runs the C unit tests of the protocol core (objs/unit/test_*, built by
# make) and reports each of their TAP results as a subtest.

use strict;
use warnings;
use Test::More;
use FindBin;

my $top = "$FindBin::Bin/..";
my $dir = $ENV{VMESS_UNIT_DIR} || "$top/objs/unit";
$ENV{VMESS_VECTORS} ||= "$top/objs/vectors.txt";

my @bins = sort grep { -x } glob "$dir/test_*";
my @srcs = glob "$top/t/unit/test_*.c";
is(scalar @bins, scalar @srcs, 'every unit test source has a binary')
    or diag("run make first: sources @srcs, binaries @bins");

for my $bin (@bins) {
    (my $name = $bin) =~ s{.*/}{};
    subtest $name => sub {
        open my $fh, '-|', $bin or die "$bin: $!";
        my ($plan, $seen) = (undef, 0);
        while (my $line = <$fh>) {
            chomp $line;
            if ($line =~ /^(not )?ok \d+ - (.*)$/) {
                $seen++;
                ok(!$1, $2);
            } elsif ($line =~ /^1\.\.(\d+)$/) {
                $plan = $1;
            } elsif ($line =~ /^Bail out!/) {
                fail($line);
            } else {
                note($line);
            }
        }
        close $fh;
        is($?, 0, "$name exit status");
        ok(defined $plan && $plan == $seen, "$name ran its whole plan")
            or diag('plan ' . ($plan // 'missing') . ", seen $seen");
    };
}

done_testing();
