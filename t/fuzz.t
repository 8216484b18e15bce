#!/usr/bin/perl
# The libFuzzer harnesses of the protocol core (fuzz/run): every committed
# input (seed corpora and regressions) replayed through the harnesses
# built with ASan and UBSan, then a short fuzz run of each.  Needs clang
# with libFuzzer; without it this test fails, it does not skip.
#
# VMESS_FUZZ_SECONDS sets the length of the short run (default 10 s per
# harness).

use strict;
use warnings;
use FindBin;
use Test::More;

my $top = "$FindBin::Bin/..";
my $run = "$top/fuzz/run";
my $seconds = $ENV{VMESS_FUZZ_SECONDS} || 10;

my @harnesses = map { m{/(fuzz_\w+)\.c$} ? $1 : () }
                sort glob "$top/fuzz/fuzz_*.c";
ok(@harnesses >= 5, 'harness sources found') or diag("@harnesses");

my $clang = $ENV{CLANG} || 'clang';
ok(system("command -v '$clang' > /dev/null 2>&1") == 0,
   "$clang is installed (needed to build the harnesses)");

sub run {
    my (@args) = @_;
    my $out = qx{'$run' @args 2>&1};
    return ($? >> 8, $out);
}

# every committed input once
my ($rc, $out) = run('--replay');
is($rc, 0, 'fuzz/run --replay exits 0') or diag($out);

for my $h (@harnesses) {
    my ($n, $crashes) =
        $out =~ /^\Q$h\E: replayed (\d+) inputs, (\d+) crashes/m;
    ok(defined $n && $n > 0, "$h: corpus replayed") or diag($out);
    is($crashes, 0, "$h: no crash on the committed inputs");
}

# a short fuzz run of each
($rc, $out) = run($seconds);
is($rc, 0, "fuzz/run $seconds exits 0") or diag($out);

for my $h (@harnesses) {
    my ($execs, $crashes) =
        $out =~ /^\Q$h\E: (\d+) execs in \d+ s, (\d+) crashes$/m;
    ok(defined $execs && $execs > 0, "$h: fuzzed")
        or diag($out);
    is($crashes, 0, "$h: no crash found");
}

note($out);

done_testing();
