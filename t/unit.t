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

my @srcs = sort glob "$top/t/unit/test_*.c";
ok(@srcs, 'unit test sources found');

for my $src (@srcs) {
    my ($name) = $src =~ m{/(test_\w+)\.c$};
    my $bin = "$dir/$name";
    unless (-x $bin) {
        fail("$name is built (run make)");
        next;
    }
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
